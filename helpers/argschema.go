package helpers

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// argSchema is one node of the JSON Schema Func derives from its Args type:
// the subset of JSON Schema (draft 2020-12) that Go types need. Func's
// schemas used to come from github.com/google/jsonschema-go; this small
// in-package version gives the same schemas and the same checks without
// linking that library (its package initialisation alone added about
// 200 KB, regexp included, to every program importing helpers, whether or not
// it called Func). TestArgSchemaMatchesJSONSchemaGo keeps the two in step.
type argSchema struct {
	path        string   // JSON Pointer from the root for error messages; "root" at the root
	typ         string   // "type" as one name; "" when types is set or any value is allowed
	types       []string // "type" as a list, e.g. ["null", "array"]
	description string
	minimum     *float64
	maximum     *float64
	minItems    *int
	maxItems    *int
	items       *argSchema
	properties  map[string]*argSchema // nil: no "properties" keyword
	required    []string
	closed      bool       // additionalProperties: false
	additional  *argSchema // additionalProperties as a schema (maps)
}

// deriveSchema returns the JSON Schema of t with the rules of jsonschema-go's
// ForType: bool is "boolean"; signed and unsigned integers are "integer"
// with their range as minimum and maximum (int and int64 unbounded, uint,
// uint64 and uintptr from 0); floats are "number"; strings "string";
// interfaces accept any value; a pointer adds "null" to its element's type;
// a slice is ["null","array"] and an array an "array" of exactly its length;
// a map with string (or encoding.TextMarshaler) keys is an "object" whose
// additionalProperties is the value's schema; a struct is a closed "object"
// whose properties are its visible exported fields named by their json tags
// (json:"-" skipped), required unless tagged omitempty or omitzero, described
// by their jsonschema tag. time.Time, math/big's Int, Rat and Float and
// log/slog's Level are strings. Channels, funcs, complex numbers, unsafe
// pointers and cyclic types have no schema: an error.
func deriveSchema(t reflect.Type) (*argSchema, error) {
	s, err := schemaOf(t, map[reflect.Type]bool{})
	if err != nil {
		return nil, fmt.Errorf("ForType(%s): %w", t, err)
	}
	s.setPaths("")
	return s, nil
}

// stringSchemaType reports whether t is one of the standard library types
// with a JSON text form that jsonschema-go describes as a string. It compares
// names rather than types so that helpers does not link math/big.
func stringSchemaType(t reflect.Type) bool {
	switch t.PkgPath() {
	case "time":
		return t.Name() == "Time"
	case "math/big":
		return t.Name() == "Int" || t.Name() == "Rat" || t.Name() == "Float"
	case "log/slog":
		return t.Name() == "Level"
	}
	return false
}

// textMarshalerType is encoding.TextMarshaler, without importing encoding
// only for it.
var textMarshalerType = reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()

func ptrTo[T any](v T) *T { return &v }

func schemaOf(t reflect.Type, seen map[reflect.Type]bool) (*argSchema, error) {
	allowNull := false
	for t.Kind() == reflect.Pointer {
		allowNull = true
		t = t.Elem()
	}
	if t.Name() != "" {
		if seen[t] {
			return nil, fmt.Errorf("cycle detected for type %v", t)
		}
		seen[t] = true
		defer delete(seen, t)
	}
	if stringSchemaType(t) {
		if allowNull {
			return &argSchema{types: []string{"null", "string"}}, nil
		}
		return &argSchema{typ: "string"}, nil
	}
	s := new(argSchema)
	switch t.Kind() {
	case reflect.Bool:
		s.typ = "boolean"
	case reflect.Int, reflect.Int64:
		s.typ = "integer"
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		s.typ, s.minimum = "integer", ptrTo(0.0)
	case reflect.Int8:
		s.typ, s.minimum, s.maximum = "integer", ptrTo(float64(math.MinInt8)), ptrTo(float64(math.MaxInt8))
	case reflect.Uint8:
		s.typ, s.minimum, s.maximum = "integer", ptrTo(0.0), ptrTo(float64(math.MaxUint8))
	case reflect.Int16:
		s.typ, s.minimum, s.maximum = "integer", ptrTo(float64(math.MinInt16)), ptrTo(float64(math.MaxInt16))
	case reflect.Uint16:
		s.typ, s.minimum, s.maximum = "integer", ptrTo(0.0), ptrTo(float64(math.MaxUint16))
	case reflect.Int32:
		s.typ, s.minimum, s.maximum = "integer", ptrTo(float64(math.MinInt32)), ptrTo(float64(math.MaxInt32))
	case reflect.Uint32:
		s.typ, s.minimum, s.maximum = "integer", ptrTo(0.0), ptrTo(float64(math.MaxUint32))
	case reflect.Float32, reflect.Float64:
		s.typ = "number"
	case reflect.Interface:
		// any value
	case reflect.Map:
		if t.Key().Kind() != reflect.String && !t.Key().Implements(textMarshalerType) {
			return nil, fmt.Errorf("unsupported map key type %v", t.Key().Kind())
		}
		s.typ = "object"
		v, err := schemaOf(t.Elem(), seen)
		if err != nil {
			return nil, fmt.Errorf("computing map value schema: %v", err)
		}
		s.additional = v
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice {
			s.types = []string{"null", "array"}
		} else {
			s.typ = "array"
		}
		items, err := schemaOf(t.Elem(), seen)
		if err != nil {
			return nil, fmt.Errorf("computing element schema: %v", err)
		}
		s.items = items
		if t.Kind() == reflect.Array {
			s.minItems, s.maxItems = ptrTo(t.Len()), ptrTo(t.Len())
		}
	case reflect.String:
		s.typ = "string"
	case reflect.Struct:
		s.typ, s.closed = "object", true
		if err := s.structFields(t, seen); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("type %v is unsupported by jsonschema", t)
	}
	if allowNull && s.typ != "" {
		s.types, s.typ = []string{"null", s.typ}, ""
	}
	return s, nil
}

// structFields fills the properties and required list of a struct's schema.
func (s *argSchema) structFields(t reflect.Type, seen map[reflect.Type]bool) error {
	for _, field := range reflect.VisibleFields(t) {
		if s.properties == nil {
			s.properties = map[string]*argSchema{}
		}
		if field.Anonymous {
			// Promoted fields come as their own visible fields. An embedded
			// type with a string schema cannot supply properties.
			if stringSchemaType(field.Type) {
				return errors.New(`custom schema for embedded struct must have type "object", got "string"`)
			}
			continue
		}
		name, omit, optional := jsonField(field)
		if omit {
			continue
		}
		fs, err := schemaOf(field.Type, seen)
		if err != nil {
			return err
		}
		if tag, ok := field.Tag.Lookup("jsonschema"); ok {
			if tag == "" {
				return fmt.Errorf("empty jsonschema tag on struct field %s.%s", t, field.Name)
			}
			if word, _, found := strings.Cut(tag, "="); found && !strings.ContainsAny(word, " \t\n") {
				return fmt.Errorf("tag must not begin with 'WORD=': %q", tag)
			}
			fs.description = tag
		}
		s.properties[name] = fs
		if !optional {
			s.required = append(s.required, name)
		}
	}
	return nil
}

// jsonField reads a struct field's json tag the way encoding/json does: its
// name, whether it is left out (unexported, or tagged "-"), and whether it
// is optional (omitempty or omitzero).
func jsonField(f reflect.StructField) (name string, omit, optional bool) {
	if !f.IsExported() {
		return "", true, false
	}
	name = f.Name
	tag, ok := f.Tag.Lookup("json")
	if !ok {
		return name, false, false
	}
	n, rest, found := strings.Cut(tag, ",")
	if n == "-" && !found {
		return "", true, false
	}
	if n != "" {
		name = n
	}
	for opt := range strings.SplitSeq(rest, ",") {
		if opt == "omitempty" || opt == "omitzero" {
			optional = true
		}
	}
	return name, false, optional
}

// setPaths records each node's JSON Pointer for error messages.
func (s *argSchema) setPaths(p string) {
	if p == "" {
		s.path = "root"
	} else {
		s.path = p
	}
	if s.items != nil {
		s.items.setPaths(p + "/items")
	}
	if s.additional != nil {
		s.additional.setPaths(p + "/additionalProperties")
	}
	for name, ps := range s.properties {
		ps.setPaths(p + "/properties/" + name)
	}
}

// toParams returns the schema as JSON values (what json.Unmarshal would make
// of its JSON text), for gen.FunctionParameters.
func (s *argSchema) toParams() map[string]any {
	if m, ok := s.params().(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// params returns the schema as a JSON value: true for the empty schema
// (any value), else an object.
func (s *argSchema) params() any {
	m := map[string]any{}
	switch {
	case s.typ != "":
		m["type"] = s.typ
	case s.types != nil:
		ts := make([]any, len(s.types))
		for i, t := range s.types {
			ts[i] = t
		}
		m["type"] = ts
	}
	if s.description != "" {
		m["description"] = s.description
	}
	if s.minimum != nil {
		m["minimum"] = *s.minimum
	}
	if s.maximum != nil {
		m["maximum"] = *s.maximum
	}
	if s.minItems != nil {
		m["minItems"] = float64(*s.minItems)
	}
	if s.maxItems != nil {
		m["maxItems"] = float64(*s.maxItems)
	}
	if s.items != nil {
		m["items"] = s.items.params()
	}
	if s.properties != nil {
		props := make(map[string]any, len(s.properties))
		for name, ps := range s.properties {
			props[name] = ps.params()
		}
		m["properties"] = props
	}
	if len(s.required) > 0 {
		req := make([]any, len(s.required))
		for i, r := range s.required {
			req[i] = r
		}
		m["required"] = req
	}
	switch {
	case s.closed:
		m["additionalProperties"] = false
	case s.additional != nil:
		m["additionalProperties"] = s.additional.params()
	}
	if len(m) == 0 {
		return true
	}
	return m
}

// validate checks a JSON value (as decoded into any, with numbers as int64
// or float64) against s. Its errors name the failing schema by path and
// keyword, as jsonschema-go's do: "validating /properties/city: type: 42
// has type "integer", want "string"".
func (s *argSchema) validate(v any) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("validating %s: %w", s.path, err)
		}
	}()
	got, ok := jsonTypeOf(v)
	if !ok {
		return fmt.Errorf("type: %v of type %[1]T is not a valid JSON value", v)
	}
	if s.typ != "" && got != s.typ && (got != "integer" || s.typ != "number") {
		return fmt.Errorf("type: %s has type %q, want %q", jsonText(v), got, s.typ)
	}
	if s.types != nil && !slices.Contains(s.types, got) && (got != "integer" || !slices.Contains(s.types, "number")) {
		return fmt.Errorf("type: %s has type %q, want one of %q", jsonText(v), got, strings.Join(s.types, ", "))
	}
	if s.minimum != nil || s.maximum != nil {
		if err := s.checkRange(v); err != nil {
			return err
		}
	}
	switch x := v.(type) {
	case []any:
		if s.items != nil {
			for _, e := range x {
				if err := s.items.validate(e); err != nil {
					return err
				}
			}
		}
		if s.minItems != nil && len(x) < *s.minItems {
			return fmt.Errorf("minItems: array length %d is less than %d", len(x), *s.minItems)
		}
		if s.maxItems != nil && len(x) > *s.maxItems {
			return fmt.Errorf("maxItems: array length %d is greater than %d", len(x), *s.maxItems)
		}
	case map[string]any:
		return s.validateObject(x)
	}
	return nil
}

// validateObject checks an object's properties, additional properties and
// required properties, in that order, visiting names in sorted order so
// that the first error reported is always the same.
func (s *argSchema) validateObject(obj map[string]any) error {
	names := make([]string, 0, len(obj))
	for name := range obj {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if ps, ok := s.properties[name]; ok {
			if err := ps.validate(obj[name]); err != nil {
				return err
			}
		}
	}
	var extra []string
	for _, name := range names {
		if _, ok := s.properties[name]; ok {
			continue
		}
		if s.closed {
			extra = append(extra, name)
		} else if s.additional != nil {
			if err := s.additional.validate(obj[name]); err != nil {
				return err
			}
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("unexpected additional properties %q", extra)
	}
	var missing []string
	for _, name := range s.required {
		if _, ok := obj[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("required: missing properties: %q", missing)
	}
	return nil
}

// checkRange checks a number against minimum and maximum (the bounds of Go
// integer types, all exact in float64 and int64).
func (s *argSchema) checkRange(v any) error {
	var below, above func(f float64) bool
	switch n := v.(type) {
	case int64:
		below = func(f float64) bool { return n < int64(f) }
		above = func(f float64) bool { return n > int64(f) }
	case float64:
		below = func(f float64) bool { return n < f }
		above = func(f float64) bool { return n > f }
	default:
		return nil // the bounds apply to numbers only
	}
	if s.minimum != nil && below(*s.minimum) {
		return fmt.Errorf("minimum: %s is less than %s", jsonText(v), strconv.FormatFloat(*s.minimum, 'f', -1, 64))
	}
	if s.maximum != nil && above(*s.maximum) {
		return fmt.Errorf("maximum: %s is greater than %s", jsonText(v), strconv.FormatFloat(*s.maximum, 'f', -1, 64))
	}
	return nil
}

// jsonTypeOf returns the JSON type name of a decoded JSON value; a float
// with no fraction counts as an "integer", as JSON Schema says.
func jsonTypeOf(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "null", true
	case bool:
		return "boolean", true
	case string:
		return "string", true
	case int64:
		return "integer", true
	case float64:
		if _, f := math.Modf(x); f == 0 {
			return "integer", true
		}
		return "number", true
	case []any:
		return "array", true
	case map[string]any:
		return "object", true
	}
	return "", false
}

// jsonText formats a decoded JSON value for an error message.
func jsonText(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprint(v)
}
