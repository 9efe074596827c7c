package assistants

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/assistants-go/assistants/gen"
)

// Client is the API client that New returns. It has one typed method per
// operation of the API (GetRun, CreateMessage, ListMessages, ...; generated
// from the spec into calls.gen.go), each returning the decoded reply as a *T
// and an error:
//
//	run, err := client.GetRun(ctx, threadID, runID)
//
// The error is an *APIError (use errors.As, or IsNotFound and friends) when
// the server answered with a non-2xx status, and wraps the cause ("assistants:
// request failed: ...") when no reply arrived. A 2xx reply without the
// expected JSON body gives an error wrapping ErrUnexpectedReply.
//
// The embedded *gen.ClientWithResponses keeps the generated client: its
// <Op>WithResponse methods return the raw reply (status, headers, body) for
// code that wants them, and its <Op>WithBody methods send a body the caller
// has encoded. A zero Client is not usable; make one with New, or wrap a
// generated client with &Client{ClientWithResponses: c}.
type Client struct {
	*gen.ClientWithResponses
}

// ErrStreamBody is wrapped by the error a typed call returns when its body
// asks for a stream ("stream": true): the typed calls wait for one JSON
// reply; the helpers package's Stream functions return the event stream.
var ErrStreamBody = errors.New("assistants: body asks for a stream")

// requestFailed wraps the error of a call that got no reply.
func requestFailed(err error) error {
	return fmt.Errorf("assistants: request failed: %w", err)
}

func errStreamBody(op, instead string) error {
	return fmt.Errorf("%w: %s waits for a JSON reply; use %s for the event stream", ErrStreamBody, op, instead)
}

// reply returns v, the decoded 2xx body of resp, or the error the typed calls
// document: *APIError for a non-2xx status, ErrUnexpectedReply when there is
// no response or no decoded body.
func reply[T any](resp *http.Response, body []byte, v *T) (*T, error) {
	if resp == nil {
		return nil, fmt.Errorf("%w: no HTTP response", ErrUnexpectedReply)
	}
	saveReplyHeader(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if body == nil {
			body = []byte{}
		}
		return nil, NewAPIError(resp, body)
	}
	if v == nil {
		return nil, fmt.Errorf("%w: %d reply has no decoded JSON body (Content-Type %q)",
			ErrUnexpectedReply, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return v, nil
}

// bodyReply returns the body of a 2xx reply to a raw call, or the error:
// *APIError for a non-2xx status (its body read and closed).
func bodyReply(resp *http.Response, err error) (io.ReadCloser, error) {
	if err != nil {
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, requestFailed(err)
	}
	if resp == nil {
		return nil, fmt.Errorf("%w: no HTTP response", ErrUnexpectedReply)
	}
	saveReplyHeader(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, NewAPIError(resp, nil)
	}
	return resp.Body, nil
}
