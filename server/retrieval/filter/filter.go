// Package filter evaluates the API's attribute filters on vector store
// files: comparisons (eq, ne, gt, gte, lt, lte, in, nin) of one attribute
// with a value, combined with and/or to a bounded depth.
//
// Search applies a filter before ranking: only the chunks of matching
// files compete for the results.
package filter

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// DefaultMaxDepth is the deepest nesting of and/or that Parse accepts by
// default: the top filter is at depth 0, its sub-filters at 1, and so on.
const DefaultMaxDepth = 8

// Kind is the type of a Value.
type Kind uint8

// Kinds of values.
const (
	KindString Kind = iota + 1
	KindNumber
	KindBool
)

// Value is an attribute's or a filter's value: a string, a number or a
// boolean. The zero Value is no value and equals nothing.
type Value struct {
	kind Kind
	s    string
	n    float64
	b    bool
}

// String returns a string value.
func String(s string) Value { return Value{kind: KindString, s: s} }

// Number returns a number value.
func Number(n float64) Value { return Value{kind: KindNumber, n: n} }

// Bool returns a boolean value.
func Bool(b bool) Value { return Value{kind: KindBool, b: b} }

// Kind returns the value's kind (0 for the zero Value).
func (v Value) Kind() Kind { return v.kind }

func (v Value) equal(w Value) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case KindString:
		return v.s == w.s
	case KindNumber:
		return v.n == w.n
	case KindBool:
		return v.b == w.b
	}
	return false
}

// compare orders two strings or two numbers; other pairs do not compare.
func (v Value) compare(w Value) (int, bool) {
	if v.kind != w.kind {
		return 0, false
	}
	switch v.kind {
	case KindString:
		return strings.Compare(v.s, w.s), true
	case KindNumber:
		return cmp.Compare(v.n, w.n), true
	}
	return 0, false
}

// Attributes are a file's attributes by key.
type Attributes map[string]Value

// ParseAttributes reads attributes from their JSON object (values are
// strings, numbers or booleans; others are an error). null is no
// attributes.
func ParseAttributes(raw []byte) (Attributes, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("filter: attributes: %w", err)
	}
	out := make(Attributes, len(m))
	for k, r := range m {
		v, ok := scalar(r)
		if !ok {
			return nil, fmt.Errorf("filter: attribute %q is not a string, a number or a boolean", k)
		}
		out[k] = v
	}
	return out, nil
}

func scalar(r json.RawMessage) (Value, bool) {
	r = bytes.TrimSpace(r)
	if len(r) == 0 {
		return Value{}, false
	}
	switch r[0] {
	case '"':
		var s string
		if json.Unmarshal(r, &s) != nil {
			return Value{}, false
		}
		return String(s), true
	case 't', 'f':
		var b bool
		if json.Unmarshal(r, &b) != nil {
			return Value{}, false
		}
		return Bool(b), true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n float64
		if json.Unmarshal(r, &n) != nil {
			return Value{}, false
		}
		return Number(n), true
	}
	return Value{}, false
}

// Filter is a parsed filter. Build one with Parse.
type Filter struct {
	// Type is the operator: eq, ne, gt, gte, lt, lte, in, nin, and, or.
	Type string
	// Key and Value are a comparison's attribute and value (Values for in
	// and nin).
	Key    string
	Value  Value
	Values []Value
	// Filters are the sub-filters of and/or.
	Filters []*Filter
}

// ParamError is a filter the API refuses: Param is where (e.g.
// "filters.filters[1].value") and Message the API's message.
type ParamError struct {
	Param   string
	Message string
}

func (e *ParamError) Error() string { return e.Message }

func bad(param, format string, args ...any) error {
	return &ParamError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// Parse reads a filter from its JSON (a ComparisonFilter or a
// CompoundFilter of the API). param names it in errors (e.g. "filters");
// maxDepth bounds the nesting (DefaultMaxDepth when 0 or less). Errors are
// *ParamError.
func Parse(raw []byte, param string, maxDepth int) (*Filter, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	return parse(raw, param, 0, maxDepth)
}

var comparisons = []string{"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"}

func parse(raw []byte, param string, depth, maxDepth int) (*Filter, error) {
	if depth > maxDepth {
		return nil, bad(param, "Invalid '%s': filters nest too deep (at most %d levels).", param, maxDepth)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, bad(param, "Invalid '%s': expected a filter object.", param)
	}
	var typ string
	if err := json.Unmarshal(obj["type"], &typ); err != nil {
		return nil, bad(param+".type", "Invalid value for '%s.type'.", param)
	}
	allowed := []string{"type", "key", "value"}
	if typ == "and" || typ == "or" {
		allowed = []string{"type", "filters"}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return nil, bad(param+"."+k, "Invalid '%s': unknown parameter '%s'.", param, k)
		}
	}
	f := &Filter{Type: typ}
	switch {
	case typ == "and" || typ == "or":
		var subs []json.RawMessage
		if err := json.Unmarshal(obj["filters"], &subs); err != nil || subs == nil {
			return nil, bad(param+".filters", "Invalid '%s.filters': expected an array of filters.", param)
		}
		for i, sub := range subs {
			sf, err := parse(sub, fmt.Sprintf("%s.filters[%d]", param, i), depth+1, maxDepth)
			if err != nil {
				return nil, err
			}
			f.Filters = append(f.Filters, sf)
		}
		return f, nil
	case slices.Contains(comparisons, typ):
		rv, hasValue := obj["value"]
		if err := json.Unmarshal(obj["key"], &f.Key); err != nil || f.Key == "" || !hasValue {
			return nil, bad(param+".key", "Invalid '%s': expected a comparison with a key and a value.", param)
		}
		rv = bytes.TrimSpace(rv)
		isList := len(rv) > 0 && rv[0] == '['
		if (typ == "in" || typ == "nin") != isList {
			if isList {
				return nil, bad(param+".value", "Invalid '%s.value': an array is only allowed with 'in' and 'nin'.", param)
			}
			return nil, bad(param+".value", "Invalid '%s.value': '%s' needs an array of values.", param, typ)
		}
		if !isList {
			v, ok := scalar(rv)
			if !ok {
				return nil, bad(param+".value", "Invalid '%s.value': expected a string, a number or a boolean.", param)
			}
			f.Value = v
			return f, nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(rv, &items); err != nil {
			return nil, bad(param+".value", "Invalid '%s.value': expected an array of strings and numbers.", param)
		}
		for i, it := range items {
			v, ok := scalar(it)
			if !ok || v.kind == KindBool {
				return nil, bad(fmt.Sprintf("%s.value[%d]", param, i), "Invalid '%s.value[%d]': expected a string or a number.", param, i)
			}
			f.Values = append(f.Values, v)
		}
		return f, nil
	}
	return nil, bad(param+".type", "Invalid value for '%s.type'.", param)
}

// Match reports whether attributes satisfy the filter. A comparison on a
// missing attribute matches only ne and nin; gt, gte, lt and lte compare
// two strings (by bytes) or two numbers, and nothing else; eq and ne
// compare kinds too (the string "1" is not the number 1). An empty "and"
// matches, an empty "or" does not. A nil filter matches everything.
func (f *Filter) Match(attrs Attributes) bool {
	if f == nil {
		return true
	}
	switch f.Type {
	case "and":
		for _, sub := range f.Filters {
			if !sub.Match(attrs) {
				return false
			}
		}
		return true
	case "or":
		for _, sub := range f.Filters {
			if sub.Match(attrs) {
				return true
			}
		}
		return false
	}
	have, found := attrs[f.Key]
	switch f.Type {
	case "in", "nin":
		in := found && slices.ContainsFunc(f.Values, have.equal)
		return in == (f.Type == "in")
	}
	if !found {
		return f.Type == "ne"
	}
	switch f.Type {
	case "eq":
		return have.equal(f.Value)
	case "ne":
		return !have.equal(f.Value)
	}
	r, ok := have.compare(f.Value)
	if !ok {
		return false
	}
	switch f.Type {
	case "gt":
		return r > 0
	case "gte":
		return r >= 0
	case "lt":
		return r < 0
	case "lte":
		return r <= 0
	}
	return false
}
