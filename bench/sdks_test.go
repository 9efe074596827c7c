package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	"github.com/assistants-go/assistants/poller"
	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	goopenai "github.com/sashabaranov/go-openai"
)

const apiKey = "sk-bench"

// summary is what one operation saw, for the tests to check and the
// benchmarks to keep alive. Filling it copies string headers only.
type summary struct {
	ID, Status, Text string
	N, Tokens        int
	Polls, LagUS     int
	Chars, Annots    int // see tally_test.go
}

// sdkCase is one SDK's way of doing an operation. skip, when set, is why
// the SDK cannot do it (printed by b.Skip / t.Skip).
type sdkCase struct {
	name string
	skip string
	op   func(ctx context.Context) (summary, error)
}

// pageCase is one SDK's way of iterating over all messages of a thread;
// visit is called for every item, in order.
type pageCase struct {
	name    string
	skip    string
	iterate func(ctx context.Context, thread string, visit func(id string)) (summary, error)
}

// clients holds one configured client per SDK, each set up the way its
// documentation tells a user to, pointed at the fixture server.
type clients struct {
	ours  *assistants.Client
	oai   openai.Client
	goai  *goopenai.Client
	floor *floor
}

func newClients(tb testing.TB) *clients {
	tb.Helper()
	base := server(tb)
	ours, err := assistants.New(assistants.WithBaseURL(base+"/v1"), assistants.WithAPIKey(apiKey))
	if err != nil {
		tb.Fatal(err)
	}
	cfg := goopenai.DefaultConfig(apiKey)
	cfg.BaseURL = base + "/v1"
	return &clients{
		ours:  ours,
		oai:   openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(apiKey)),
		goai:  goopenai.NewClientWithConfig(cfg),
		floor: newFloor(base + "/v1"),
	}
}

const (
	noStreaming = "go-openai has no streaming API for runs (CreateRun returns the run object only)"
	noIterator  = "has no iterator over pages"
	noPoller    = "has no helper that polls a run until it is done"
)

// --- RetrieveRun -----------------------------------------------------------

func (c *clients) retrieveRun() []sdkCase {
	return []sdkCase{
		{name: "ours", op: func(ctx context.Context) (summary, error) {
			run, err := c.ours.GetRun(ctx, benchThread, benchRun)
			if err != nil {
				return summary{}, err
			}
			s := summary{ID: run.Id, Status: string(run.Status)}
			if run.Usage != nil {
				s.Tokens = run.Usage.TotalTokens
			}
			return s, nil
		}},
		{name: "openai-go", op: func(ctx context.Context) (summary, error) {
			run, err := c.oai.Beta.Threads.Runs.Get(ctx, benchThread, benchRun)
			if err != nil {
				return summary{}, err
			}
			return summary{ID: run.ID, Status: string(run.Status), Tokens: int(run.Usage.TotalTokens)}, nil
		}},
		{name: "go-openai", op: func(ctx context.Context) (summary, error) {
			run, err := c.goai.RetrieveRun(ctx, benchThread, benchRun)
			if err != nil {
				return summary{}, err
			}
			return summary{ID: run.ID, Status: string(run.Status), Tokens: run.Usage.TotalTokens}, nil
		}},
		{name: "floor", op: func(ctx context.Context) (summary, error) {
			var run floorRun
			if err := c.floor.do(ctx, http.MethodGet, "/threads/"+benchThread+"/runs/"+benchRun, nil, &run); err != nil {
				return summary{}, err
			}
			return summary{ID: run.ID, Status: run.Status, Tokens: run.Usage.TotalTokens}, nil
		}},
	}
}

// --- ListMessages ----------------------------------------------------------

func (c *clients) listMessages() []sdkCase {
	limit := listPageSize
	return []sdkCase{
		{name: "ours", op: func(ctx context.Context) (summary, error) {
			l, err := c.ours.ListMessages(ctx, benchThread, &gen.ListMessagesParams{Limit: &limit})
			if err != nil {
				return summary{}, err
			}
			s := summary{ID: l.LastId, N: len(l.Data)}
			for i := range l.Data {
				s.tallyOurs(&l.Data[i])
			}
			if len(l.Data) > 0 {
				s.Text = helpers.MessageText(l.Data[0])
			}
			return s, nil
		}},
		{name: "openai-go", op: func(ctx context.Context) (summary, error) {
			p, err := c.oai.Beta.Threads.Messages.List(ctx, benchThread, openai.BetaThreadMessageListParams{Limit: openai.Int(listPageSize)})
			if err != nil {
				return summary{}, err
			}
			s := summary{N: len(p.Data)}
			for i := range p.Data {
				s.tallyOpenAI(&p.Data[i])
			}
			if len(p.Data) > 0 {
				s.ID = p.Data[len(p.Data)-1].ID
				s.Text = p.Data[0].Content[0].Text.Value
			}
			return s, nil
		}},
		{name: "go-openai", op: func(ctx context.Context) (summary, error) {
			l, err := c.goai.ListMessage(ctx, benchThread, &limit, nil, nil, nil, nil)
			if err != nil {
				return summary{}, err
			}
			s := summary{N: len(l.Messages)}
			for i := range l.Messages {
				s.tallyGoOpenAI(&l.Messages[i])
			}
			if l.LastID != nil {
				s.ID = *l.LastID
			}
			if len(l.Messages) > 0 && l.Messages[0].Content[0].Text != nil {
				s.Text = l.Messages[0].Content[0].Text.Value
			}
			return s, nil
		}},
		{name: "floor", op: func(ctx context.Context) (summary, error) {
			var p floorPage
			if err := c.floor.do(ctx, http.MethodGet, "/threads/"+benchThread+"/messages?limit=100", nil, &p); err != nil {
				return summary{}, err
			}
			s := summary{ID: p.LastID, N: len(p.Data)}
			for i := range p.Data {
				s.tallyFloor(&p.Data[i])
			}
			if len(p.Data) > 0 {
				s.Text = p.Data[0].Content[0].Text.Value
			}
			return s, nil
		}},
	}
}

// --- CreateMessage ---------------------------------------------------------

func (c *clients) createMessage() []sdkCase {
	return []sdkCase{
		{name: "ours", op: func(ctx context.Context) (summary, error) {
			body := gen.CreateMessageRequest{Role: gen.CreateMessageRequestRoleUser, Metadata: &gen.Metadata{"channel": "web"}}
			if err := body.Content.FromCreateMessageText(createMessageText); err != nil {
				return summary{}, err
			}
			m, err := c.ours.CreateMessage(ctx, benchThread, body)
			if err != nil {
				return summary{}, err
			}
			return summary{ID: m.Id, Status: string(m.Status)}, nil
		}},
		{name: "openai-go", op: func(ctx context.Context) (summary, error) {
			m, err := c.oai.Beta.Threads.Messages.New(ctx, benchThread, openai.BetaThreadMessageNewParams{
				Role:     openai.BetaThreadMessageNewParamsRoleUser,
				Content:  openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String(createMessageText)},
				Metadata: shared.Metadata{"channel": "web"},
			})
			if err != nil {
				return summary{}, err
			}
			return summary{ID: m.ID, Status: string(m.Status)}, nil
		}},
		{name: "go-openai", op: func(ctx context.Context) (summary, error) {
			m, err := c.goai.CreateMessage(ctx, benchThread, goopenai.MessageRequest{
				Role: "user", Content: createMessageText, Metadata: map[string]any{"channel": "web"},
			})
			if err != nil {
				return summary{}, err
			}
			// go-openai's Message has no status field.
			return summary{ID: m.ID, Status: "completed"}, nil
		}},
		{name: "floor", op: func(ctx context.Context) (summary, error) {
			req := floorMessageRequest{Role: "user", Content: createMessageText, Metadata: map[string]string{"channel": "web"}}
			var m floorMessage
			if err := c.floor.do(ctx, http.MethodPost, "/threads/"+benchThread+"/messages", req, &m); err != nil {
				return summary{}, err
			}
			return summary{ID: m.ID, Status: m.Status}, nil
		}},
	}
}

// --- StreamRun -------------------------------------------------------------

// Each SDK starts a streamed run through its streaming API, reads every
// event as a typed value and appends the text of the message deltas.
func (c *clients) streamRun() []sdkCase {
	return []sdkCase{
		{name: "ours", op: func(ctx context.Context) (summary, error) {
			s, err := helpers.StreamRun(ctx, c.ours, benchThread, gen.CreateRunRequest{AssistantId: benchAsst})
			if err != nil {
				return summary{}, err
			}
			defer s.Close()
			var text strings.Builder
			var out summary
			for s.Next() {
				ev := s.Event()
				out.N++
				switch {
				case ev.MessageDelta != nil:
					for _, part := range ev.MessageDelta.Delta.Content {
						text.WriteString(part.Text.Value)
					}
				case ev.Run != nil:
					out.ID, out.Status = ev.Run.Id, string(ev.Run.Status)
				}
			}
			out.Text = text.String()
			return out, s.Err()
		}},
		{name: "openai-go", op: func(ctx context.Context) (summary, error) {
			s := c.oai.Beta.Threads.Runs.NewStreaming(ctx, benchThread, openai.BetaThreadRunNewParams{AssistantID: benchAsst})
			defer s.Close()
			var text strings.Builder
			var out summary
			for s.Next() {
				ev := s.Current()
				out.N++
				switch {
				case ev.Event == "thread.message.delta":
					for _, part := range ev.Data.Delta.Content {
						text.WriteString(part.Text.Value)
					}
				case strings.HasPrefix(ev.Event, "thread.run.") && !strings.HasPrefix(ev.Event, "thread.run.step."):
					out.ID, out.Status = ev.Data.ID, string(ev.Data.Status)
				}
			}
			out.Text = text.String()
			return out, s.Err()
		}},
		{name: "go-openai", skip: noStreaming},
		{name: "floor", op: c.floor.streamRun},
	}
}

// --- PageAll ---------------------------------------------------------------

func (c *clients) pageAll() []pageCase {
	limit := listPageSize
	return []pageCase{
		{name: "ours", iterate: func(ctx context.Context, thread string, visit func(string)) (summary, error) {
			var s summary
			for m, err := range helpers.Messages(ctx, c.ours, thread, &gen.ListMessagesParams{Limit: &limit}) {
				if err != nil {
					return s, err
				}
				s.N++
				s.ID = m.Id
				s.tallyOurs(&m)
				visit(m.Id)
			}
			return s, nil
		}},
		{name: "openai-go", iterate: func(ctx context.Context, thread string, visit func(string)) (summary, error) {
			var s summary
			it := c.oai.Beta.Threads.Messages.ListAutoPaging(ctx, thread, openai.BetaThreadMessageListParams{Limit: openai.Int(listPageSize)})
			for it.Next() {
				m := it.Current()
				s.N++
				s.ID = m.ID
				s.tallyOpenAI(&m)
				visit(m.ID)
			}
			return s, it.Err()
		}},
		{name: "go-openai", iterate: func(ctx context.Context, thread string, visit func(string)) (summary, error) {
			// go-openai has no iterator: this is the cursor loop its users
			// write around ListMessage.
			var s summary
			var after *string
			for {
				l, err := c.goai.ListMessage(ctx, thread, &limit, nil, after, nil, nil)
				if err != nil {
					return s, err
				}
				for i := range l.Messages {
					s.N++
					s.ID = l.Messages[i].ID
					s.tallyGoOpenAI(&l.Messages[i])
					visit(l.Messages[i].ID)
				}
				if !l.HasMore || l.LastID == nil {
					return s, nil
				}
				after = l.LastID
			}
		}},
		{name: "floor", iterate: func(ctx context.Context, thread string, visit func(string)) (summary, error) {
			var s summary
			after := ""
			for {
				path := "/threads/" + thread + "/messages?limit=100"
				if after != "" {
					path += "&after=" + after
				}
				var p floorPage
				if err := c.floor.do(ctx, http.MethodGet, path, nil, &p); err != nil {
					return s, err
				}
				for i := range p.Data {
					s.N++
					s.ID = p.Data[i].ID
					s.tallyFloor(&p.Data[i])
					visit(p.Data[i].ID)
				}
				if !p.HasMore {
					return s, nil
				}
				after = p.LastID
			}
		}},
	}
}

// --- PollRun ---------------------------------------------------------------

// pollRun follows a run that stays in progress for pollSteps intervals of
// the server's openai-poll-after-ms hint. The server reports, in the final
// run's metadata, how many GETs the client made and how long after the
// completion it saw it.
func (c *clients) pollRun(newRunID func() string) []sdkCase {
	done := func(meta map[string]string, id, status string) (summary, error) {
		polls, err1 := strconv.Atoi(meta["polls"])
		lag, err2 := strconv.Atoi(meta["lag_us"])
		if err := errors.Join(err1, err2); err != nil {
			return summary{}, fmt.Errorf("run %s (%s) lacks the server's poll metadata: %w", id, status, err)
		}
		return summary{ID: id, Status: status, Polls: polls, LagUS: lag}, nil
	}
	return []sdkCase{
		{name: "ours", op: func(ctx context.Context) (summary, error) {
			run, err := poller.New(c.ours, benchThread, newRunID()).PollUntilDone(ctx)
			if err != nil {
				return summary{}, err
			}
			var meta map[string]string
			if run.Metadata != nil {
				meta = *run.Metadata
			}
			return done(meta, run.Id, string(run.Status))
		}},
		{name: "openai-go", skip: "openai-go " + noPoller + " (PollStatus exists for vector store files, batches and videos only)"},
		{name: "go-openai", skip: "go-openai " + noPoller},
		{name: "floor", op: func(ctx context.Context) (summary, error) {
			// The ideal poller: GET, and while pending wait exactly the
			// server's hint.
			id := newRunID()
			for {
				var run floorRun
				hdr, err := c.floor.doHeader(ctx, http.MethodGet, "/threads/"+benchThread+"/runs/"+id, nil, &run)
				if err != nil {
					return summary{}, err
				}
				if run.Status != "queued" && run.Status != "in_progress" {
					return done(run.Metadata, run.ID, run.Status)
				}
				ms, _ := strconv.Atoi(hdr.Get("Openai-Poll-After-Ms"))
				t := time.NewTimer(time.Duration(max(ms, 1)) * time.Millisecond)
				select {
				case <-ctx.Done():
					t.Stop()
					return summary{}, ctx.Err()
				case <-t.C:
				}
			}
		}},
	}
}

// --- floor: bare net/http + encoding/json ----------------------------------

// floor is what a caller writes with the standard library alone: a request
// with the two headers the API needs, the reply decoded into a partial
// struct holding just the fields used.
type floor struct {
	hc   *http.Client
	base string
	auth []string
}

var betaHeader = []string{"assistants=v2"}

func newFloor(base string) *floor {
	return &floor{
		hc:   &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		base: base,
		auth: []string{"Bearer " + apiKey},
	}
}

type (
	floorRun struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Usage  struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
		Metadata map[string]string `json:"metadata"`
	}
	floorMessage struct {
		ID      string `json:"id"`
		Role    string `json:"role"`
		Status  string `json:"status"`
		Content []struct {
			Type string `json:"type"`
			Text struct {
				Value       string `json:"value"`
				Annotations []struct {
					Type         string `json:"type"`
					Text         string `json:"text"`
					StartIndex   int    `json:"start_index"`
					EndIndex     int    `json:"end_index"`
					FileCitation struct {
						FileID string `json:"file_id"`
					} `json:"file_citation"`
					FilePath struct {
						FileID string `json:"file_id"`
					} `json:"file_path"`
				} `json:"annotations"`
			} `json:"text"`
		} `json:"content"`
	}
	floorPage struct {
		Data    []floorMessage `json:"data"`
		LastID  string         `json:"last_id"`
		HasMore bool           `json:"has_more"`
	}
	floorMessageRequest struct {
		Role     string            `json:"role"`
		Content  string            `json:"content"`
		Metadata map[string]string `json:"metadata"`
	}
	floorDelta struct {
		Delta struct {
			Content []struct {
				Text struct {
					Value string `json:"value"`
				} `json:"text"`
			} `json:"content"`
		} `json:"delta"`
	}
)

func (f *floor) do(ctx context.Context, method, path string, in, out any) error {
	_, err := f.doHeader(ctx, method, path, in, out)
	return err
}

func (f *floor) doHeader(ctx context.Context, method, path string, in, out any) (http.Header, error) {
	resp, err := f.send(ctx, method, path, in)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body) // read to EOF so the connection is reused
	return resp.Header, nil
}

func (f *floor) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header["Authorization"] = f.auth
	req.Header["Openai-Beta"] = betaHeader
	if in != nil {
		req.Header["Content-Type"] = []string{"application/json"}
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return resp, nil
}

// streamRun is the floor of StreamRun: split the body into lines, decode the
// data of each thread.message.delta event into a partial struct, append the
// text.
func (f *floor) streamRun(ctx context.Context) (summary, error) {
	resp, err := f.send(ctx, http.MethodPost, "/threads/"+benchThread+"/runs", floorRunRequest{AssistantID: benchAsst, Stream: true})
	if err != nil {
		return summary{}, err
	}
	defer resp.Body.Close()
	var (
		out   summary
		text  strings.Builder
		event []byte
		d     floorDelta
		run   floorRun
	)
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return out, errors.New("floor: line too long")
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return out, err
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = append(event[:0], line[len("event: "):]...)
		case bytes.HasPrefix(line, []byte("data: ")):
			data := line[len("data: "):]
			out.N++
			switch {
			case string(event) == "thread.message.delta":
				d.Delta.Content = d.Delta.Content[:0]
				if err := json.Unmarshal(data, &d); err != nil {
					return out, err
				}
				for _, p := range d.Delta.Content {
					text.WriteString(p.Text.Value)
				}
			case bytes.HasPrefix(event, []byte("thread.run.")) && !bytes.HasPrefix(event, []byte("thread.run.step.")):
				if err := json.Unmarshal(data, &run); err != nil {
					return out, err
				}
				out.ID, out.Status = run.ID, run.Status
			case string(event) == "done":
				out.N--
				out.Text = text.String()
				return out, nil
			}
		}
	}
}

type floorRunRequest struct {
	AssistantID string `json:"assistant_id"`
	Stream      bool   `json:"stream"`
}
