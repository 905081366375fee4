package auth

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/order-system/order-system/pkg/env"
)

// Config is a service's sign-in configuration. The zero Config is sign-in off: every route
// is open, as the course's collection expects.
type Config struct {
	// Issuer is the OpenID provider's issuer URL (AUTH_ISSUER); empty when sign-in is off.
	Issuer string
	// Audience is the audience of the tokens users call the public API with (AUTH_AUDIENCE,
	// default order-system).
	Audience string
	// InternalAudience is the audience of the service tokens billing's internal API accepts
	// (AUTH_INTERNAL_AUDIENCE, default order-system-internal).
	InternalAudience string
	// ClientID and ClientSecret are this service's own credential at the provider
	// (AUTH_CLIENT_ID, AUTH_CLIENT_SECRET), with which it calls billing's internal API.
	ClientID, ClientSecret string
	// InternalClients are the client ids billing's internal API admits (AUTH_INTERNAL_CLIENTS,
	// comma-separated, default user-service,order-service).
	InternalClients []string
}

// On reports whether sign-in is on.
func (c Config) On() bool { return c.Issuer != "" }

// LoadConfig reads AUTH (off, the default, or oidc) and, with AUTH=oidc, the settings
// Config lists; AUTH_ISSUER is then required.
func LoadConfig() (Config, error) {
	switch mode := os.Getenv("AUTH"); mode {
	case "", "off":
		return Config{}, nil
	case "oidc":
	default:
		return Config{}, fmt.Errorf("AUTH must be off or oidc, got %q", mode)
	}
	c := Config{
		Issuer:           os.Getenv("AUTH_ISSUER"),
		Audience:         env.String("AUTH_AUDIENCE", "order-system"),
		InternalAudience: env.String("AUTH_INTERNAL_AUDIENCE", "order-system-internal"),
		ClientID:         os.Getenv("AUTH_CLIENT_ID"),
		ClientSecret:     os.Getenv("AUTH_CLIENT_SECRET"),
	}
	if c.Issuer == "" {
		return Config{}, fmt.Errorf("AUTH=oidc needs AUTH_ISSUER, the OpenID provider's issuer URL")
	}
	if c.Audience == c.InternalAudience {
		// Then a person's token would open the internal API, and a service's the public one.
		return Config{}, fmt.Errorf("AUTH_AUDIENCE and AUTH_INTERNAL_AUDIENCE must differ, both are %q", c.Audience)
	}
	for _, id := range strings.Split(env.String("AUTH_INTERNAL_CLIENTS", "user-service,order-service"), ",") {
		if id = strings.TrimSpace(id); id != "" {
			c.InternalClients = append(c.InternalClients, id)
		}
	}
	return c, nil
}

// RequireClient reports an error when sign-in is on and this service has no credential of
// its own: a service that calls billing's internal API cannot work without one.
func (c Config) RequireClient() error {
	if c.On() && (c.ClientID == "" || c.ClientSecret == "") {
		return fmt.Errorf("AUTH=oidc needs AUTH_CLIENT_ID and AUTH_CLIENT_SECRET, this service's credential for billing's internal API")
	}
	return nil
}

// LogValue shows the configuration in a log line, the client secret left out.
func (c Config) LogValue() slog.Value {
	if !c.On() {
		return slog.StringValue("off")
	}
	return slog.GroupValue(
		slog.String("issuer", c.Issuer),
		slog.String("audience", c.Audience),
		slog.String("internal_audience", c.InternalAudience),
		slog.String("client_id", c.ClientID),
		slog.Bool("client_secret_set", c.ClientSecret != ""),
		slog.Any("internal_clients", c.InternalClients))
}
