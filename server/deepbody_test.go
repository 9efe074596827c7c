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
	wide := []byte(`{"metadata":[` + strings.Repeat("0,", server.MaxJSONValues) + `0]}`)
	for _, r := range fuzzRoutes {
		if r.method != http.MethodPost || len(r.seeds) == 0 || r.seeds[0] == "multipart" {
			continue
		}
		path := "/v1" + fx.fill(r.path)
		t.Run(r.path, func(t *testing.T) {
			limit := server.MaxJSONDepth
			if strings.HasSuffix(r.path, "/search") {
				limit = 19 // 8 compound filter levels below the top one
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

			rec, took = fx.timedDo(r.method, path, wide)
			require.Equal(t, http.StatusBadRequest, rec.Code, "body: %.200s", rec.Body)
			assert.Contains(t, apiErrorMessage(t, rec), fmt.Sprintf("more than %d values", server.MaxJSONValues))
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
