package auth_test

import (
	"testing"

	"github.com/order-system/order-system/pkg/auth"
)

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr bool
		on      bool
	}{
		{"off by default", map[string]string{}, false, false},
		{"off", map[string]string{"AUTH": "off"}, false, false},
		{"unknown mode", map[string]string{"AUTH": "basic"}, true, false},
		{"oidc without issuer", map[string]string{"AUTH": "oidc"}, true, false},
		{"oidc", map[string]string{"AUTH": "oidc", "AUTH_ISSUER": "https://id.example.com"}, false, true},
		{"one audience for both", map[string]string{"AUTH": "oidc", "AUTH_ISSUER": "https://id.example.com", "AUTH_INTERNAL_AUDIENCE": "order-system"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"AUTH", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_INTERNAL_AUDIENCE", "AUTH_CLIENT_ID", "AUTH_CLIENT_SECRET", "AUTH_INTERNAL_CLIENTS"} {
				t.Setenv(name, tc.env[name])
			}
			cfg, err := auth.LoadConfig()
			if (err != nil) != tc.wantErr {
				t.Fatalf("LoadConfig = %+v, %v; want an error: %v", cfg, err, tc.wantErr)
			}
			if cfg.On() != tc.on {
				t.Errorf("On() = %v, want %v", cfg.On(), tc.on)
			}
		})
	}
	on := auth.Config{Issuer: "https://id.example.com"}
	if on.RequireClient() == nil {
		t.Error("sign-in on without a client credential: RequireClient = nil")
	}
	on.ClientID, on.ClientSecret = "order-service", "s3cret-s3cret-s3cret"
	if err := on.RequireClient(); err != nil || (auth.Config{}).RequireClient() != nil {
		t.Errorf("RequireClient = %v with a credential, %v with sign-in off; want nil", err, (auth.Config{}).RequireClient())
	}
}
