package apicheck

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
)

// Proxy returns a reverse proxy to upstream that checks every exchange passing through it and
// reports each problem to report (which may be nil: the report at the end has them all). An
// exchange whose upstream could not be reached is not checked, as it says nothing about the
// document; the client's connection is dropped, as the upstream's would have been.
func (c *Checker) Proxy(upstream *url.URL, report func(problem string)) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(upstream)
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		panic(http.ErrAbortHandler)
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		reqBody, _ := resp.Request.Context().Value(bodyKey{}).([]byte)
		problems := c.Check(resp.Request.Context(), Exchange{Request: resp.Request, RequestBody: reqBody, Status: resp.StatusCode, Header: resp.Header, ResponseBody: body})
		for _, p := range problems {
			if report != nil {
				report(p)
			}
		}
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r = r.WithContext(withBody(r.Context(), body))
		rp.ServeHTTP(w, r)
	})
}

// Transport returns a round tripper that checks every exchange made through next and
// reports each problem to report.
func (c *Checker) Transport(next http.RoundTripper, report func(problem string)) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		var reqBody []byte
		if req.Body != nil {
			b, err := io.ReadAll(req.Body)
			req.Body.Close()
			if err != nil {
				return nil, err
			}
			reqBody = b
			req.Body = io.NopCloser(bytes.NewReader(b))
		}
		resp, err := next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		for _, p := range c.Check(req.Context(), Exchange{Request: req, RequestBody: reqBody, Status: resp.StatusCode, Header: resp.Header, ResponseBody: body}) {
			report(p)
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
