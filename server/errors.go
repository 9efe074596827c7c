package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/assistants-go/assistants/gen"
)

// apiError is an error a handler returns to answer with the API's error shape:
// {"error":{"message","type","param","code"}}. Handlers return it as a Go
// error; the strict handler's error hook writes it (see writeError).
type apiError struct {
	Status  int
	Type    string
	Code    string
	Param   string
	Message string
	Header  http.Header // extra reply headers (Retry-After...)
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

// errNotFound is the API's 404 for an unknown id.
func errNotFound(kind, id string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
		Param: kind + "_id", Message: fmt.Sprintf("No %s found with id '%s'.", kind, truncateForMessage(id))}
}

// errBadRequest is a 400 invalid_request_error naming the offending field.
func errBadRequest(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: fmt.Sprintf(format, args...)}
}

// errConflict is a 409, used for idempotency key reuse with another body.
func errConflict(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusConflict, Type: "invalid_request_error", Code: "idempotency_key_reused", Message: fmt.Sprintf(format, args...)}
}

// truncateForMessage keeps error messages small when an id is huge or odd.
func truncateForMessage(s string) string {
	const n = 64
	if len(s) > n {
		s = s[:n] + "..."
	}
	return fmt.Sprintf("%q", s)[1 : len(fmt.Sprintf("%q", s))-1]
}

// writeError writes err in the API's error shape. An *apiError keeps its status;
// any other error is a bug of ours and becomes a 500 server_error without detail.
//
// When the reply's headers are already out (writing the body failed: the
// client reset the connection), nothing is written: an error appended to a
// 200 body would corrupt the reply, and the idempotency record that a retry
// is answered from (see idempotency.go).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if headersSent(w) {
		s.log.Warn("reply not completed", "method", r.Method, "path", truncateForMessage(r.URL.Path), "err", err.Error())
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err.Error())
		ae = &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: "The server had an error while processing your request."}
	}
	writeAPIError(w, ae)
}

// headersSent reports whether w, or a writer under it, has sent the
// reply's headers (or given the connection away).
func headersSent(w http.ResponseWriter) bool {
	for w != nil {
		switch x := w.(type) {
		case interface{ headersSent() bool }:
			if x.headersSent() {
				return true
			}
		case *respWriter:
			if x.status != 0 || x.hijacked {
				return true
			}
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}

func writeAPIError(w http.ResponseWriter, ae *apiError) {
	body := gen.ErrorResponse{}
	body.Error.Message = ae.Message
	body.Error.Type = ae.Type
	if ae.Code != "" {
		code := ae.Code
		body.Error.Code = &code
	}
	if ae.Param != "" {
		p := ae.Param
		body.Error.Param = &p
	}
	for k, v := range ae.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(body)
}
