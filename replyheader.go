package assistants

import (
	"context"
	"net/http"

	"github.com/assistants-go/assistants/gen"
)

// replyHeaderKey is the request context key under which ReplyHeader leaves
// its destination.
type replyHeaderKey struct{}

// ReplyHeader returns a request editor for one typed call that stores the
// header of its reply in *h: the 2xx reply's, or the error reply's when the
// call returns an *APIError (which holds it too). *h is left as it was when
// no reply arrived (a network error, a cancelled context). It reads the
// header from the reply's Request, which net/http's Transport sets; a custom
// RoundTripper that answers without setting it leaves *h alone too.
//
//	var h http.Header
//	run, err := client.GetRun(ctx, threadID, runID, assistants.ReplyHeader(&h))
//	requestID := h.Get("x-request-id")
//
// The poller reads the openai-poll-after-ms hint this way.
func ReplyHeader(h *http.Header) gen.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		*req = *req.WithContext(context.WithValue(req.Context(), replyHeaderKey{}, h))
		return nil
	}
}

// saveReplyHeader stores resp's header where ReplyHeader asked for it.
func saveReplyHeader(resp *http.Response) {
	if resp == nil || resp.Request == nil {
		return
	}
	if h, ok := resp.Request.Context().Value(replyHeaderKey{}).(*http.Header); ok && h != nil {
		*h = resp.Header
	}
}

// ApplyReplyHeader is for fakes of the typed calls (in tests): it runs
// editors on a blank request and gives h to every ReplyHeader among them, as
// a reply with header h would, so code that reads hints (the poller's
// openai-poll-after-ms) can be tested without HTTP. It returns the first
// error an editor returns.
func ApplyReplyHeader(ctx context.Context, h http.Header, editors ...gen.RequestEditorFn) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://fake.invalid/", nil)
	if err != nil {
		return err
	}
	for _, e := range editors {
		if err := e(ctx, req); err != nil {
			return err
		}
	}
	saveReplyHeader(&http.Response{Header: h, Request: req})
	return nil
}
