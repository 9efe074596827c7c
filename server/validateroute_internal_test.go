package server

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen/genserver"
)

// TestSpecRoutesMatchTheValidatorsRouter: for every path of the spec, with
// parameter values that look like the literal segments of other paths,
// and every method, specRoutes finds the route kin-openapi's router
// (which the full validator uses) finds, with the same parameters, or
// hands the request to the full validator.
func TestSpecRoutesMatchTheValidatorsRouter(t *testing.T) {
	doc, err := genserver.GetSpec()
	require.NoError(t, err)
	doc.Servers = openapi3.Servers{{URL: "/v1"}}
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	sr := newSpecRoutes(doc, &openapi3filter.Options{})

	literals := map[string]bool{"x_1": true}
	for path := range doc.Paths.Map() {
		for _, seg := range strings.Split(path, "/") {
			if seg != "" && !strings.HasPrefix(seg, "{") {
				literals[seg] = true
			}
		}
	}
	var urls []string
	for path := range doc.Paths.Map() {
		urls = append(urls, "/v1"+path)
		for lit := range literals {
			u := "/v1" + path
			for strings.Contains(u, "{") {
				i, j := strings.Index(u, "{"), strings.Index(u, "}")
				u = u[:i] + lit + u[j+1:]
			}
			urls = append(urls, u)
		}
	}
	urls = append(urls, "/v1/threads//runs", "/v1/threads/a%20b", "/v1/threads/a/", "/v1/./threads", "/v2/threads", "/v1/unknown/x")
	matched := 0
	for _, u := range urls {
		for _, method := range []string{"GET", "POST", "DELETE", "PUT", "PATCH"} {
			r := httptest.NewRequest(method, u, nil)
			rt, params := sr.find(r)
			want, wantParams, err := router.FindRoute(r)
			if rt == nil {
				continue // the full validator routes it
			}
			matched++
			require.NoError(t, err, "%s %s: found %s, the validator's router did not", method, u, rt.route.Path)
			assert.Equal(t, want.Path, rt.route.Path, "%s %s", method, u)
			assert.Equal(t, want.Operation, rt.route.Operation, "%s %s", method, u)
			assert.Equal(t, wantParams, params, "%s %s", method, u)
		}
	}
	assert.Greater(t, matched, 100, "specRoutes routes most requests itself")
}

// TestSpecRoutesSkipOnlyUncheckable: the operations let through unchecked
// without a query are the GETs and DELETEs without body or required
// parameter outside the path, and none with a query.
func TestSpecRoutesSkipOnlyUncheckable(t *testing.T) {
	doc, err := genserver.GetSpec()
	require.NoError(t, err)
	doc.Servers = openapi3.Servers{{URL: "/v1"}}
	sr := newSpecRoutes(doc, &openapi3filter.Options{})
	r := httptest.NewRequest("GET", "/v1/threads/thread_1/runs/run_1", nil)
	rt, _ := sr.find(r)
	require.NotNil(t, rt)
	assert.True(t, rt.noChecks, "getRun")
	r = httptest.NewRequest("POST", "/v1/threads/thread_1/runs", nil)
	rt, _ = sr.find(r)
	require.NotNil(t, rt)
	assert.False(t, rt.noChecks, "createRun has a body")
	for _, sp := range sr.paths {
		for method, rt := range sp.byVerb {
			if rt.noChecks {
				assert.Contains(t, []string{"GET", "DELETE"}, method)
				assert.Nil(t, rt.route.Operation.RequestBody)
			}
		}
	}
}
