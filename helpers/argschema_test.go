package helpers

import (
	"encoding/json"
	"log/slog"
	"math/big"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Types covering every rule of deriveSchema.
type (
	schemaInts struct {
		I   int     `json:"i"`
		I8  int8    `json:"i8"`
		I16 int16   `json:"i16"`
		I32 int32   `json:"i32"`
		I64 int64   `json:"i64"`
		U   uint    `json:"u"`
		U8  uint8   `json:"u8"`
		U16 uint16  `json:"u16"`
		U32 uint32  `json:"u32"`
		U64 uint64  `json:"u64"`
		UP  uintptr `json:"up,omitzero"`
		F32 float32 `json:"f32,omitempty"`
		F64 float64
	}
	schemaInner struct {
		Inner string `json:"inner" jsonschema:"promoted"`
		Name  string `json:"name"`
	}
	schemaText  struct{}
	schemaNamed []string
	schemaCycle struct{ Next *schemaCycle }
	schemaEvery struct {
		schemaInner
		*schemaText `json:"text"`
		Name        string                  `json:"name" jsonschema:"outer wins"`
		Any         any                     `json:"any,omitempty" jsonschema:"anything at all"`
		PAny        *any                    `json:"pany,omitempty"`
		Strs        []string                `json:"strs"`
		PStrs       *[]string               `json:"pstrs"`
		Arr         [3]int8                 `json:"arr"`
		Bytes       []byte                  `json:"bytes,omitempty"`
		Map         map[string][]int        `json:"map"`
		TextKeys    map[schemaText]bool     `json:"text_keys"`
		Nested      struct{ A, B *float64 } `json:"nested"`
		Empty       struct{}                `json:"empty"`
		Unexported  struct{ x int }         `json:"unexported"`
		When        time.Time               `json:"when"`
		PWhen       *time.Time              `json:"pwhen"`
		Big         big.Int                 `json:"big"`
		PRat        *big.Rat                `json:"prat"`
		Float       big.Float               `json:"float"`
		Level       slog.Level              `json:"level"`
		Named       schemaNamed             `json:"named"`
		PPInt       **int                   `json:"ppint"`
		//lint:ignore SA5008 the "-," form names the property "-", which the schema must follow
		Dash         int                    `json:"-,"`
		Skipped      int                    `json:"-"`
		NoName       string                 `json:",omitempty"`
		WithSpaceTag string                 `jsonschema:"a = b is fine"`
		Ints         schemaInts             `json:"ints"`
		Cycleless    []schemaInner          `json:"cycleless"`
		MapOfStructs map[string]*schemaInts `json:"map_of_structs"`
		unexported   int                    //lint:ignore U1000 the schema must leave unexported fields out
	}
	schemaEmbedsTime struct {
		time.Time
		X int
	}
	schemaEmptyTag struct {
		X int `jsonschema:""`
	}
	schemaWordTag struct {
		X int `jsonschema:"description=x"`
	}
)

func (schemaText) MarshalText() ([]byte, error) { return nil, nil }

// deriveSchema gives the schema github.com/google/jsonschema-go's ForType
// gives (Func used that library before), and fails where it fails.
func TestArgSchemaMatchesJSONSchemaGo(t *testing.T) {
	tests := []struct {
		name    string
		typ     reflect.Type
		wantErr string // substring of both errors; "" for success
	}{
		{"every rule", reflect.TypeFor[schemaEvery](), ""},
		{"integers", reflect.TypeFor[schemaInts](), ""},
		{"empty", reflect.TypeFor[struct{}](), ""},
		{"weather", reflect.TypeFor[weatherArgs](), ""},
		{"nested", reflect.TypeFor[nestedArgs](), ""},
		{"cycle", reflect.TypeFor[schemaCycle](), "cycle detected"},
		{"channel", reflect.TypeFor[struct{ C chan int }](), "unsupported"},
		{"func", reflect.TypeFor[struct{ F func() }](), "unsupported"},
		{"complex", reflect.TypeFor[struct{ C complex128 }](), "unsupported"},
		{"int keys", reflect.TypeFor[struct{ M map[int]string }](), "unsupported map key type"},
		{"bad map value", reflect.TypeFor[struct{ M map[string]chan int }](), "computing map value schema"},
		{"bad element", reflect.TypeFor[struct{ S []func() }](), "computing element schema"},
		{"embedded time", reflect.TypeFor[schemaEmbedsTime](), `must have type "object"`},
		{"empty jsonschema tag", reflect.TypeFor[schemaEmptyTag](), "empty jsonschema tag"},
		{"WORD= tag", reflect.TypeFor[schemaWordTag](), "must not begin with 'WORD='"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, refErr := jsonschema.ForType(tt.typ, nil)
			ours, err := deriveSchema(tt.typ)
			if tt.wantErr != "" {
				require.Error(t, refErr)
				require.Error(t, err)
				assert.Contains(t, refErr.Error(), tt.wantErr)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, refErr)
			require.NoError(t, err)
			want, err := json.Marshal(ref)
			require.NoError(t, err)
			got, err := json.Marshal(ours.toParams())
			require.NoError(t, err)
			assert.JSONEq(t, string(want), string(got))
		})
	}
}

// validate accepts and rejects what jsonschema-go's Validate does, with the
// same keyword in the message.
func TestArgSchemaValidatesLikeJSONSchemaGo(t *testing.T) {
	typ := reflect.TypeFor[schemaEvery]()
	valid := `{"inner":"i","name":"n","strs":null,"pstrs":["a"],"arr":[1,-2,127],"map":{"a":[1,2]},
		"text_keys":{"k":true},"nested":{"A":1.5,"B":null},"empty":{},"unexported":{},"when":"2026-01-01T00:00:00Z",
		"pwhen":null,"big":"1","prat":null,"float":"1.5","level":"INFO","named":["x"],"ppint":3,"-":1,"NoName":"",
		"WithSpaceTag":"w","cycleless":[{"inner":"a","name":"b"}],
		"ints":{"i":-1,"i8":-128,"i16":1,"i32":1,"i64":1,"u":0,"u8":255,"u16":1,"u32":4294967295,"u64":1e3,"F64":2.5},
		"map_of_structs":{"a":null}}`
	tests := []struct {
		name    string
		patch   func(m map[string]any)
		keyword string // "" for valid
	}{
		{"valid", func(map[string]any) {}, ""},
		{"missing", func(m map[string]any) { delete(m, "inner"); delete(m, "arr") }, "required: missing properties"},
		{"extra", func(m map[string]any) { m["zzz"] = 1 }, "unexpected additional properties"},
		{"wrong type", func(m map[string]any) { m["name"] = int64(4) }, `type: 4 has type "integer", want "string"`},
		{"null where not allowed", func(m map[string]any) { m["name"] = nil }, `has type "null", want "string"`},
		{"number for integer", func(m map[string]any) { m["ppint"] = 1.5 }, `want one of "null, integer"`},
		{"short array", func(m map[string]any) { m["arr"] = []any{int64(1)} }, "minItems"},
		{"long array", func(m map[string]any) { m["arr"] = []any{int64(1), int64(2), int64(3), int64(4)} }, "maxItems"},
		{"below int8", func(m map[string]any) { m["arr"] = []any{int64(1), int64(-129), int64(3)} }, "minimum"},
		{"above uint8", func(m map[string]any) { m["ints"].(map[string]any)["u8"] = int64(256) }, "maximum"},
		{"negative uint", func(m map[string]any) { m["ints"].(map[string]any)["u"] = int64(-1) }, "minimum"},
		{"map value", func(m map[string]any) { m["map"] = map[string]any{"a": []any{"x"}} }, `want "integer"`},
		{"nested extra", func(m map[string]any) { m["nested"].(map[string]any)["C"] = 1.0 }, "unexpected additional properties"},
		{"item extra", func(m map[string]any) {
			m["cycleless"] = []any{map[string]any{"inner": "a", "name": "b", "c": true}}
		}, "unexpected additional properties"},
	}
	ref, err := jsonschema.ForType(typ, nil)
	require.NoError(t, err)
	resolved, err := ref.Resolve(nil)
	require.NoError(t, err)
	ours, err := deriveSchema(typ)
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(valid))
			dec.UseNumber()
			var inst any
			require.NoError(t, dec.Decode(&inst))
			inst = numbersToFloat(inst)
			tt.patch(inst.(map[string]any))
			refErr := resolved.Validate(inst)
			err := ours.validate(inst)
			if tt.keyword == "" {
				require.NoError(t, refErr)
				require.NoError(t, err)
				return
			}
			require.Error(t, refErr, "jsonschema-go accepts it")
			require.Error(t, err, "deriveSchema's validate accepts it")
			assert.Contains(t, err.Error(), tt.keyword)
			refKeyword, _, _ := strings.Cut(tt.keyword, ":")
			assert.Contains(t, refErr.Error(), refKeyword)
		})
	}
}

// validToolName accepts exactly what the API's name rule,
// ^[A-Za-z0-9_-]{1,64}$, accepts.
func TestValidToolNameMatchesRule(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	names := []string{"", "a", "get_weather", "A-Z_0-9", strings.Repeat("x", 64), strings.Repeat("x", 65),
		"a b", "a.b", "é", "a\n", "\x00", "naïve", "a/b", "-", "_"}
	for c := 0; c < 256; c++ {
		names = append(names, string(rune(c)), "x"+string([]byte{byte(c)}))
	}
	for _, n := range names {
		assert.Equal(t, rule.MatchString(n), validToolName(n), "name %q", n)
	}
}
