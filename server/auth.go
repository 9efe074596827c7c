package server

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// authMiddleware checks the API key when Options.APIKeys is set. It accepts
// "Authorization: Bearer <key>" or "api-key: <key>" and compares in
// constant time against every configured key. Failures get the API's 401
// (invalid_request_error, code invalid_api_key); the message never repeats
// the key sent.
func (s *Server) authMiddleware(next http.Handler) http.Handler {
	if len(s.opts.APIKeys) == 0 {
		return next
	}
	keys := make([][]byte, 0, len(s.opts.APIKeys))
	for _, k := range s.opts.APIKeys {
		if k != "" {
			keys = append(keys, []byte(k))
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := credential(r)
		if !ok {
			writeAPIError(w, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
				Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the api-key header."})
			return
		}
		match := 0
		for _, k := range keys {
			match |= subtle.ConstantTimeCompare([]byte(got), k)
		}
		if match != 1 {
			writeAPIError(w, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
				Message: "Incorrect API key provided."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// credential returns the key a request carries, from Authorization: Bearer
// or api-key.
func credential(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, key, ok := strings.Cut(strings.TrimSpace(h), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if key = strings.TrimSpace(key); key != "" {
				return key, true
			}
		}
	}
	if k := strings.TrimSpace(r.Header.Get("api-key")); k != "" {
		return k, true
	}
	return "", false
}
