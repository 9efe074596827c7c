package server

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	nethttpmiddleware "github.com/oapi-codegen/nethttp-middleware"

	"github.com/assistants-go/assistants/gen/genserver"
)

// specInfo is the parsed spec, loaded once per process: the request
// validator built on it (shared by all servers; it holds no per-server
// state) and the operationId of every route pattern.
type specInfo struct {
	validator func(http.Handler) http.Handler
	opIDs     map[string]string // "POST /v1/threads/{thread_id}/runs" -> "createRun"
}

var loadSpecInfo = sync.OnceValues(func() (*specInfo, error) {
	doc, err := genserver.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("server: load spec: %w", err)
	}
	info := &specInfo{opIDs: map[string]string{}}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			// The embedded spec capitalizes operationIds; use the API's.
			info.opIDs[method+" /v1"+path] = lowerFirst(op.OperationID)
		}
	}
	// Match the spec's paths under /v1 on any host.
	doc.Servers = openapi3.Servers{{URL: "/v1"}}
	opts := &nethttpmiddleware.Options{
		Options: openapi3filter.Options{
			// Auth is our own middleware's job (auth.go).
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			// Defaults are the handlers' business: a modify request must
			// change only the fields it sends.
			SkipSettingDefaults: true,
			// As the middleware sets it (its DiscardValidatedValue is off).
			KeepValidatedValue: true,
		},
		SilenceServersWarning: true,
		// Uploads are checked by CreateFile while it streams the parts, so
		// a large file is not read twice.
		Skipper:              isMultipart,
		ErrorHandlerWithOpts: validationError,
	}
	full := nethttpmiddleware.OapiRequestValidatorWithOptions(doc, opts)
	routes := newSpecRoutes(doc, &opts.Options)
	info.validator = func(next http.Handler) http.Handler { return routes.middleware(full(next), next) }
	return info, nil
})

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// isMultipart reports whether r has a multipart/form-data body.
func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// validationMiddleware validates requests against the spec (parameters and
// JSON bodies). Invalid requests get a 400 invalid_request_error naming the
// offending field; unknown routes a 404. Before any of it, a JSON body that
// nests or spreads beyond the shape limits (MaxJSONDepth, MaxJSONValues) is
// refused with a 400 (jsonshape.go), with validation on or off; search
// filters are checked apart, in linear time (filterjson.go).
func (s *Server) validationMiddleware(next http.Handler) http.Handler {
	if s.opts.DisableValidation {
		return s.jsonShapeMiddleware(next)
	}
	info, err := loadSpecInfo()
	if err != nil {
		// The embedded spec is part of the binary; this cannot happen in a
		// working build. Serve without validation rather than not at all.
		s.log.Error("request validation off", "err", err.Error())
		return s.jsonShapeMiddleware(next)
	}
	return s.jsonShapeMiddleware(s.searchFiltersMiddleware(info.validator, next))
}

// validationError writes a validation failure in the API's shape.
func validationError(_ context.Context, err error, w http.ResponseWriter, r *http.Request, opts nethttpmiddleware.ErrorHandlerOpts) {
	if opts.MatchedRoute == nil || opts.StatusCode == http.StatusNotFound || opts.StatusCode == http.StatusMethodNotAllowed {
		writeAPIError(w, errInvalidURL(r))
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeAPIError(w, errTooLarge(mbe.Limit))
		return
	}
	writeAPIError(w, describeValidationError(err))
}

// errInvalidURL is the API's 404 for a path or method it does not serve.
func errInvalidURL(r *http.Request) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error",
		Message: fmt.Sprintf("Invalid URL (%s %s)", truncateForMessage(r.Method), truncateForMessage(r.URL.Path))}
}

// errTooLarge is the answer to a body over the size limit.
func errTooLarge(limit int64) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
		Message: fmt.Sprintf("The request body is too large: the limit is %d bytes.", limit)}
}

// describeValidationError turns a kin-openapi error into a 400 whose param
// and message name the field at fault.
func describeValidationError(err error) *apiError {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return errBadRequest("", "Invalid request.")
	}
	if re.Parameter != nil {
		name := re.Parameter.Name
		reason := firstLine(re.Reason)
		var se *openapi3.SchemaError
		if errors.As(re.Err, &se) {
			reason = firstLine(se.Reason)
		} else if re.Err != nil && reason == "" {
			reason = firstLine(re.Err.Error())
		}
		if reason == "" {
			reason = "invalid value"
		}
		return errBadRequest(name, "Invalid '%s': %s.", name, strings.TrimSuffix(reason, "."))
	}
	var se *openapi3.SchemaError
	if errors.As(re.Err, &se) {
		se = oneOfBranchError(se)
		param := jsonPointerToParam(se.JSONPointer())
		reason := firstLine(se.Reason)
		if reason == "" {
			reason = fmt.Sprintf("does not match the schema (%s)", se.SchemaField)
		}
		if m := missingProperty.FindStringSubmatch(reason); m != nil {
			if param == "" || !strings.HasSuffix(param, m[1]) {
				param = strings.TrimPrefix(param+"."+m[1], ".")
			}
			return errBadRequest(param, "Missing required parameter: '%s'.", param)
		}
		if param == "" {
			return errBadRequest("", "Invalid request body: %s.", strings.TrimSuffix(reason, "."))
		}
		return errBadRequest(param, "Invalid '%s': %s.", param, strings.TrimSuffix(reason, "."))
	}
	var pe *openapi3filter.ParseError
	if errors.As(re.Err, &pe) {
		return errBadRequest("", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
	}
	if re.Err != nil && strings.Contains(re.Err.Error(), "value is required") {
		return errBadRequest("", "A request body is required.")
	}
	reason := re.Reason
	if reason == "" && re.Err != nil {
		reason = re.Err.Error()
	}
	return errBadRequest("", "Invalid request body: %s.", strings.TrimSuffix(firstLine(reason), "."))
}

// oneOfBranchError returns, for a value that matches no member of a
// oneOf, the error of the member it was meant for: of the members' errors
// not about the "type" property (the discriminator), the one deepest in
// the value (e.g. chunking_strategy.static.max_chunk_size_tokens under its
// minimum, not "doesn't match any schema"). Otherwise se itself.
func oneOfBranchError(se *openapi3.SchemaError) *openapi3.SchemaError {
	var me openapi3.MultiError
	if se.SchemaField != "oneOf" || !errors.As(se.Origin, &me) {
		return se
	}
	best := se
	for _, e := range me {
		var be *openapi3.SchemaError
		if !errors.As(e, &be) {
			continue
		}
		if ptr := be.JSONPointer(); len(ptr) > len(best.JSONPointer()) && ptr[len(ptr)-1] != "type" ||
			best == se && len(ptr) == len(se.JSONPointer()) && strings.HasPrefix(be.Reason, "property ") {
			best = be
		}
	}
	if best != se {
		return oneOfBranchError(best)
	}
	return se
}

var missingProperty = regexp.MustCompile(`^property "([^"]+)" is missing`)

// jsonPointerToParam turns ["messages","0","content"] into
// "messages[0].content".
func jsonPointerToParam(ptr []string) string {
	var b strings.Builder
	for _, p := range ptr {
		if _, err := strconv.Atoi(p); err == nil && b.Len() > 0 {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	const n = 300
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}
