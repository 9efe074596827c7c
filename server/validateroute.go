package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	nethttpmiddleware "github.com/oapi-codegen/nethttp-middleware"
)

// specRoutes finds the spec's operation of a request without the request
// validator's router (kin-openapi's gorillamux, which tries the paths'
// regular expressions one by one: an eighth of the CPU of a GET run), so
// that the validator checks the request against that operation directly;
// and it lets requests through that no check can fail: a GET or DELETE
// without a query whose operation takes no body and needs no query or
// header parameter (every path parameter of the spec is a plain string).
//
// It matches as the validator's router does, for the paths it takes on:
// the spec's paths in kin-openapi's matching order (fewest parameters
// first, then in reverse lexical order), the first whose segments match;
// a parameter matches one non-empty segment. It takes on only clean paths
// of unreserved characters under /v1 (no escapes, no empty, "." or ".."
// segment); any other request, and one whose matched path lacks the
// method, goes to the full validator, which answers as before.
type specRoutes struct {
	paths []specPath
	opts  *openapi3filter.Options
}

type specPath struct {
	segs   []string // literal segments; "" for a parameter
	params []string // parameter names, by segment ("" for a literal)
	byVerb map[string]*specRoute
}

type specRoute struct {
	route *routers.Route
	// noChecks: nothing to validate without a query or a body (see
	// specRoutes).
	noChecks bool
}

func newSpecRoutes(doc *openapi3.T, opts *openapi3filter.Options) *specRoutes {
	sr := &specRoutes{opts: opts}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		sp := specPath{byVerb: map[string]*specRoute{}}
		for _, seg := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
			if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
				sp.segs, sp.params = append(sp.segs, ""), append(sp.params, strings.Trim(seg, "{}"))
			} else {
				sp.segs, sp.params = append(sp.segs, seg), append(sp.params, "")
			}
		}
		for method, op := range item.Operations() {
			rt := &routers.Route{Spec: doc, Server: doc.Servers[0], Path: path, PathItem: item, Method: method, Operation: op}
			sp.byVerb[method] = &specRoute{route: rt, noChecks: (method == http.MethodGet || method == http.MethodDelete) &&
				op.RequestBody == nil && !needsInput(item.Parameters) && !needsInput(op.Parameters)}
		}
		sr.paths = append(sr.paths, sp)
	}
	return sr
}

// needsInput reports whether params has a parameter that is not a plain
// string in the path, or a required one outside the path.
func needsInput(params openapi3.Parameters) bool {
	for _, p := range params {
		v := p.Value
		if v == nil {
			return true
		}
		switch v.In {
		case openapi3.ParameterInPath:
			if v.Schema == nil || v.Schema.Value == nil || !v.Schema.Value.Type.Is(openapi3.TypeString) ||
				v.Schema.Value.Pattern != "" || v.Schema.Value.MinLength > 1 || v.Schema.Value.MaxLength != nil ||
				v.Schema.Value.Enum != nil || v.Schema.Value.Format != "" {
				return true
			}
		case openapi3.ParameterInQuery:
			if v.Required {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// find returns the route of r and its path parameters, or nil when r is
// one the full validator must route (see specRoutes).
func (sr *specRoutes) find(r *http.Request) (*specRoute, map[string]string) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok || r.URL.RawPath != "" || !cleanPath(rest) {
		return nil, nil
	}
	n := strings.Count(rest, "/") + 1
	for i := range sr.paths {
		sp := &sr.paths[i]
		if len(sp.segs) != n || !sp.match(rest) {
			continue
		}
		rt := sp.byVerb[r.Method]
		if rt == nil {
			return nil, nil // the validator's router says: method not allowed
		}
		params := make(map[string]string, 2)
		for j, seg := range strings.Split(rest, "/") {
			if sp.params[j] != "" {
				params[sp.params[j]] = seg
			}
		}
		return rt, params
	}
	return nil, nil
}

// match reports whether the segments of rest match sp's.
func (sp *specPath) match(rest string) bool {
	for _, want := range sp.segs {
		seg, tail, _ := strings.Cut(rest, "/")
		if want != "" && seg != want {
			return false
		}
		rest = tail
	}
	return true
}

// cleanPath reports whether p is non-empty segments of unreserved
// characters (RFC 3986) separated by single slashes, none "." or "..".
func cleanPath(p string) bool {
	if p == "" {
		return false
	}
	segStart := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if seg := p[segStart:i]; seg == "" || seg == "." || seg == ".." {
				return false
			}
			segStart = i + 1
			continue
		}
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return false
		}
	}
	return true
}

// middleware validates the requests it can route (see specRoutes) against
// their operation, answering failures as the full validator does, and
// hands the others to full.
func (sr *specRoutes) middleware(full, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isMultipart(r) { // the full validator's Skipper
			next.ServeHTTP(w, r)
			return
		}
		rt, params := sr.find(r)
		if rt == nil {
			full.ServeHTTP(w, r)
			return
		}
		if rt.noChecks && r.URL.RawQuery == "" {
			next.ServeHTTP(w, r)
			return
		}
		err := openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
			Request: r, PathParams: params, Route: rt.route, Options: sr.opts})
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		// As the full validator classifies it (nethttp-middleware).
		eo := nethttpmiddleware.ErrorHandlerOpts{MatchedRoute: &nethttpmiddleware.ErrorHandlerOptsMatchedRoute{Route: rt.route, PathParams: params}}
		switch e := err.(type) {
		case openapi3.MultiError:
			eo.StatusCode = http.StatusBadRequest
		case *openapi3filter.RequestError:
			eo.StatusCode = http.StatusBadRequest
		case *openapi3filter.SecurityRequirementsError:
			eo.StatusCode = http.StatusUnauthorized
		default:
			err = fmt.Errorf("error validating route: %w", e)
			eo.StatusCode = http.StatusInternalServerError
		}
		validationError(r.Context(), err, w, r, eo)
	})
}
