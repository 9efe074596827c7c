package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The fixtures are built once, by the server process, with the field order
// and value shapes the Assistants API sends. Every SDK receives the same
// bytes.

const (
	benchThread   = "thread_bench0001"
	benchRun      = "run_bench0001"
	benchAsst     = "asst_bench0001"
	streamMessage = "msg_stream0001"

	// listPageSize is the page size of ListMessages and PageAll.
	listPageSize = 100
	// pageAllItems are the item counts PageAll iterates over; the heap must
	// not grow with them.
	pageAllSmall = 1_000
	pageAllLarge = 10_000
	// streamSize is the approximate size of the StreamRun body.
	streamSize = 10 << 20
	// pollSteps is how many poll-after intervals a PollRun run stays in
	// progress; pollHintMS is the openai-poll-after-ms the server sends.
	pollSteps  = 5
	pollHintMS = 10
)

// Wire shapes, in the API's field order. They exist only to write fixtures.
type (
	fxUsage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
	fxFunction struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      bool            `json:"strict"`
	}
	fxTool struct {
		Type       string          `json:"type"`
		FileSearch json.RawMessage `json:"file_search,omitempty"`
		Function   *fxFunction     `json:"function,omitempty"`
	}
	fxRun struct {
		ID                  string            `json:"id"`
		Object              string            `json:"object"`
		CreatedAt           int64             `json:"created_at"`
		AssistantID         string            `json:"assistant_id"`
		ThreadID            string            `json:"thread_id"`
		Status              string            `json:"status"`
		StartedAt           *int64            `json:"started_at"`
		ExpiresAt           *int64            `json:"expires_at"`
		CancelledAt         *int64            `json:"cancelled_at"`
		FailedAt            *int64            `json:"failed_at"`
		CompletedAt         *int64            `json:"completed_at"`
		RequiredAction      json.RawMessage   `json:"required_action"`
		LastError           json.RawMessage   `json:"last_error"`
		Model               string            `json:"model"`
		Instructions        string            `json:"instructions"`
		Tools               []fxTool          `json:"tools"`
		Metadata            map[string]string `json:"metadata"`
		IncompleteDetails   json.RawMessage   `json:"incomplete_details"`
		Usage               *fxUsage          `json:"usage"`
		Temperature         float64           `json:"temperature"`
		TopP                float64           `json:"top_p"`
		MaxPromptTokens     *int              `json:"max_prompt_tokens"`
		MaxCompletionTokens *int              `json:"max_completion_tokens"`
		TruncationStrategy  json.RawMessage   `json:"truncation_strategy"`
		ResponseFormat      json.RawMessage   `json:"response_format"`
		ToolChoice          json.RawMessage   `json:"tool_choice"`
		ParallelToolCalls   bool              `json:"parallel_tool_calls"`
	}
	fxAnnotation struct {
		Type         string            `json:"type"`
		Text         string            `json:"text"`
		StartIndex   int               `json:"start_index"`
		EndIndex     int               `json:"end_index"`
		FileCitation map[string]string `json:"file_citation,omitempty"`
		FilePath     map[string]string `json:"file_path,omitempty"`
	}
	fxText struct {
		Value       string         `json:"value"`
		Annotations []fxAnnotation `json:"annotations"`
	}
	fxContent struct {
		Type string `json:"type"`
		Text fxText `json:"text"`
	}
	fxMessage struct {
		ID                string            `json:"id"`
		Object            string            `json:"object"`
		CreatedAt         int64             `json:"created_at"`
		AssistantID       *string           `json:"assistant_id"`
		ThreadID          string            `json:"thread_id"`
		RunID             *string           `json:"run_id"`
		Role              string            `json:"role"`
		Status            string            `json:"status"`
		IncompleteDetails json.RawMessage   `json:"incomplete_details"`
		CompletedAt       *int64            `json:"completed_at"`
		IncompleteAt      *int64            `json:"incomplete_at"`
		Content           []fxContent       `json:"content"`
		Attachments       []json.RawMessage `json:"attachments"`
		Metadata          map[string]string `json:"metadata"`
	}
	fxPage struct {
		Object  string            `json:"object"`
		Data    []json.RawMessage `json:"data"`
		FirstID string            `json:"first_id"`
		LastID  string            `json:"last_id"`
		HasMore bool              `json:"has_more"`
	}
)

var null = json.RawMessage("null")

func ptr[T any](v T) *T { return &v }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// runFixture is a run as GET /threads/{t}/runs/{r} returns it: completed,
// with four tools (two functions with JSON schemas), metadata and usage;
// about 1.5 KB.
func runFixture(id, status string, metadata map[string]string) []byte {
	const created = 1_730_000_000
	r := fxRun{
		ID: id, Object: "thread.run", CreatedAt: created, AssistantID: benchAsst, ThreadID: benchThread,
		Status: status, StartedAt: ptr[int64](created + 1), ExpiresAt: nil, CancelledAt: nil, FailedAt: nil,
		RequiredAction: null, LastError: null,
		Model:        "gpt-4o-2024-08-06",
		Instructions: "You are a support assistant for an online shop. Answer briefly, cite the order documents you used and call a function when you need live data.",
		Tools: []fxTool{
			{Type: "code_interpreter"},
			{Type: "file_search", FileSearch: json.RawMessage(`{"max_num_results":20,"ranking_options":{"ranker":"default_2024_08_21","score_threshold":0.0}}`)},
			{Type: "function", Function: &fxFunction{
				Name: "get_order_status", Description: "Look up the current status of an order by its number.",
				Parameters: json.RawMessage(`{"type":"object","properties":{"order_id":{"type":"string","description":"The order number, e.g. A-1042."},"include_items":{"type":"boolean","description":"Also return the order lines."}},"required":["order_id"],"additionalProperties":false}`),
			}},
			{Type: "function", Function: &fxFunction{
				Name: "get_weather", Description: "Current weather for a city, for delivery estimates.",
				Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string","description":"City name."},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"],"additionalProperties":false}`),
			}},
		},
		Metadata:          metadata,
		IncompleteDetails: null,
		Usage:             &fxUsage{PromptTokens: 1843, CompletionTokens: 312, TotalTokens: 2155},
		Temperature:       1, TopP: 1,
		TruncationStrategy: json.RawMessage(`{"type":"auto","last_messages":null}`),
		ResponseFormat:     json.RawMessage(`"auto"`),
		ToolChoice:         json.RawMessage(`"auto"`),
		ParallelToolCalls:  true,
	}
	if status == "completed" {
		r.CompletedAt = ptr[int64](created + 9)
	} else {
		r.Usage = nil
	}
	return mustJSON(r)
}

// words make up the message texts and the streamed deltas.
var words = strings.Fields(`the order you asked about left our warehouse on Monday and is now with the carrier
which expects to deliver it within two working days according to the tracking page you can also change
the delivery address until the parcel reaches the local depot if anything is missing from the box please
reply with a photo of the packing slip and we will send the missing items at no cost to you`)

func sentence(seed, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[(seed*7+i)%len(words)])
	}
	b.WriteByte('.')
	return b.String()
}

// messageID is the ID of the i-th message of a listed thread.
func messageID(i int) string { return fmt.Sprintf("msg_%06d", i) }

// messageFixture is a completed message; assistant messages (even i) carry
// a file citation and a file path annotation, user messages none. A page of
// 100 is about 60 KB.
func messageFixture(i int, thread string) []byte {
	const created = 1_730_000_000
	m := fxMessage{
		ID: messageID(i), Object: "thread.message", CreatedAt: created + int64(i), ThreadID: thread,
		Status: "completed", IncompleteDetails: null, CompletedAt: ptr[int64](created + int64(i)),
		Attachments: []json.RawMessage{}, Metadata: map[string]string{},
	}
	if i%2 == 0 {
		text := sentence(i, 44) + " See 【4:0†order.pdf】 and the label at sandbox:/mnt/data/label.pdf."
		start := strings.Index(text, "【")
		m.AssistantID, m.RunID, m.Role = ptr(benchAsst), ptr(benchRun), "assistant"
		m.Content = []fxContent{{Type: "text", Text: fxText{Value: text, Annotations: []fxAnnotation{
			{Type: "file_citation", Text: "【4:0†order.pdf】", StartIndex: start, EndIndex: start + len("【4:0†order.pdf】"),
				FileCitation: map[string]string{"file_id": "file-9GkP2xQzD1rT5vWb"}},
			{Type: "file_path", Text: "sandbox:/mnt/data/label.pdf", StartIndex: len(text) - 28, EndIndex: len(text) - 1,
				FilePath: map[string]string{"file_id": "file-7HcL3yRwE2sU6xXa"}},
		}}}}
	} else {
		m.Role = "user"
		m.Content = []fxContent{{Type: "text", Text: fxText{Value: sentence(i, 40), Annotations: []fxAnnotation{}}}}
	}
	return mustJSON(m)
}

// pageFixture is the list reply holding messages [from, to) of total; it has
// more when to < total.
func pageFixture(thread string, from, to, total int) []byte {
	p := fxPage{Object: "list", FirstID: messageID(from), LastID: messageID(to - 1), HasMore: to < total}
	for i := from; i < to; i++ {
		p.Data = append(p.Data, messageFixture(i, thread))
	}
	return mustJSON(p)
}

// createMessageBody is what every SDK sends to CreateMessage.
const createMessageText = "Where is my order A-1042? It was supposed to arrive yesterday."

// createdMessageFixture is the reply to CreateMessage.
func createdMessageFixture() []byte {
	m := fxMessage{
		ID: "msg_created0001", Object: "thread.message", CreatedAt: 1_730_000_100, ThreadID: benchThread,
		Role: "user", Status: "completed", IncompleteDetails: null, CompletedAt: ptr[int64](1_730_000_100),
		Content:     []fxContent{{Type: "text", Text: fxText{Value: createMessageText, Annotations: []fxAnnotation{}}}},
		Attachments: []json.RawMessage{}, Metadata: map[string]string{"channel": "web"},
	}
	return mustJSON(m)
}

// streamFixture is a run's event stream of about size bytes: the run and
// message lifecycle events around many thread.message.delta events of a
// few words each, the way a model streams its answer. It returns the body
// and the text the deltas add up to.
func streamFixture(size int) ([]byte, string) {
	var b, text bytes.Buffer
	event := func(name string, data []byte) {
		b.WriteString("event: ")
		b.WriteString(name)
		b.WriteString("\ndata: ")
		b.Write(data)
		b.WriteString("\n\n")
	}
	event("thread.run.created", runFixture(benchRun, "queued", map[string]string{}))
	event("thread.run.queued", runFixture(benchRun, "queued", map[string]string{}))
	event("thread.run.in_progress", runFixture(benchRun, "in_progress", map[string]string{}))
	msg := func(status string) []byte {
		m := fxMessage{
			ID: streamMessage, Object: "thread.message", CreatedAt: 1_730_000_001, AssistantID: ptr(benchAsst),
			ThreadID: benchThread, RunID: ptr(benchRun), Role: "assistant", Status: status,
			IncompleteDetails: null, Content: []fxContent{}, Attachments: []json.RawMessage{}, Metadata: map[string]string{},
		}
		return mustJSON(m)
	}
	event("thread.message.created", msg("in_progress"))
	event("thread.message.in_progress", msg("in_progress"))
	type fxDeltaText struct {
		Value string `json:"value"`
	}
	type fxDeltaContent struct {
		Index int         `json:"index"`
		Type  string      `json:"type"`
		Text  fxDeltaText `json:"text"`
	}
	type fxDelta struct {
		ID     string `json:"id"`
		Object string `json:"object"`
		Delta  struct {
			Content []fxDeltaContent `json:"content"`
		} `json:"delta"`
	}
	for i := 0; b.Len() < size; i++ {
		piece := words[i%len(words)] + " "
		if i%3 == 0 {
			piece += words[(i*5+1)%len(words)] + " "
		}
		var d fxDelta
		d.ID, d.Object = streamMessage, "thread.message.delta"
		d.Delta.Content = []fxDeltaContent{{Index: 0, Type: "text", Text: fxDeltaText{Value: piece}}}
		event("thread.message.delta", mustJSON(d))
		text.WriteString(piece)
	}
	event("thread.message.completed", msg("completed"))
	event("thread.run.completed", runFixture(benchRun, "completed", map[string]string{}))
	b.WriteString("event: done\ndata: [DONE]\n\n")
	return b.Bytes(), text.String()
}
