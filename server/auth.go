package server

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// authMiddleware checks the request's API key when auth is on
// (Options.APIKeys or Options.KeySecret) and puts who it acts as in the
// request's context: the key and its project (project.go, keys.go).
//
//   - Options.APIKeys (serve --api-key-env) are compared in constant time;
//     they act in store.DefaultProject: the single-project shortcut.
//   - Otherwise, with Options.KeySecret, the key is looked up in the store
//     by its hash (keys.go) and acts in its project.
//
// A key is taken from "Authorization: Bearer <key>" or "api-key: <key>".
// Failures get the API's 401 (invalid_request_error, code
// invalid_api_key); the message never repeats the key sent. When the
// store cannot be asked, the answer is 503 (the key may be good). With
// auth off every request acts in the default project.
func (s *Server) authMiddleware(next http.Handler) http.Handler {
	keys := make([][]byte, 0, len(s.opts.APIKeys))
	for _, k := range s.opts.APIKeys {
		if k != "" {
			keys = append(keys, []byte(k))
		}
	}
	if len(keys) == 0 && s.keys == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := credential(r)
		if !ok {
			writeAPIError(w, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
				Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the api-key header."})
			return
		}
		p, err := s.authenticate(r, keys, got)
		switch {
		case errors.Is(err, errKeyUnknown):
			writeAPIError(w, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
				Message: "Incorrect API key provided."})
			return
		case err != nil:
			s.log.Warn("auth: the key store failed", "err", err.Error())
			writeAPIError(w, &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "service_unavailable",
				Message: "The server could not check your API key right now. Please retry."})
			return
		}
		if rw := findRespWriter(w); rw != nil {
			rw.project = p.project // for the request log
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// authenticate returns the principal of key: one of the static keys, or a
// key of the store.
func (s *Server) authenticate(r *http.Request, static [][]byte, key string) (principal, error) {
	match, which := 0, 0
	for i, k := range static {
		m := subtle.ConstantTimeCompare([]byte(key), k)
		which += m * i
		match |= m
	}
	if match == 1 {
		return principal{keyID: "static:" + strconv.Itoa(which), project: projectOr("")}, nil
	}
	if s.keys == nil {
		return principal{}, errKeyUnknown
	}
	return s.keys.resolve(r.Context(), key)
}

// findRespWriter returns the request log's respWriter under w, or nil.
func findRespWriter(w http.ResponseWriter) *respWriter {
	for w != nil {
		if rw, ok := w.(*respWriter); ok {
			return rw
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
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
