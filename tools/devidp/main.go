// Command devidp is a development OpenID provider for order-system, built on zitadel/oidc's
// provider package: discovery, a JWKS whose key rotates on request, the authorization code
// grant with PKCE for people (its login page signs in any user name, without a password) and
// the client credentials grant for services. It keeps everything in memory and is meant for
// loopback runs, tests and test clusters, never for real users.
//
//	devidp serve -addr 127.0.0.1:8070 -issuer http://127.0.0.1:8070
//	devidp token -issuer http://127.0.0.1:8070 [-client order-system-cli] [-user name] [-connect host:port]
//
// serve reads the service clients from DEVIDP_SERVICE_CLIENTS ("id:secret,..."); a POST to
// /dev/rotate-keys rotates the signing key. token signs a new user in (a new subject each
// call, unless -user names one) and prints their access token as its last line. healthcheck
// asks a provider on this host whether it is up (a container's health check: the image has
// no shell and no curl).
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: devidp serve|token|healthcheck [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "token":
		err = token(os.Args[2:])
	case "healthcheck":
		err = healthcheck(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want serve, token or healthcheck", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devidp:", err)
		os.Exit(1)
	}
}

// settings are what a provider is made of.
type settings struct {
	issuer           string
	audience         string // of people's tokens: the public API
	internalAudience string // of services' tokens: billing's internal API
	otherAudience    string // of the tokens of a client of another API, for tests
	serviceClients   string
	tokenLifetime    time.Duration
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8070", "listen address")
	var st settings
	fs.StringVar(&st.issuer, "issuer", "http://127.0.0.1:8070", "issuer URL, as the services reach the provider")
	fs.StringVar(&st.audience, "audience", "order-system", "audience of people's access tokens")
	fs.StringVar(&st.internalAudience, "internal-audience", "order-system-internal", "audience of services' access tokens")
	fs.StringVar(&st.otherAudience, "other-audience", "another-api", "audience of the other-app client's tokens")
	fs.DurationVar(&st.tokenLifetime, "token-lifetime", time.Hour, "lifetime of access tokens")
	_ = fs.Parse(args)
	st.serviceClients = os.Getenv("DEVIDP_SERVICE_CLIENTS")

	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	handler, err := newProvider(st, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("devidp serving", "addr", ln.Addr().String(), "issuer", st.issuer)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func healthcheck(args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8070", "the provider's address")
	_ = fs.Parse(args)
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + *addr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz answered %d", resp.StatusCode)
	}
	return nil
}

// newProvider returns the provider's routes: zitadel's (discovery, /authorize, /oauth/token,
// /keys, ...), the login page and the key rotation.
func newProvider(st settings, log *slog.Logger) (http.Handler, error) {
	services, err := parseServiceClients(st.serviceClients, st.internalAudience)
	if err != nil {
		return nil, err
	}
	clients := append([]*client{
		{id: "order-system-cli", audience: []string{st.audience}},
		{id: "other-app", audience: []string{st.otherAudience}},
	}, services...)
	keys, err := newKeyRing()
	if err != nil {
		return nil, err
	}
	store := newStorage(clients, keys, st.tokenLifetime)
	config := &op.Config{CodeMethodS256: true}
	// The key encrypts opaque tokens, which this provider never issues; it is random anyway.
	if _, err := rand.Read(config.CryptoKey[:]); err != nil {
		return nil, err
	}
	provider, err := op.NewProvider(config, store, op.StaticIssuer(st.issuer), op.WithAllowInsecure(), op.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("new provider: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", provider)
	mux.HandleFunc("/login", login(store, callbackOf(provider, st.issuer)))
	mux.HandleFunc("POST /dev/rotate-keys", func(w http.ResponseWriter, r *http.Request) {
		if err := keys.rotate(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		log.Info("signing key rotated", "kid", keys.signing().ID())
		fmt.Fprintln(w, keys.signing().ID())
	})
	return mux, nil
}
