package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

func token(args []string) error {
	fs := flag.NewFlagSet("token", flag.ExitOnError)
	issuer := fs.String("issuer", "http://127.0.0.1:8070", "the provider's issuer URL")
	clientID := fs.String("client", "order-system-cli", "the public client to sign in with")
	user := fs.String("user", "", "the user to sign in as (default: a new one)")
	connect := fs.String("connect", "", "host:port to connect to instead of the issuer's, as curl's --connect-to: for a provider the issuer names by an address only its services resolve (docker compose)")
	_ = fs.Parse(args)
	transport := http.DefaultTransport
	if *connect != "" {
		transport = connectTo(*connect)
	}
	if *user == "" {
		*user = "user-" + randomHex(6)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	access, err := signIn(ctx, transport, *issuer, *clientID, *user)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "signed in as %s\n", *user)
	fmt.Println(access)
	return nil
}

// signIn gets user's access token the way a browser would: the authorization code grant with
// PKCE (RFC 7636), the login page answered with the user's name, and the code exchanged,
// every request through transport.
// The redirects are followed by hand, so that the code is read from the last one.
func signIn(ctx context.Context, transport http.RoundTripper, issuer, clientID, user string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: transport}
	ctx = context.WithValue(oidc.ClientContext(ctx, client), oauth2.HTTPClient, client)
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return "", err
	}
	conf := oauth2.Config{ClientID: clientID, Endpoint: provider.Endpoint(), RedirectURL: callbackURL, Scopes: []string{oidc.ScopeOpenID}}
	verifier, state := oauth2.GenerateVerifier(), randomHex(16)
	browser := &http.Client{Timeout: 10 * time.Second, Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// /authorize sends the browser to the login page with the sign-in's id.
	loginURL, err := redirect(browser.Get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))))
	if err != nil {
		return "", fmt.Errorf("authorize: %w", err)
	}
	login, err := url.Parse(loginURL)
	if err != nil {
		return "", err
	}
	form := url.Values{"authRequestID": {login.Query().Get("authRequestID")}, "username": {user}}
	// The login page sends the browser to the provider's callback, which sends it to the
	// client's redirect URI with the code.
	callback, err := redirect(browser.PostForm(absolute(issuer, "/login"), form))
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	final, err := redirect(browser.Get(absolute(issuer, callback)))
	if err != nil {
		return "", fmt.Errorf("callback: %w", err)
	}
	answer, err := url.Parse(final)
	if err != nil {
		return "", err
	}
	if got := answer.Query().Get("state"); got != state {
		return "", fmt.Errorf("the provider answered state %q, want %q", got, state)
	}
	tok, err := conf.Exchange(ctx, answer.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", fmt.Errorf("exchange the code: %w", err)
	}
	return tok.AccessToken, nil
}

// connectTo returns a transport that dials addr whatever the request's host: the requests
// still name the issuer's host, so that the tokens name the issuer the services expect.
func connectTo(addr string) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}
	return t
}

// redirect returns where a 302 sends the browser.
func redirect(resp *http.Response, err error) (string, error) {
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		return loc, nil
	}
	return "", errors.New("a redirect without a Location")
}

// absolute resolves a location the provider gave relative to its issuer URL.
func absolute(issuer, location string) string {
	base, err := url.Parse(issuer + "/")
	if err != nil {
		return location
	}
	ref, err := url.Parse(location)
	if err != nil {
		return location
	}
	return base.ResolveReference(ref).String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
