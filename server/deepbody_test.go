package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
)

// deepBodyBound is the time any answer to a deep or wide body must arrive
// in. It is generous (a slow, shared machine under -race); the answers
// measured take microseconds to a few milliseconds.
const deepBodyBound = 2 * time.Second

// compoundFilter is a search body whose filter nests n compound levels over
// one comparison.
func compoundFilter(n int) string {
	f := `{"type":"eq","key":"k","value":"v"}`
	for range n {
		f = `{"type":"and","filters":[` + f + `]}`
	}
	return `{"query":"q","filters":` + f + `}`
}

// timedDo serves one request and reports how long the answer took.
func (fx *fuzzFixture) timedDo(method, path string, body []byte) (*httptest.ResponseRecorder, time.Duration) {
	start := time.Now()
	rec := fx.do(method, path, "application/json", body)
	return rec, time.Since(start)
}

func apiErrorMessage(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "body: %s", rec.Body)
	return e.Error.Message
}

// TestDeepSearchFilterRefusedFast: compound filters nested past the
// documented depth get a 400 at once. Validating them first cost 2^depth
// (16 deep: 0.6 s, 20 deep: 9.5 s, 100 deep: never answered).
func TestDeepSearchFilterRefusedFast(t *testing.T) {
	fx := newFuzzFixture(t)
	path := "/v1/vector_stores/" + fx.ids["{vs}"] + "/search"
	for _, depth := range []int{9, 16, 20, 100, 10000} {
		t.Run(fmt.Sprint(depth), func(t *testing.T) {
			body := []byte(compoundFilter(depth))
			var times []time.Duration
			for range 5 {
				rec, took := fx.timedDo(http.MethodPost, path, body)
				require.Equal(t, http.StatusBadRequest, rec.Code, "body: %s", rec.Body)
				assert.Contains(t, apiErrorMessage(t, rec), "nest")
				times = append(times, took)
			}
			slices.Sort(times)
			t.Logf("%d-deep compound filter: 400 in %v (median of 5)", depth, times[2])
			assert.Less(t, times[2], 100*time.Millisecond)
		})
	}
	t.Run("the documented depth still works", func(t *testing.T) {
		rec, _ := fx.timedDo(http.MethodPost, path, []byte(compoundFilter(8)))
		assert.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	})
}

// TestJSONShapeLimitsEveryRoute: on every route that takes a JSON body, a
// body one level deeper than MaxJSONDepth, or with more than MaxJSONValues
// values, is refused with a 400 naming the limit; at the limit it is not.
func TestJSONShapeLimitsEveryRoute(t *testing.T) {
	fx := newFuzzFixture(t)
	nested := func(depth int) []byte {
		return []byte(`{"metadata":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`)
	}
	wide := func(values int) []byte {
		return []byte(`{"metadata":[` + strings.Repeat("0,", values) + `0]}`)
	}
	for _, r := range fuzzRoutes {
		if r.method != http.MethodPost || len(r.seeds) == 0 || r.seeds[0] == "multipart" {
			continue
		}
		path := "/v1" + fx.fill(r.path)
		t.Run(r.path, func(t *testing.T) {
			limit, values := server.MaxJSONDepth, server.MaxJSONValues
			if strings.HasSuffix(r.path, "/search") {
				limit = 19      // 8 compound filter levels below the top one
				values = 10_000 // 10 queries and a few hundred comparisons
			}
			rec, took := fx.timedDo(r.method, path, nested(limit+1))
			require.Equal(t, http.StatusBadRequest, rec.Code, "body: %s", rec.Body)
			assert.Contains(t, apiErrorMessage(t, rec), fmt.Sprintf("deeper than %d levels", limit))
			assert.Less(t, took, deepBodyBound)

			rec, _ = fx.timedDo(r.method, path, nested(limit))
			assert.Less(t, rec.Code, 500, "body: %s", rec.Body)
			if rec.Code == http.StatusBadRequest {
				assert.NotContains(t, apiErrorMessage(t, rec), "levels", "at the limit the shape is fine")
			}

			rec, took = fx.timedDo(r.method, path, wide(values))
			require.Equal(t, http.StatusBadRequest, rec.Code, "body: %.200s", rec.Body)
			assert.Contains(t, apiErrorMessage(t, rec), fmt.Sprintf("more than %d values", values))
			assert.Less(t, took, deepBodyBound)
		})
	}
}

// FuzzDeepBodies sends deep and wide JSON bodies to every operation: nested
// arrays, nested objects, nested compound filters, and wide arrays of any
// leaf at any depth. Each answer must arrive within deepBodyBound and never
// be a 500.
func FuzzDeepBodies(f *testing.F) {
	for i, r := range fuzzRoutes {
		if r.method == http.MethodPost {
			f.Add(uint8(i), uint8(0), uint16(40), uint32(1), "0")
			f.Add(uint8(i), uint8(1), uint16(33), uint32(2), `"x"`)
			f.Add(uint8(i), uint8(3), uint16(2), uint32(120000), `{}`)
		}
	}
	f.Add(uint8(43), uint8(2), uint16(100), uint32(1), "")
	f.Add(uint8(43), uint8(2), uint16(16), uint32(3), "")
	f.Add(uint8(43), uint8(2), uint16(9), uint32(2), "")
	f.Add(uint8(1), uint8(3), uint16(31), uint32(90000), `{"type":"code_interpreter"}`)
	fx := newFuzzFixture(f)
	f.Fuzz(func(t *testing.T, route, shape uint8, depth uint16, width uint32, leaf string) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		d := int(depth % 3000)
		w := int(width % 300000)
		if len(leaf) > 64 {
			leaf = leaf[:64]
		}
		if leaf == "" {
			leaf = "0"
		}
		var b bytes.Buffer
		switch shape % 4 {
		case 0: // nested arrays in a field of the body
			b.WriteString(`{"metadata":` + strings.Repeat("[", d) + leaf + strings.Repeat("]", d) + `}`)
		case 1: // nested objects, each under a field name the API uses
			for range d {
				b.WriteString(`{"filters":`)
			}
			b.WriteString(leaf)
			b.WriteString(strings.Repeat("}", d))
		case 2: // compound filters, each joining w copies of the level below
			b.WriteString(compoundFilterWide(d%200, max(w%8, 1)))
		case 3: // a wide array of leaves, d levels down
			b.WriteString(`{"tools":` + strings.Repeat("[", d) + "[")
			for i := range w {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(leaf)
				if b.Len() > 4<<20 {
					break
				}
			}
			b.WriteString("]" + strings.Repeat("]", d) + `}`)
		}
		path := "/v1" + fx.fill(r.path)
		rec, took := fx.timedDo(r.method, path, b.Bytes())
		if rec.Code >= 500 {
			t.Fatalf("%s %s (shape %d, depth %d, width %d): %d %s", r.method, path, shape%4, d, w, rec.Code, rec.Body)
		}
		if took > deepBodyBound {
			t.Fatalf("%s %s (shape %d, depth %d, width %d, %d bytes): answered in %v, over %v", r.method, path, shape%4, d, w, b.Len(), took, deepBodyBound)
		}
	})
}

// compoundFilterWide is a search body whose filter nests depth compound
// levels, each joining width copies of the level below; it stops growing
// at about 1 MiB.
func compoundFilterWide(depth, width int) string {
	f := `{"type":"eq","key":"k","value":"v"}`
	for range depth {
		if len(f)*width > 1<<20 {
			width = 1
		}
		f = `{"type":"or","filters":[` + strings.TrimSuffix(strings.Repeat(f+",", width), ",") + `]}`
	}
	return `{"query":"q","filters":` + f + `}`
}

// levelsFilter is a search body whose filter has one compound level per
// width, each joining that many copies of the level below, over leaf.
func levelsFilter(widths []int, leaf string) string {
	f := leaf
	for i := len(widths) - 1; i >= 0; i-- {
		f = `{"type":"or","filters":[` + strings.TrimSuffix(strings.Repeat(f+",", widths[i]), ",") + `]}`
	}
	return `{"query":"q","filters":` + f + `}`
}

// TestWideSearchFiltersFast: filters within the depth limit but joining
// several filters at each level are checked in linear time. The spec's
// validator copies and visits a matched union branch twice per level:
// without the linear check, 8 levels of 2 over in-lists (19 KB) took 3.4 s
// and 8 levels of 3, 2, 2... about twice that.
func TestWideSearchFiltersFast(t *testing.T) {
	fx := newFuzzFixture(t)
	path := "/v1/vector_stores/" + fx.ids["{vs}"] + "/search"
	eq := `{"type":"eq","key":"k","value":"v"}`
	in := `{"type":"in","key":"k","value":[1,2,3,4,5,6,7,8]}`
	for _, c := range []struct {
		widths []int
		leaf   string
		status int
	}{
		{[]int{2, 2, 2, 2, 2, 2, 2, 2}, eq, http.StatusOK},
		{[]int{2, 2, 2, 2, 2, 2, 2, 2}, in, http.StatusOK},
		{[]int{3, 2, 2, 2, 2, 2, 2, 2}, in, http.StatusOK},
		{[]int{10, 10, 10}, eq, http.StatusOK},
		{[]int{3, 3, 3, 3, 3, 3, 3, 3}, eq, http.StatusBadRequest}, // 36 000 values: over the search body's 10 000
	} {
		body := levelsFilter(c.widths, c.leaf)
		rec, took := fx.timedDo(http.MethodPost, path, []byte(body))
		t.Logf("levels %v (%d bytes): %d in %v", c.widths, len(body), rec.Code, took)
		assert.Equal(t, c.status, rec.Code, "body: %.300s", rec.Body)
		assert.Less(t, took, time.Second)
	}
}

// TestSearchFilterSchemaErrors: the filters, checked apart from the spec's
// validator, are held to the same schema.
func TestSearchFilterSchemaErrors(t *testing.T) {
	fx := newFuzzFixture(t)
	path := "/v1/vector_stores/" + fx.ids["{vs}"] + "/search"
	cases := []struct{ filters, param string }{
		{`"eq"`, "filters"},
		{`null`, "filters"},
		{`{"key":"a","value":1}`, "filters.type"},
		{`{"type":7,"key":"a","value":1}`, "filters.type"},
		{`{"type":"like","key":"a","value":1}`, "filters.type"},
		{`{"type":"eq","value":1}`, "filters.key"},
		{`{"type":"eq","key":1,"value":1}`, "filters.key"},
		{`{"type":"eq","key":"a"}`, "filters.value"},
		{`{"type":"eq","key":"a","value":{"x":1}}`, "filters.value"},
		{`{"type":"in","key":"a","value":[1,[2]]}`, "filters.value[1]"},
		{`{"type":"eq","key":"a","value":1,"extra":true}`, "filters"},
		{`{"type":"and"}`, "filters.filters"},
		{`{"type":"or","filters":{}}`, "filters.filters"},
		{`{"type":"and","filters":[{"type":"eq","key":"a","value":1},{"type":"nope"}]}`, "filters.filters[1].type"},
		{`{"type":"and","filters":[],"key":"a"}`, "filters"},
	}
	for _, tc := range cases {
		rec := fx.do(http.MethodPost, path, "application/json", []byte(`{"query":"q","filters":`+tc.filters+`}`))
		require.Equal(t, http.StatusBadRequest, rec.Code, "%s: %s", tc.filters, rec.Body)
		var e struct {
			Error struct {
				Param *string `json:"param"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		require.NotNil(t, e.Error.Param, "%s: %s", tc.filters, rec.Body)
		assert.Equal(t, tc.param, *e.Error.Param, "%s: %s", tc.filters, rec.Body)
	}
	rec := fx.do(http.MethodPost, path, "application/json", []byte(`{"query":"q","filters":{"type":"and","filters":[{"type":"in","key":"a","value":[1,"b"]},{"type":"eq","key":"t","value":true}]},"bogus":1}`))
	require.Equal(t, http.StatusBadRequest, rec.Code, "the rest of the body is still validated: %s", rec.Body)
	assert.Contains(t, apiErrorMessage(t, rec), "bogus")
}
