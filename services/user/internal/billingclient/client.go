// Package billingclient is the user service's HTTP client of the billing service.
package billingclient

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/auth"
	"github.com/order-system/order-system/pkg/httpclient"
	"github.com/order-system/order-system/services/user/internal/user"
)

// Client opens accounts through billing's internal endpoint.
type Client struct {
	baseURL string
	http    *http.Client
}

var _ user.Accounts = (*Client)(nil)

// New returns a client of the billing service at baseURL with a bounded timeout. With
// sign-in on, every call carries the service credential credential names.
func New(baseURL string, timeout time.Duration, credential auth.Config) *Client {
	client := httpclient.New(timeout)
	client.Transport = auth.ServiceTransport(credential, client.Transport)
	return &Client{baseURL: baseURL, http: client}
}

// Open implements user.Accounts.
func (c *Client) Open(ctx context.Context, userID uuid.UUID) error {
	status, body, err := httpclient.DoJSON(ctx, c.http, http.MethodPut, c.baseURL+"/internal/accounts/"+userID.String(), "", nil)
	if err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "billing unreachable")
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return apperr.Wrap(fmt.Errorf("billing answered %d: %s", status, body), apperr.Unavailable, "account not opened")
	}
	return nil
}
