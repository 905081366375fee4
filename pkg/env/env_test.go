package env_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/order-system/order-system/pkg/env"
)

const localDatabase = "postgres://user_service:user_service@127.0.0.1:5432/order_system?sslmode=disable&search_path=users"

func TestLoadCommonDefaults(t *testing.T) {
	env.Unset(t)
	got, err := env.LoadCommon(":8081", localDatabase)
	if err != nil {
		t.Fatal(err)
	}
	want := env.Common{
		HTTPAddr:            ":8081",
		DatabaseURL:         localDatabase,
		AMQPURL:             "amqp://guest:guest@127.0.0.1:5672/",
		DBMaxOpenConns:      10,
		DBRelayMaxOpenConns: 2,
		ShutdownTimeout:     15 * time.Second,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestLoadCommonFromEnvironment(t *testing.T) {
	env.Unset(t)
	t.Setenv("HTTP_ADDR", ":8080")
	t.Setenv("DATABASE_URL", "postgres://u:p@db:5432/x")
	t.Setenv("AMQP_URL", "amqp://u:p@mq:5672/")
	t.Setenv("DB_MAX_OPEN_CONNS", "4")
	t.Setenv("DB_RELAY_MAX_OPEN_CONNS", "1")
	t.Setenv("SHUTDOWN_TIMEOUT", "30s")
	t.Setenv("PPROF", "true")
	got, err := env.LoadCommon(":8081", localDatabase)
	if err != nil {
		t.Fatal(err)
	}
	want := env.Common{
		HTTPAddr:            ":8080",
		DatabaseURL:         "postgres://u:p@db:5432/x",
		AMQPURL:             "amqp://u:p@mq:5672/",
		DBMaxOpenConns:      4,
		DBRelayMaxOpenConns: 1,
		ShutdownTimeout:     30 * time.Second,
		Pprof:               true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("from the environment (-want +got):\n%s", diff)
	}
}

func TestLoadCommonRejectsBadValues(t *testing.T) {
	for _, tt := range []struct{ variable, value string }{
		{"SHUTDOWN_TIMEOUT", "15"},
		{"SHUTDOWN_TIMEOUT", "-1s"},
		{"SHUTDOWN_TIMEOUT", "soon"},
		{"DB_MAX_OPEN_CONNS", "0"},
		{"DB_MAX_OPEN_CONNS", "ten"},
		{"DB_RELAY_MAX_OPEN_CONNS", "-2"},
	} {
		t.Run(tt.variable+"="+tt.value, func(t *testing.T) {
			env.Unset(t)
			t.Setenv(tt.variable, tt.value)
			if _, err := env.LoadCommon(":8081", localDatabase); err == nil {
				t.Errorf("LoadCommon with %s=%q succeeded, want an error", tt.variable, tt.value)
			}
		})
	}
}

func TestAttrsMaskPasswords(t *testing.T) {
	c := env.Common{DatabaseURL: "postgres://user_service:secret@db:5432/order_system?search_path=users", AMQPURL: "amqp://guest:guest@mq:5672/"}
	got := map[string]string{}
	for _, a := range c.Attrs() {
		got[a.Key] = a.Value.String()
	}
	if got["database_url"] != "postgres://user_service:xxxxx@db:5432/order_system?search_path=users" || got["amqp_url"] != "amqp://guest:xxxxx@mq:5672/" {
		t.Errorf("masked URLs = %q, %q; want the passwords replaced", got["database_url"], got["amqp_url"])
	}
	if got := env.Masked("postgres://u:p@h/%zz"); got != "xxxxx" {
		t.Errorf("Masked(unparsable) = %q, want it masked whole", got)
	}
	if got := env.Masked("amqp://u:p1@a:5672/,amqp://u:p2@b:5672/"); got != "amqp://u:xxxxx@a:5672/,amqp://u:xxxxx@b:5672/" {
		t.Errorf("Masked(two nodes) = %q, want each password replaced", got)
	}
	if got := env.Masked("amqp://u:p1@a:5672/,amqp://u:p2@b/%zz"); got != "xxxxx" {
		t.Errorf("Masked(a list with an unparsable URL) = %q, want it masked whole", got)
	}
}
