package openapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// flatTagged are the API's unions that the spec describes as one flat object
// with a type enum (so Go decodes them in one pass), and the kinds whose
// field, named like the kind, each requires. Kinds of MessageDeltaContent and
// its annotations require nothing: a delta carries what changed.
var flatTagged = map[string][]string{
	"MessageContent":                    {"image_file", "image_url", "text", "refusal"},
	"MessageContentTextAnnotation":      {"file_citation", "file_path"},
	"MessageDeltaContent":               nil,
	"MessageDeltaContentTextAnnotation": nil,
	"MessageAttachmentTool":             nil,
}

// TestSpecFlatTaggedObjects checks the flat objects' shape: no oneOf (the Go
// generator would make a union again), a required type enum, a property for
// every kind that has a field, and, for the kinds that require their field, a
// `not` clause saying so.
func TestSpecFlatTaggedObjects(t *testing.T) {
	ours := loadYAML(t, Spec)
	for name, requiring := range flatTagged {
		t.Run(name, func(t *testing.T) {
			s := ours.get("components", "schemas", name)
			require.NotNil(t, s)
			assert.Nil(t, s.get("oneOf"), "a oneOf makes the generator write a union")
			assert.Nil(t, s.get("anyOf"), "an anyOf makes the generator write a union")
			assert.Contains(t, s.strings("required"), "type")
			kinds := s.strings("properties", "type", "enum")
			require.NotEmpty(t, kinds)
			clauses := map[string][]string{}
			for _, cl := range s.seq("not", "anyOf") {
				kind := cl.strings("properties", "type", "enum")
				require.Len(t, kind, 1, "each clause names one kind")
				clauses[kind[0]] = cl.strings("not", "required")
			}
			for _, k := range requiring {
				require.Contains(t, kinds, k)
				assert.NotNil(t, s.get("properties", k), "kind %s has no field", k)
				assert.Equal(t, []string{k}, clauses[k], "kind %s: a clause requiring its field", k)
			}
			for k := range clauses {
				assert.True(t, slices.Contains(requiring, k), "clause for %s not listed", k)
			}
		})
	}
}

// TestSpecFlatTaggedValidation runs a validator over the flat objects: a
// part of each kind without its field is refused, as the API's union
// refuses it; a complete one passes.
func TestSpecFlatTaggedValidation(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(Spec)
	require.NoError(t, err)
	tests := []struct {
		schema, body string
		ok           bool
	}{
		{"MessageContent", `{"type":"text","text":{"value":"hi","annotations":[]}}`, true},
		{"MessageContent", `{"type":"text"}`, false},
		{"MessageContent", `{"type":"text","refusal":"no"}`, false},
		{"MessageContent", `{"type":"refusal","refusal":"no"}`, true},
		{"MessageContent", `{"type":"refusal"}`, false},
		{"MessageContent", `{"type":"image_file","image_file":{"file_id":"file_1"}}`, true},
		{"MessageContent", `{"type":"image_file","image_url":{"url":"https://example.com/a.png"}}`, false},
		{"MessageContent", `{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}`, true},
		{"MessageContent", `{"type":"video","video":{}}`, false},
		{"MessageContent", `{"text":{"value":"hi","annotations":[]}}`, false},
		{"MessageContentTextAnnotation", `{"type":"file_citation","text":"[1]","file_citation":{"file_id":"f"},"start_index":0,"end_index":3}`, true},
		{"MessageContentTextAnnotation", `{"type":"file_citation","text":"[1]","file_path":{"file_id":"f"},"start_index":0,"end_index":3}`, false},
		{"MessageContentTextAnnotation", `{"type":"file_path","text":"[1]","file_path":{"file_id":"f"},"start_index":0,"end_index":3}`, true},
		{"MessageDeltaContent", `{"index":0,"type":"text"}`, true},
		{"MessageAttachmentTool", `{"type":"file_search"}`, true},
		{"MessageAttachmentTool", `{"type":"function"}`, false},
		{"ToolResourcesFileSearchCreate", `{"vector_store_ids":["vs_1"]}`, true},
		{"ToolResourcesFileSearchCreate", `{"vector_stores":[{"file_ids":["file_1"]}]}`, true},
		{"ToolResourcesFileSearchCreate", `{"vector_store_ids":["vs_1"],"vector_stores":[{"file_ids":["file_1"]}]}`, false},
		{"ToolResourcesFileSearchCreate", `{}`, false},
		{"CreateVectorStoreFileBatchRequest", `{"file_ids":["file_1"]}`, true},
		{"CreateVectorStoreFileBatchRequest", `{"files":[{"file_id":"file_1"}]}`, true},
		{"CreateVectorStoreFileBatchRequest", `{"chunking_strategy":{"type":"auto"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.schema+" "+tt.body, func(t *testing.T) {
			ref := doc.Components.Schemas[tt.schema]
			require.NotNil(t, ref)
			var v any
			require.NoError(t, json.Unmarshal([]byte(tt.body), &v))
			err := ref.Value.VisitJSON(v)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

// TestSpecUnionMembersNamed: every member of a oneOf or anyOf, anywhere in
// the spec, is a $ref to a named component schema. The Go generator names an
// inline member after its position (ComparisonFilterValue0, ...); a named
// one gets its own name (ComparisonFilterString) and so do its As.../From...
// methods. Members inside a `not` clause are validation only: the generator
// never sees them, and a schema with x-go-type is that Go type, not a union.
func TestSpecUnionMembersNamed(t *testing.T) {
	ours := loadYAML(t, Spec)
	var bad []string
	var walk func(where string, n *node, inNot bool)
	walk = func(where string, n *node, inNot bool) {
		if n == nil {
			return
		}
		switch n.n.Kind {
		case yaml.MappingNode:
			for _, k := range n.keys() {
				v := n.get(k)
				switch {
				case (k == "oneOf" || k == "anyOf") && !inNot && n.get("x-go-type") == nil:
					for i, m := range v.seq() {
						if m.str("$ref") == "" && m.str("type") != "null" {
							bad = append(bad, fmt.Sprintf("%s.%s[%d]", where, k, i))
						}
					}
				}
				walk(where+"."+k, v, inNot || k == "not")
			}
		case yaml.SequenceNode:
			for i, m := range n.seq() {
				walk(fmt.Sprintf("%s[%d]", where, i), m, inNot)
			}
		}
	}
	walk("", ours, false)
	assert.Empty(t, bad, "inline union members get numbered Go names")
}
