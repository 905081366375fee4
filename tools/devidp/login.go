package main

import (
	"html/template"
	"net/http"
	"regexp"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// The login page signs in whoever names a user: there are no passwords, and a new name is a
// new person. That is what a development provider is for, and why it listens on loopback or
// inside a test cluster only.
var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<title>order-system development sign-in</title>
<h1>Sign in (development provider)</h1>
<p>Any user name signs in as that user; there are no passwords.</p>
<form method="post" action="/login">
<input type="hidden" name="authRequestID" value="{{.}}">
<label>User name <input name="username" pattern="[A-Za-z0-9._@-]{1,64}" required autofocus></label>
<button type="submit">Sign in</button>
</form>
`))

var validUsername = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// login serves the page the provider sends a sign-in to, and takes its answer: the request
// gets the user as its subject, and goes back to the provider's callback, which redirects to
// the client with a code.
func login(s *storage, callback func(r *http.Request, id string) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = loginPage.Execute(w, r.URL.Query().Get("authRequestID"))
		case http.MethodPost:
			id, user := r.PostFormValue("authRequestID"), r.PostFormValue("username")
			if !validUsername.MatchString(user) {
				http.Error(w, "a user name is 1 to 64 letters, digits and ._@-", http.StatusBadRequest)
				return
			}
			if err := s.signIn(id, user); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			http.Redirect(w, r, callback(r, id), http.StatusFound)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	}
}

// callbackOf is the provider's callback URL for a sign-in: the login page is not one of the
// provider's own routes, so the issuer is put in the context the provider reads it from.
func callbackOf(p op.OpenIDProvider, issuer string) func(r *http.Request, id string) string {
	url := op.AuthCallbackURL(p)
	return func(r *http.Request, id string) string { return url(op.ContextWithIssuer(r.Context(), issuer), id) }
}
