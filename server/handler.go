package server

import (
	"errors"
	"net/http"
	"sync"

	"github.com/assistants-go/assistants/gen/genserver"
)

// multipartSlack is the room a multipart body gets over MaxFileBytes for its
// boundaries and form fields.
const multipartSlack = 1 << 20

// buildHandler wires the generated router and strict handler under /v1 with
// the server's error shape, and wraps them in the middlewares, outermost
// first:
//
//	recovery -> health -> logging -> faults -> auth -> rate limit -> body limit -> validation -> idempotency -> run limit -> router
//
// /healthz and /readyz are answered by the health step, before the request
// log, auth and limits (health.go). Requests to other paths the API does
// not serve get the API's 404.
func (s *Server) buildHandler() http.Handler {
	strict := genserver.NewStrictHandlerWithOptions(s, nil, genserver.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  s.requestError,
		ResponseErrorHandlerFunc: s.writeError,
	})
	s.mux = http.NewServeMux()
	genserver.HandlerWithOptions(strict, genserver.StdHTTPServerOptions{
		BaseURL:          "/v1",
		BaseRouter:       s.mux,
		ErrorHandlerFunc: s.paramError,
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeAPIError(w, errInvalidURL(r)) })

	var h http.Handler = s.mux
	h = s.runLimitMiddleware(h) // inside idempotency: a replayed createRun is answered before it (runlimit.go)
	h = s.idempotencyMiddleware(h)
	h = s.validationMiddleware(h)
	h = s.bodyLimitMiddleware(h)
	h = s.rateLimitMiddleware(h)
	h = s.authMiddleware(h)
	h = s.faultsMiddleware(h)
	h = s.loggingMiddleware(h)
	h = s.healthRoutes(h)
	h = s.recoveryMiddleware(h)
	return h
}

// routeOf returns the route pattern that serves r ("POST
// /v1/threads/{thread_id}/runs") and its operationId, or empty strings.
func (s *Server) routeOf(r *http.Request) (pattern, opID string) {
	_, pattern = s.mux.Handler(r)
	if pattern == "/" {
		return "", ""
	}
	if info, err := loadSpecInfo(); err == nil {
		opID = info.opIDs[pattern]
	}
	return pattern, opID
}

// bodyLimitMiddleware bounds request bodies by route: MaxFileBytes plus
// some slack for a multipart body sent to an upload route (one whose spec
// takes multipart/form-data: createFile), MaxBodyBytes for every other
// body, a multipart one sent elsewhere included. A body whose declared
// length is over the limit is refused at once with a 413 naming the limit;
// one that turns out longer fails when read, also with a 413.
func (s *Server) bodyLimitMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := s.opts.MaxBodyBytes
		if isMultipart(r) {
			if pattern, _ := s.routeOf(r); uploadRoutes()[pattern] {
				limit = s.opts.MaxFileBytes + multipartSlack
			}
		}
		if r.ContentLength > limit {
			writeAPIError(w, errTooLarge(limit))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(w, r)
	})
}

// uploadRoutes returns the route patterns ("POST /v1/files") whose
// request body the spec takes as multipart/form-data.
var uploadRoutes = sync.OnceValue(func() map[string]bool {
	routes := map[string]bool{}
	doc, err := genserver.GetSpec()
	if err != nil {
		return routes // the embedded spec always loads in a working build
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody != nil && op.RequestBody.Value != nil && op.RequestBody.Value.Content.Get("multipart/form-data") != nil {
				routes[method+" /v1"+path] = true
			}
		}
	}
	return routes
})

// requestError answers a request the strict handler could not decode.
func (s *Server) requestError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeAPIError(w, errTooLarge(mbe.Limit))
		return
	}
	if isMultipart(r) || r.Method == http.MethodPost && r.Header.Get("Content-Type") != "" && !isJSON(r) {
		writeAPIError(w, errBadRequest("", "Invalid request body: %s.", firstLine(err.Error())))
		return
	}
	writeAPIError(w, errBadRequest("", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"))
}

// paramError answers a request whose path or query parameters the router
// could not bind, naming the parameter.
func (s *Server) paramError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ipf *genserver.InvalidParamFormatError
		req *genserver.RequiredParamError
		unm *genserver.UnmarshalingParamError
		tmv *genserver.TooManyValuesForParamError
	)
	switch {
	case errors.As(err, &ipf):
		writeAPIError(w, errBadRequest(ipf.ParamName, "Invalid '%s': %s.", ipf.ParamName, firstLine(ipf.Err.Error())))
	case errors.As(err, &req):
		writeAPIError(w, errBadRequest(req.ParamName, "Missing required parameter: '%s'.", req.ParamName))
	case errors.As(err, &unm):
		writeAPIError(w, errBadRequest(unm.ParamName, "Invalid '%s': %s.", unm.ParamName, firstLine(unm.Err.Error())))
	case errors.As(err, &tmv):
		writeAPIError(w, errBadRequest(tmv.ParamName, "Invalid '%s': expected one value.", tmv.ParamName))
	default:
		writeAPIError(w, errBadRequest("", "Invalid parameter: %s.", firstLine(err.Error())))
	}
}

func isJSON(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return len(ct) >= 16 && ct[:16] == "application/json"
}
