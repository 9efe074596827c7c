package assistants_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
)

func TestPtr(t *testing.T) {
	p := assistants.Ptr("docs")
	require.NotNil(t, p)
	assert.Equal(t, "docs", *p)
	q := assistants.Ptr("docs")
	assert.NotSame(t, p, q, "each call returns its own copy")
}

// Each constructor builds the JSON the API documents for that union member.
func TestUnionConstructors(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"UserMessage", assistants.UserMessage("Hello"), `{"role":"user","content":"Hello"}`},
		{"UserMessageParts", assistants.UserMessageParts(assistants.TextPart("Look:"), assistants.ImageFilePart("file_1"), assistants.ImageURLPart("https://x/y.png")),
			`{"role":"user","content":[{"type":"text","text":"Look:"},{"type":"image_file","image_file":{"file_id":"file_1"}},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}`},
		{"PartsContent empty", assistants.PartsContent(), `[]`},
		{"ToolChoiceAuto", assistants.ToolChoiceAuto(), `"auto"`},
		{"ToolChoiceNone", assistants.ToolChoiceNone(), `"none"`},
		{"ToolChoiceRequired", assistants.ToolChoiceRequired(), `"required"`},
		{"ToolChoiceFunction", assistants.ToolChoiceFunction("get_weather"), `{"type":"function","function":{"name":"get_weather"}}`},
		{"ToolChoiceFileSearch", assistants.ToolChoiceFileSearch(), `{"type":"file_search"}`},
		{"ToolChoiceCodeInterpreter", assistants.ToolChoiceCodeInterpreter(), `{"type":"code_interpreter"}`},
		{"ResponseFormatAuto", assistants.ResponseFormatAuto(), `"auto"`},
		{"ResponseFormatText", assistants.ResponseFormatText(), `{"type":"text"}`},
		{"ResponseFormatJSONObject", assistants.ResponseFormatJSONObject(), `{"type":"json_object"}`},
		{"ResponseFormatJSONSchema", assistants.ResponseFormatJSONSchema("answer", map[string]any{"type": "object"}, true),
			`{"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object"},"strict":true}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.v)
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(got))
		})
	}
}
