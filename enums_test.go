package assistants_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
)

// TestEnumDecode checks the UnmarshalJSON that gen/templates/constants.tmpl
// gives every string enum: a known value is its constant, an unknown or
// escaped one is kept as sent, null leaves the value alone, a non-string is
// an error.
func TestEnumDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		start   gen.MessageContentType
		want    gen.MessageContentType
		wantErr bool
	}{
		{"known", `"text"`, "", gen.MessageContentTypeText, false},
		{"another known", `"image_url"`, "", gen.MessageContentTypeImageUrl, false},
		{"unknown kept", `"video"`, "", "video", false},
		{"escaped", `"t\u0065xt"`, "", gen.MessageContentTypeText, false},
		{"empty", `""`, "text", "", false},
		{"null leaves it", `null`, gen.MessageContentTypeRefusal, gen.MessageContentTypeRefusal, false},
		{"number", `1`, "", "", true},
		{"object", `{}`, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.start
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestEnumDecodeAllocs: a known value costs no allocation (encoding/json
// allocates a new string for every string it decodes).
func TestEnumDecodeAllocs(t *testing.T) {
	b := []byte(`"thread.message"`)
	var o gen.MessageObjectObject
	allocs := testing.AllocsPerRun(100, func() {
		if err := o.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
	assert.Equal(t, gen.MessageObjectObjectThreadMessage, o)
}

// TestMessageContentWire: the flat parts keep the API's wire shape: only the
// kind's field is written, including an empty text with no annotations.
func TestMessageContentWire(t *testing.T) {
	tests := []struct {
		part gen.MessageContent
		want string
	}{
		{gen.MessageContent{Type: gen.MessageContentTypeText, Text: gen.MessageContentText{Value: "hi", Annotations: []gen.MessageContentTextAnnotation{}}},
			`{"type":"text","text":{"value":"hi","annotations":[]}}`},
		{gen.MessageContent{Type: gen.MessageContentTypeText, Text: gen.MessageContentText{Annotations: []gen.MessageContentTextAnnotation{}}},
			`{"type":"text","text":{"value":"","annotations":[]}}`},
		{gen.MessageContent{Type: gen.MessageContentTypeImageFile, ImageFile: gen.MessageContentImageFile{FileId: "file_1"}},
			`{"type":"image_file","image_file":{"file_id":"file_1"}}`},
		{gen.MessageContent{Type: gen.MessageContentTypeRefusal, Refusal: new("no")},
			`{"type":"refusal","refusal":"no"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.part)
		require.NoError(t, err)
		assert.JSONEq(t, tt.want, string(b))
	}
}
