package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
)

// Limits on the shape of JSON request bodies, checked on every route before
// request validation (whose cost grows with nesting: kin-openapi visits a
// matched oneOf branch twice, so nested unions cost 2^depth).
const (
	// MaxJSONDepth is how deeply a JSON request body may nest objects and
	// arrays: 32 levels. Tool parameters and response formats (JSON
	// Schemas) are the deepest legitimate bodies.
	MaxJSONDepth = 32
	// MaxJSONValues is how many objects, arrays and members a JSON request
	// body may hold in all (counted as containers plus separators): 100 000.
	// The largest legitimate bodies (128 tools with their schemas, 500 file
	// ids, 32 messages of 100 parts) stay far below it.
	MaxJSONValues = 100_000
	// maxSearchJSONDepth bounds searchVectorStore bodies: filters nest at
	// most maxFilterDepth compound levels below the top one, each an object
	// and its array, under the body and with an in/nin value list at the
	// bottom.
	maxSearchJSONDepth = 2 + 2*maxFilterDepth + 1
	// maxSearchJSONValues bounds searchVectorStore bodies: at most 10
	// queries and filters of a few hundred comparisons need far less, and
	// searching re-reads the filters at each level.
	maxSearchJSONValues = 10_000
)

// jsonLimits are the shape limits of one operation's bodies.
type jsonLimits struct{ depth, values int }

// jsonLimitsByOp lowers MaxJSONDepth and MaxJSONValues for operations whose
// bodies are documented to be smaller.
var jsonLimitsByOp = map[string]jsonLimits{"searchVectorStore": {maxSearchJSONDepth, maxSearchJSONValues}}

// errJSONShape is the error of a body over one of the shape limits.
type errJSONShape struct{ msg string }

func (e *errJSONShape) Error() string { return e.msg }

// jsonShapeMiddleware reads JSON request bodies (everything but multipart
// uploads) through a scanner that counts nesting and values, and refuses a
// body over MaxJSONDepth or MaxJSONValues (or its operation's lower limits)
// with a 400 as soon as the limit is crossed, before anything parses it.
// The body read so far is then handed on unchanged.
func (s *Server) jsonShapeMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || isMultipart(r) {
			next.ServeHTTP(w, r)
			return
		}
		lim := jsonLimits{MaxJSONDepth, MaxJSONValues}
		if _, op := s.routeOf(r); op != "" {
			if l, ok := jsonLimitsByOp[op]; ok {
				lim = l
			}
		}
		body, err := readJSONShaped(r.Body, lim.depth, lim.values)
		var shape *errJSONShape
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &shape):
			writeAPIError(w, errBadRequest("", "Invalid request body: %s.", shape.msg))
			return
		case errors.As(err, &mbe):
			writeAPIError(w, errTooLarge(mbe.Limit))
			return
		case err != nil:
			writeAPIError(w, errBadRequest("", "Invalid request body: it could not be read."))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// readJSONShaped reads body whole, failing with *errJSONShape as soon as
// the JSON in it nests deeper than maxDepth or holds more than maxValues
// containers and separators. It checks shape only: syntax is the
// validator's business.
func readJSONShaped(body io.Reader, maxDepth, maxValues int) ([]byte, error) {
	var sc jsonShapeScanner
	var buf bytes.Buffer
	chunk := make([]byte, 32<<10)
	for {
		n, err := body.Read(chunk)
		if n > 0 {
			if serr := sc.scan(chunk[:n], maxDepth, maxValues); serr != nil {
				return nil, serr
			}
			buf.Write(chunk[:n])
		}
		if err == io.EOF {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// jsonShapeScanner tracks nesting across chunks of a JSON text.
type jsonShapeScanner struct {
	depth, values    int
	inString, escape bool
}

func (sc *jsonShapeScanner) scan(b []byte, maxDepth, maxValues int) error {
	for _, c := range b {
		if sc.inString {
			switch {
			case sc.escape:
				sc.escape = false
			case c == '\\':
				sc.escape = true
			case c == '"':
				sc.inString = false
			}
			continue
		}
		switch c {
		case '"':
			sc.inString = true
		case '{', '[':
			sc.depth++
			if sc.depth > maxDepth {
				return &errJSONShape{msg: "it nests objects and arrays deeper than " + itoa(maxDepth) + " levels"}
			}
			sc.values++
		case '}', ']':
			sc.depth--
		case ',':
			sc.values++
		default:
			continue
		}
		if sc.values > maxValues {
			return &errJSONShape{msg: "it holds more than " + itoa(maxValues) + " values"}
		}
	}
	return nil
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
