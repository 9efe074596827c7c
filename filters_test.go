package assistants_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

type region string

// TestSearchValues checks the JSON of the search query, filter and attribute
// constructors: the API's shapes, numbers exact (a Unix time survives), named
// string types sent as text.
func TestSearchValues(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"query one", assistants.SearchQuery("refunds"), `"refunds"`},
		{"query many", assistants.SearchQuery("a", "b"), `["a","b"]`},
		{"query none", assistants.SearchQuery(), `[]`},
		{"eq string", assistants.Eq("region", "eu"), `{"type":"eq","key":"region","value":"eu"}`},
		{"eq named string", assistants.Eq("region", region("us")), `{"type":"eq","key":"region","value":"us"}`},
		{"ne bool", assistants.Ne("draft", true), `{"type":"ne","key":"draft","value":true}`},
		{"gt unix time", assistants.Gt("date", int64(1704067201)), `{"type":"gt","key":"date","value":1704067201}`},
		{"gte float", assistants.Gte("score", 0.25), `{"type":"gte","key":"score","value":0.25}`},
		{"lt int", assistants.Lt("n", 3), `{"type":"lt","key":"n","value":3}`},
		{"lte float32", assistants.Lte("n", float32(1.5)), `{"type":"lte","key":"n","value":1.5}`},
		{"in strings", assistants.In("kind", "bird", "fish"), `{"type":"in","key":"kind","value":["bird","fish"]}`},
		{"nin ints", assistants.Nin("year", 2023, 2024), `{"type":"nin","key":"year","value":[2023,2024]}`},
		{"and/or", assistants.And(assistants.Eq("a", "x"), assistants.Or(assistants.Eq("b", 1), assistants.Eq("c", false))),
			`{"type":"and","filters":[{"type":"eq","key":"a","value":"x"},{"type":"or","filters":[{"type":"eq","key":"b","value":1},{"type":"eq","key":"c","value":false}]}]}`},
		{"and of none", assistants.And(), `{"type":"and","filters":[]}`},
		{"attribute string", assistants.AttributeString("eu"), `"eu"`},
		{"attribute number", assistants.AttributeNumber(1704067201), `1704067201`},
		{"attribute bool", assistants.AttributeBool(false), `false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			require.NoError(t, err)
			assert.JSONEq(t, tt.want, string(b))
		})
	}
}

// TestSearchValuesDecode reads constructed values back through the
// generated unions' named variants.
func TestSearchValuesDecode(t *testing.T) {
	f := assistants.In("kind", "bird")
	c, err := f.AsComparisonFilter()
	require.NoError(t, err)
	list, err := c.Value.AsComparisonFilterList()
	require.NoError(t, err)
	require.Len(t, list, 1)
	s, err := list[0].AsComparisonFilterString()
	require.NoError(t, err)
	assert.Equal(t, "bird", s)

	n, err := assistants.AttributeNumber(2.5).AsVectorStoreFileAttributeNumber()
	require.NoError(t, err)
	assert.Equal(t, 2.5, n)
	texts, err := assistants.SearchQuery("a", "b").AsVectorStoreSearchQueryTexts()
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, texts)

	attrs := gen.VectorStoreFileAttributes{"region": assistants.AttributeString("eu")}
	b, err := json.Marshal(attrs)
	require.NoError(t, err)
	assert.JSONEq(t, `{"region":"eu"}`, string(b))
}

// TestSearchValuesNaN: JSON cannot carry NaN; the value is left empty (null)
// rather than panicking.
func TestSearchValuesNaN(t *testing.T) {
	b, err := json.Marshal(assistants.AttributeNumber(math.NaN()))
	require.NoError(t, err)
	assert.Equal(t, "null", string(b))
}
