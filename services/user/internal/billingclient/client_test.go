package billingclient_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/logger"
	"github.com/order-system/order-system/services/user/internal/billingclient"
)

type seen struct {
	Method, Path, RequestID, Body string
}

func TestOpenTakesOnly201And200AsAnOpenAccount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		wantErr bool
	}{
		{"account opened", http.StatusCreated, false},
		{"account already open", http.StatusOK, false},
		{"billing fails", http.StatusInternalServerError, true},
		{"billing overloaded", http.StatusServiceUnavailable, true},
		{"billing refuses", http.StatusBadRequest, true},
		{"no such route", http.StatusNotFound, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan seen, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- seen{Method: r.Method, Path: r.URL.Path, RequestID: r.Header.Get("X-Request-ID"), Body: string(b)}
				w.WriteHeader(tt.status)
				io.WriteString(w, `{}`)
			}))
			defer srv.Close()

			id := uuid.New()
			ctx := logger.WithRequestID(context.Background(), "req-42")
			err := billingclient.New(srv.URL, time.Second, auth.Config{}).Open(ctx, id)
			if tt.wantErr {
				if !apperr.Is(err, apperr.Unavailable) {
					t.Errorf("Open with billing answering %d = %v, want an unavailable error", tt.status, err)
				}
			} else if err != nil {
				t.Errorf("Open with billing answering %d = %v, want nil", tt.status, err)
			}
			want := seen{Method: http.MethodPut, Path: "/internal/accounts/" + id.String(), RequestID: "req-42"}
			if diff := cmp.Diff(want, <-got); diff != "" {
				t.Errorf("request billing got (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); slow.Close() })

	tests := []struct {
		name string
		url  string
	}{
		{"connection refused", closed.URL},
		{"no answer within the timeout", slow.URL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := billingclient.New(tt.url, 200*time.Millisecond, auth.Config{}).Open(context.Background(), uuid.New())
			if !apperr.Is(err, apperr.Unavailable) {
				t.Errorf("Open = %v, want an unavailable error", err)
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Open took %v with a timeout of 200ms", elapsed)
			}
		})
	}
}
