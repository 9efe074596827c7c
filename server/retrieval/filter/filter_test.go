package filter

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMatch(t *testing.T) {
	attrs, err := ParseAttributes([]byte(`{"author":"Ada","year":2021,"draft":false,"region":"eu","score":4.5}`))
	require.NoError(t, err)
	tests := []struct {
		filter string
		want   bool
	}{
		{`{"type":"eq","key":"author","value":"Ada"}`, true},
		{`{"type":"eq","key":"author","value":"ada"}`, false},
		{`{"type":"eq","key":"year","value":2021}`, true},
		{`{"type":"eq","key":"year","value":"2021"}`, false},
		{`{"type":"eq","key":"draft","value":false}`, true},
		{`{"type":"ne","key":"author","value":"Bob"}`, true},
		{`{"type":"ne","key":"missing","value":"x"}`, true},
		{`{"type":"eq","key":"missing","value":"x"}`, false},
		{`{"type":"gt","key":"year","value":2020}`, true},
		{`{"type":"gt","key":"year","value":2021}`, false},
		{`{"type":"gte","key":"year","value":2021}`, true},
		{`{"type":"lt","key":"score","value":5}`, true},
		{`{"type":"lte","key":"score","value":4.5}`, true},
		{`{"type":"lt","key":"score","value":4.5}`, false},
		{`{"type":"gt","key":"author","value":"Ab"}`, true},
		{`{"type":"gt","key":"author","value":1}`, false},
		{`{"type":"gt","key":"draft","value":true}`, false},
		{`{"type":"gt","key":"missing","value":1}`, false},
		{`{"type":"in","key":"region","value":["us","eu"]}`, true},
		{`{"type":"in","key":"year","value":[2020,2021]}`, true},
		{`{"type":"in","key":"region","value":[]}`, false},
		{`{"type":"nin","key":"region","value":["us"]}`, true},
		{`{"type":"nin","key":"missing","value":["us"]}`, true},
		{`{"type":"in","key":"missing","value":["us"]}`, false},
		{`{"type":"and","filters":[{"type":"eq","key":"region","value":"eu"},{"type":"gte","key":"year","value":2020}]}`, true},
		{`{"type":"and","filters":[{"type":"eq","key":"region","value":"eu"},{"type":"gte","key":"year","value":2022}]}`, false},
		{`{"type":"or","filters":[{"type":"eq","key":"region","value":"us"},{"type":"eq","key":"author","value":"Ada"}]}`, true},
		{`{"type":"or","filters":[]}`, false},
		{`{"type":"and","filters":[]}`, true},
		{`{"type":"or","filters":[{"type":"eq","key":"region","value":"us"},
		  {"type":"and","filters":[{"type":"eq","key":"draft","value":false},{"type":"nin","key":"author","value":["Bob"]}]}]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			f, err := Parse([]byte(tt.filter), "filters", 0)
			require.NoError(t, err)
			assert.Equal(t, tt.want, f.Match(attrs))
		})
	}
	var nilFilter *Filter
	assert.True(t, nilFilter.Match(nil))
}

func nest(depth int) string {
	s := `{"type":"eq","key":"a","value":1}`
	for range depth {
		s = `{"type":"and","filters":[` + s + `]}`
	}
	return s
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, filter, param, msg string
	}{
		{"not an object", `[1]`, "filters", "Invalid 'filters': expected a filter object."},
		{"null", `null`, "filters", "Invalid 'filters': expected a filter object."},
		{"no type", `{"key":"a","value":1}`, "filters.type", "Invalid value for 'filters.type'."},
		{"unknown type", `{"type":"like","key":"a","value":"x"}`, "filters.type", "Invalid value for 'filters.type'."},
		{"no key", `{"type":"eq","value":1}`, "filters.key", "Invalid 'filters': expected a comparison with a key and a value."},
		{"no value", `{"type":"eq","key":"a"}`, "filters.key", "Invalid 'filters': expected a comparison with a key and a value."},
		{"array with eq", `{"type":"eq","key":"a","value":[1]}`, "filters.value", "Invalid 'filters.value': an array is only allowed with 'in' and 'nin'."},
		{"in without array", `{"type":"in","key":"a","value":1}`, "filters.value", "Invalid 'filters.value': 'in' needs an array of values."},
		{"null value", `{"type":"eq","key":"a","value":null}`, "filters.value", "Invalid 'filters.value': expected a string, a number or a boolean."},
		{"object value", `{"type":"eq","key":"a","value":{}}`, "filters.value", "Invalid 'filters.value': expected a string, a number or a boolean."},
		{"bool in list", `{"type":"in","key":"a","value":["x",true]}`, "filters.value[1]", "Invalid 'filters.value[1]': expected a string or a number."},
		{"unknown field", `{"type":"eq","key":"a","value":1,"op":"x"}`, "filters.op", "Invalid 'filters': unknown parameter 'op'."},
		{"filters not array", `{"type":"and","filters":{}}`, "filters.filters", "Invalid 'filters.filters': expected an array of filters."},
		{"bad sub-filter", `{"type":"or","filters":[{"type":"eq","key":"a","value":1},{"type":"gt","key":"b"}]}`,
			"filters.filters[1].key", "Invalid 'filters.filters[1]': expected a comparison with a key and a value."},
		{"too deep", nest(DefaultMaxDepth + 1), "filters" + strings.Repeat(".filters[0]", DefaultMaxDepth+1),
			fmt.Sprintf("Invalid 'filters%s': filters nest too deep (at most 8 levels).", strings.Repeat(".filters[0]", DefaultMaxDepth+1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.filter), "filters", 0)
			var pe *ParamError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.param, pe.Param)
			assert.Equal(t, tt.msg, pe.Message)
		})
	}
	_, err := Parse([]byte(nest(DefaultMaxDepth)), "filters", 0)
	assert.NoError(t, err, "the deepest allowed nesting")
	_, err = Parse([]byte(nest(3)), "filters", 2)
	assert.ErrorContains(t, err, "at most 2 levels")
}

func TestParseAttributes(t *testing.T) {
	a, err := ParseAttributes([]byte(`null`))
	require.NoError(t, err)
	assert.Empty(t, a)
	_, err = ParseAttributes([]byte(`{"a":[1]}`))
	assert.ErrorContains(t, err, `attribute "a" is not a string, a number or a boolean`)
	_, err = ParseAttributes([]byte(`{`))
	assert.Error(t, err)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(nest(3)), []byte(`{"a":1}`))
	f.Add([]byte(`{"type":"in","key":"a","value":["x",2]}`), []byte(`{"a":"x"}`))
	f.Fuzz(func(t *testing.T, raw, attrs []byte) {
		fl, err := Parse(raw, "filters", 0)
		if err != nil {
			var pe *ParamError
			require.ErrorAs(t, err, &pe)
			return
		}
		a, _ := ParseAttributes(attrs)
		fl.Match(a) // never panics
	})
}
