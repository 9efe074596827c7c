package assistantstest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/assistants-go/assistants/gen/genserver"
)

// maxRecorded bounds how much of one response body is kept for validation;
// larger bodies (big file downloads) are checked by status and content type
// only.
const maxRecorded = 8 << 20

// spec is the parsed spec and its router, shared by every validator.
type spec struct {
	doc         *openapi3.T
	router      routers.Router
	errorSchema *openapi3.Schema
	eventSchema *openapi3.Schema
}

var (
	specOnce sync.Once
	specVal  *spec
	specErr  error
)

func loadSpec() (*spec, error) {
	specOnce.Do(func() {
		doc, err := genserver.GetSpec()
		if err != nil {
			specErr = err
			return
		}
		doc.Servers = nil // match paths on any host; "/v1" is stripped before routing
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			specErr = err
			return
		}
		s := &spec{doc: doc, router: r}
		if ref := doc.Components.Schemas["ErrorResponse"]; ref != nil {
			s.errorSchema = ref.Value
		}
		if ref := doc.Components.Schemas["AssistantStreamEvent"]; ref != nil {
			s.eventSchema = ref.Value
		}
		if s.errorSchema == nil {
			specErr = errors.New("spec has no ErrorResponse schema")
			return
		}
		specVal = s
	})
	return specVal, specErr
}

// validator checks every response of a handler against the spec and reports
// mismatches on t.
type validator struct {
	report func(msg string)
	spec   *spec
}

func newValidator(report func(msg string)) (*validator, error) {
	s, err := loadSpec()
	if err != nil {
		return nil, err
	}
	return &validator{report: report, spec: s}, nil
}

func (v *validator) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: 0}
		next.ServeHTTP(rec, r)
		if rec.hijacked {
			return // a dropped connection (fault injection): nothing to check
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if err := v.check(r, rec); err != nil {
			msg := err.Error()
			if i := strings.Index(msg, "\nSchema:"); i >= 0 {
				msg = msg[:i] // the schema dump is long and says little
			}
			v.report(fmt.Sprintf("assistantstest: response does not match the spec: %s %s -> %d: %s", r.Method, r.URL.Path, rec.status, msg))
		}
	})
}

// check validates one recorded response.
func (v *validator) check(r *http.Request, rec *recorder) error {
	ct := rec.Header().Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)

	// Route on a copy of the request with /v1 stripped.
	u := *r.URL
	path, ok := strings.CutPrefix(u.Path, "/v1")
	if !ok {
		return v.checkError(rec, mt, "no route")
	}
	u.Path = path
	u.RawPath = ""
	rr := r.Clone(context.WithoutCancel(r.Context()))
	rr.URL = &u
	rr.Body = http.NoBody
	route, params, err := v.spec.router.FindRoute(rr)
	if err != nil {
		// Not an operation of the spec (unknown path, bad id characters...):
		// the answer must be an error in the API's shape.
		return v.checkError(rec, mt, "no route")
	}
	op := route.Operation.OperationID
	if op != "" { // the embedded spec capitalizes operationIds
		op = strings.ToLower(op[:1]) + op[1:]
	}
	if rec.overflow {
		if rec.status >= 400 {
			return fmt.Errorf("%s: error body larger than %d bytes", op, maxRecorded)
		}
		return nil
	}
	if mt == "text/event-stream" {
		if rec.status != http.StatusOK {
			return fmt.Errorf("%s: event stream with status %d", op, rec.status)
		}
		if err := v.checkStream(rec.body.Bytes()); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if route.Operation.Responses.Status(200) == nil || route.Operation.Responses.Status(200).Value.Content.Get("text/event-stream") == nil {
			return fmt.Errorf("%s: the spec has no event stream for this operation", op)
		}
		return nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    rr,
			PathParams: params,
			Route:      route,
			Options:    &openapi3filter.Options{ExcludeRequestBody: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: rec.status,
		Header: rec.Header(),
		Body:   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// checkError checks a response that no operation of the spec describes: it
// must be an API-shaped JSON error.
func (v *validator) checkError(rec *recorder, mt, why string) error {
	if rec.status < 400 {
		return fmt.Errorf("%s, yet status %d", why, rec.status)
	}
	if mt != "application/json" {
		return fmt.Errorf("%s: error with content type %q, want application/json", why, mt)
	}
	var body any
	if err := json.Unmarshal(rec.body.Bytes(), &body); err != nil {
		return fmt.Errorf("%s: error body is not JSON: %w", why, err)
	}
	if err := v.spec.errorSchema.VisitJSON(body); err != nil {
		return fmt.Errorf("%s: error body: %w", why, err)
	}
	return nil
}

// checkStream validates each server-sent event of body: event name and JSON
// data against AssistantStreamEvent (the "done" event's data is "[DONE]").
func (v *validator) checkStream(body []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), maxRecorded)
	var event string
	var data []string
	n := 0
	flush := func() error {
		defer func() { event, data = "", nil }()
		if event == "" && data == nil {
			return nil
		}
		n++
		if event == "" {
			return fmt.Errorf("event %d has no event name", n)
		}
		raw := strings.Join(data, "\n")
		var payload any
		if event == "done" {
			payload = raw
		} else if err := json.Unmarshal([]byte(raw), &payload); err != nil {
			return fmt.Errorf("event %d (%s): data is not JSON: %w", n, event, err)
		}
		if v.spec.eventSchema == nil {
			return nil
		}
		if err := v.spec.eventSchema.VisitJSON(map[string]any{"event": event, "data": payload}); err != nil {
			return fmt.Errorf("event %d (%s): %w", n, event, err)
		}
		return nil
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if err := flush(); err != nil {
				return err
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			d := strings.TrimPrefix(line, "data:")
			data = append(data, strings.TrimPrefix(d, " "))
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

// recorder passes a response through to the client (flushes included) and
// keeps a copy of its status, headers and first maxRecorded body bytes.
type recorder struct {
	http.ResponseWriter
	status   int
	body     bytes.Buffer
	overflow bool
	hijacked bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if !r.overflow {
		if r.body.Len()+len(p) > maxRecorded {
			r.overflow = true
			r.body.Reset()
		} else {
			r.body.Write(p)
		}
	}
	return r.ResponseWriter.Write(p)
}

// Flush passes flushes through so event streams reach the client live.
func (r *recorder) Flush() {
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack passes hijacking through (dropped-connection faults) and marks the
// response as not checkable.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.hijacked = true
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
