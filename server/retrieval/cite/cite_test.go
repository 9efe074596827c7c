package cite

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMarker(t *testing.T) {
	assert.Equal(t, "【4:0†source】", Marker(4, 0, ""))
	assert.Equal(t, "【0:12†refunds.md】", Marker(0, 12, "refunds.md"))
	assert.Equal(t, "【1:2†a(b)+c d】", Marker(1, 2, " a【b】†c\nd "))
	// The documented example spans 12 between its indices: code points.
	assert.Len(t, []rune(Marker(4, 0, "source")), 12)
}

func TestBuilder(t *testing.T) {
	var b Builder
	b.WriteString("Refunds take 14 days 🎉 — ")
	b.Cite(3, 0, Source{FileID: "file-1", Filename: "refunds.md"})
	b.WriteString(" and the café ships daily.")
	b.Cite(3, 1, Source{FileID: "file-2", Filename: "日本語.pdf"})
	text, anns := b.String(), b.Annotations()
	require.Len(t, anns, 2)
	require.NoError(t, Check(text, anns))
	assert.Equal(t, "【3:0†refunds.md】", anns[0].Text)
	assert.Equal(t, "file-2", anns[1].FileID)
	assert.Equal(t, len([]rune(text)), anns[1].EndIndex)
}

func TestResolve(t *testing.T) {
	sources := []Source{{"file-a", "refunds.md"}, {"file-b", "shipping 🚚.txt"}, {"file-c", "ünïcode.pdf"}}
	tests := []struct {
		name     string
		in       string
		want     string
		wantRefs []string
	}{
		{"canonical", "Paid in 14 days【7:0†refunds.md】.", "Paid in 14 days【2:0†refunds.md】.", []string{"file-a"}},
		{"short forms", "A【1†x】 B【2】 C【0:0】", "A【2:1†shipping 🚚.txt】 B【2:2†ünïcode.pdf】 C【2:0†refunds.md】", []string{"file-b", "file-c", "file-a"}},
		{"out of range removed", "Fine【0†a】 but not this 【9†nope】.", "Fine【2:0†refunds.md】 but not this.", []string{"file-a"}},
		{"not a marker kept", "Use 【Ctrl】 and 【1:x†y】 freely.", "Use 【Ctrl】 and 【1:x†y】 freely.", nil},
		{"unclosed", "Broken 【0†a", "Broken 【0†a", nil},
		{"emoji before markers", "🎉🎉 see【1】 and【2】", "🎉🎉 see【2:1†shipping 🚚.txt】 and【2:2†ünïcode.pdf】", []string{"file-b", "file-c"}},
		{"no markers", "plain", "plain", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, anns := Resolve(tt.in, 2, sources)
			assert.Equal(t, tt.want, got)
			var refs []string
			for _, a := range anns {
				refs = append(refs, a.FileID)
			}
			assert.Equal(t, tt.wantRefs, refs)
			// Every annotation's indices match the text exactly.
			require.NoError(t, Check(got, anns))
		})
	}
}

func TestCheckCatchesWrongIndices(t *testing.T) {
	text, anns := Resolve("🎉 x【0】", 0, []Source{{"f", "a.md"}})
	require.NoError(t, Check(text, anns))
	// Byte offsets would be wrong here: Check must say so.
	bad := []Annotation{{Text: anns[0].Text, FileID: "f", StartIndex: len("🎉 x"), EndIndex: len("🎉 x") + len(anns[0].Text)}}
	assert.Error(t, Check(text, bad))
	assert.ErrorContains(t, Check(text, []Annotation{{Text: "x", StartIndex: 5, EndIndex: 99}}), "past the text")
	overlap := []Annotation{anns[0], anns[0]}
	assert.ErrorContains(t, Check(text, overlap), "out of order")
}
