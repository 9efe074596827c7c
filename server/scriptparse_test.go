package server

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseToolCalls(t *testing.T) {
	tools := []string{"get_weather", "get_time", "lookup"}
	tests := []struct {
		name string
		text string
		want []ScriptedCall
	}{
		{"no tool", "hello there", []ScriptedCall{}},
		{"bare name", "please get_weather now", []ScriptedCall{{"get_weather", "{}"}}},
		{"with args", `please get_weather {"city":"Paris"}`, []ScriptedCall{{"get_weather", `{"city":"Paris"}`}}},
		{"args compacted", "get_weather {\n  \"city\": \"Paris\" } thanks", []ScriptedCall{{"get_weather", `{"city":"Paris"}`}}},
		{"two tools in order", `get_time {"tz":"UTC"} and get_weather {"city":"Oslo"}`,
			[]ScriptedCall{{"get_time", `{"tz":"UTC"}`}, {"get_weather", `{"city":"Oslo"}`}}},
		{"named twice counts once", "lookup lookup", []ScriptedCall{{"lookup", "{}"}}},
		{"inside a longer word", "my_get_weather_tool and lookups", []ScriptedCall{}},
		{"punctuation bounds", "(lookup), get_time.", []ScriptedCall{{"lookup", "{}"}, {"get_time", "{}"}}},
		{"broken json", `get_weather {"city":`, []ScriptedCall{{"get_weather", "{}"}}},
		{"array is not an object", `get_weather ["Paris"]`, []ScriptedCall{{"get_weather", "{}"}}},
		{"text before brace", `get_weather for {"city":"Rome"}`, []ScriptedCall{{"get_weather", "{}"}}},
		{"later whole word after embedded one", "xlookup then lookup", []ScriptedCall{{"lookup", "{}"}}},
		{"unicode around", "¿lookup? ✓", []ScriptedCall{{"lookup", "{}"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, ParseToolCalls(tt.text, tools))
		})
	}
}

func FuzzParseToolCalls(f *testing.F) {
	for _, s := range []string{
		`please get_weather {"city":"Paris"}`,
		"get_time and lookup",
		`lookup {"a":[1,2,{"b":null}]} get_time {`,
		"\x00get_weather\xff{}",
		"",
	} {
		f.Add(s)
	}
	tools := []string{"get_weather", "get_time", "lookup"}
	f.Fuzz(func(t *testing.T, text string) {
		calls := ParseToolCalls(text, tools)
		if len(calls) > len(tools) {
			t.Fatalf("%d calls for %d tools", len(calls), len(tools))
		}
		names := map[string]bool{}
		for _, c := range calls {
			if names[c.Name] {
				t.Fatalf("tool %q called twice", c.Name)
			}
			names[c.Name] = true
			var obj map[string]any
			if err := json.Unmarshal([]byte(c.Arguments), &obj); err != nil {
				t.Fatalf("arguments %q are not a JSON object: %v", c.Arguments, err)
			}
		}
	})
}
