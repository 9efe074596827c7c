// Package editors holds request-editor helpers shared by the poller and
// helpers packages; it is not part of the public API.
package editors

import (
	"net/http"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// WithReplyHeader returns editors followed by one that stores the reply's
// header in *h (for its openai-poll-after-ms hint), in a new slice: the
// caller's is never appended to.
func WithReplyHeader(editors []gen.RequestEditorFn, h *http.Header) []gen.RequestEditorFn {
	out := make([]gen.RequestEditorFn, len(editors), len(editors)+1)
	copy(out, editors)
	return append(out, assistants.ReplyHeader(h))
}
