package helpers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
)

// deltaStream is n thread.message.delta events of one text part each.
func deltaStream(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "event: thread.message.delta\ndata: {\"id\":\"msg_1\",\"object\":\"thread.message.delta\",\"delta\":{\"content\":[{\"index\":0,\"type\":\"text\",\"text\":{\"value\":\"word %d \"}}]}}\n\n", i)
	}
	b.WriteString("event: done\ndata: [DONE]\n\n")
	return b.Bytes()
}

// A message delta is decoded once: reading its text costs no second decode
// of the content part. One event costs 16 allocations, nearly all inside
// encoding/json (its scanner's parse stack, the decode state, one string per
// string field) plus the event's own MessageDelta; decoding the part again
// from the generated union's raw copy, as Stream did before, cost about 9
// more (BenchmarkStreamDecode: 1.58M allocations for the 10 MB body then,
// 1.01M now).
func TestStreamDeltaDecodedOnce(t *testing.T) {
	const n = 200
	in := deltaStream(n)
	var text strings.Builder
	allocs := testing.AllocsPerRun(5, func() {
		text.Reset()
		s := NewStream(context.Background(), io.NopCloser(bytes.NewReader(in)), nil)
		for s.Next() {
			for _, p := range s.Event().MessageDelta.Delta.Content {
				text.WriteString(p.Text.Value)
			}
		}
		require.NoError(t, s.Err())
	})
	assert.Equal(t, "word 0 word 1 ", text.String()[:14])
	perEvent := allocs / n
	t.Logf("%.1f allocations per delta event", perEvent)
	assert.LessOrEqual(t, perEvent, 18.0)
}

func TestMessageDeltaGenerated(t *testing.T) {
	idx0, idx1 := 0, 1
	refusal := "no"
	d := &MessageDelta{Id: "msg_1", Object: "thread.message.delta", Delta: MessageDeltaChange{Content: []DeltaPart{
		{Index: &idx0, Type: "text", Text: DeltaText{Value: "hi"}},
		{Index: &idx1, Type: "refusal", Refusal: &refusal},
	}}}
	assert.Equal(t, "hi", d.Text())
	g, err := d.Generated()
	require.NoError(t, err)
	require.Len(t, *g.Delta.Content, 2)
	txt := (*g.Delta.Content)[0]
	assert.Equal(t, gen.MessageDeltaContentTypeText, txt.Type)
	require.NotNil(t, txt.Text)
	assert.Equal(t, "hi", *txt.Text.Value)
	ref := (*g.Delta.Content)[1]
	assert.Equal(t, gen.MessageDeltaContentTypeRefusal, ref.Type)
	assert.Equal(t, 1, ref.Index)
	assert.Nil(t, ref.Text)
	assert.Equal(t, "no", *ref.Refusal)

	d.Delta.Content[1].Type = "hologram"
	_, err = d.Generated()
	assert.ErrorContains(t, err, `unknown content part type "hologram"`)
}
