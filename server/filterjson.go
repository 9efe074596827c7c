package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// Search filters are checked here, in one linear pass, instead of by the
// spec's validator: their schema is a union nested in itself, and the
// validator visits a matched union branch twice (and copies its subtree on
// each visit), so a filter of 8 levels joining 2 filters each took 4 s and
// one joining 3 each 45 s. searchFiltersMiddleware checks the filters
// against the same schema (VectorStoreSearchFilter), hides them from the
// validator, and hands the handler the body as it came.

// searchFiltersMiddleware wraps validate (the spec's request validator) for
// searchVectorStore bodies.
func (s *Server) searchFiltersMiddleware(validate func(http.Handler) http.Handler, next http.Handler) http.Handler {
	restore := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if orig, ok := r.Context().Value(origBodyKey{}).([]byte); ok {
			r.Body = io.NopCloser(bytes.NewReader(orig))
			r.ContentLength = int64(len(orig))
		}
		next.ServeHTTP(w, r)
	})
	validated := validate(restore)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/search") || r.Body == nil || r.Body == http.NoBody {
			validated.ServeHTTP(w, r)
			return
		}
		if _, op := s.routeOf(r); op != "searchVectorStore" {
			validated.ServeHTTP(w, r)
			return
		}
		orig, err := io.ReadAll(r.Body)
		if err != nil {
			writeAPIError(w, errBadRequest("", "Invalid request body: it could not be read."))
			return
		}
		forValidator := orig
		var fields map[string]json.RawMessage
		if json.Unmarshal(orig, &fields) == nil {
			if raw, ok := fields["filters"]; ok {
				var f any
				if err := json.Unmarshal(raw, &f); err != nil {
					writeAPIError(w, errBadRequest("filters", "Invalid 'filters': expected a filter object."))
					return
				}
				if err := checkFilterJSON("filters", f); err != nil {
					writeAPIError(w, err)
					return
				}
				delete(fields, "filters")
				if b, err := json.Marshal(fields); err == nil {
					forValidator = b
				}
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), origBodyKey{}, orig))
		r.Body = io.NopCloser(bytes.NewReader(forValidator))
		r.ContentLength = int64(len(forValidator))
		validated.ServeHTTP(w, r)
	})
}

// origBodyKey keys the body as the client sent it, for the handler.
type origBodyKey struct{}

// Operators of VectorStoreSearchFilter.
var (
	comparisonOps = []string{"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"}
	compoundOps   = []string{"and", "or"}
)

// checkFilterJSON checks a decoded filter against the spec's
// VectorStoreSearchFilter (ComparisonFilter or CompoundFilter, no other
// properties), in time linear in its size. Its depth is bounded by the body
// shape limit; the handler's checkFilter then applies the API's rules.
func checkFilterJSON(param string, v any) *apiError {
	obj, ok := v.(map[string]any)
	if !ok {
		return errBadRequest(param, "Invalid '%s': expected a filter object.", param)
	}
	typ, ok := obj["type"].(string)
	if !ok {
		if _, present := obj["type"]; !present {
			return errBadRequest(param+".type", "Missing required parameter: '%s.type'.", param)
		}
		return errBadRequest(param+".type", "Invalid '%s.type': expected a string.", param)
	}
	var allowed []string
	switch {
	case slices.Contains(comparisonOps, typ):
		allowed = []string{"type", "key", "value"}
		key, present := obj["key"]
		if !present {
			return errBadRequest(param+".key", "Missing required parameter: '%s.key'.", param)
		}
		if _, ok := key.(string); !ok {
			return errBadRequest(param+".key", "Invalid '%s.key': expected a string.", param)
		}
		val, present := obj["value"]
		if !present {
			return errBadRequest(param+".value", "Missing required parameter: '%s.value'.", param)
		}
		switch val := val.(type) {
		case string, float64, bool:
		case []any:
			for i, item := range val {
				switch item.(type) {
				case string, float64:
				default:
					return errBadRequest(fmt.Sprintf("%s.value[%d]", param, i), "Invalid '%s.value[%d]': expected a string or a number.", param, i)
				}
			}
		default:
			return errBadRequest(param+".value", "Invalid '%s.value': expected a string, a number, a boolean or an array.", param)
		}
	case slices.Contains(compoundOps, typ):
		allowed = []string{"type", "filters"}
		sub, present := obj["filters"]
		if !present {
			return errBadRequest(param+".filters", "Missing required parameter: '%s.filters'.", param)
		}
		list, ok := sub.([]any)
		if !ok {
			return errBadRequest(param+".filters", "Invalid '%s.filters': expected an array of filters.", param)
		}
		for i, item := range list {
			if err := checkFilterJSON(fmt.Sprintf("%s.filters[%d]", param, i), item); err != nil {
				return err
			}
		}
	default:
		return errBadRequest(param+".type", "Invalid value for '%s.type': expected one of %s.", param, strings.Join(append(slices.Clone(comparisonOps), compoundOps...), ", "))
	}
	for k := range obj {
		if !slices.Contains(allowed, k) {
			return errBadRequest(param, "Invalid '%s': property %q is unsupported.", param, truncateForMessage(k))
		}
	}
	return nil
}
