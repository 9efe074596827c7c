package assistants_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// New returns the client; each typed call returns (*T, error), with an
// *APIError for a non-2xx reply. The server here stands in for the API.
func ExampleNew() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/assistants/asst_1" {
			w.Header().Set("X-Request-Id", "req_1")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"message":"No assistant found.","type":"invalid_request_error","param":null,"code":null}}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"asst_1","object":"assistant","created_at":1,"model":"gpt-4o","name":"Helper","description":null,"instructions":null,"metadata":null,"tools":[]}`)
	}))
	defer srv.Close()

	c, err := assistants.New(
		assistants.WithBaseURL(srv.URL+"/v1"), // default $OPENAI_BASE_URL or https://api.openai.com/v1
		assistants.WithAPIKey("sk-example"),   // default $OPENAI_API_KEY
		assistants.WithMaxRetries(3),          // default 2
		assistants.WithTimeout(time.Minute),   // per attempt; default 10 minutes
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()

	a, err := c.GetAssistant(ctx, "asst_1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(a.Id, a.Model, *a.Name)

	_, err = c.GetAssistant(ctx, "asst_2")
	fmt.Println(assistants.IsNotFound(err), err)
	// Output:
	// asst_1 gpt-4o Helper
	// true assistants: 404 invalid_request_error: No assistant found. (request req_1)
}

// NewHTTPClient gives code that makes raw requests, such as streaming, the
// same configured client and base URL that New uses.
func ExampleNewHTTPClient() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.Method, r.URL.Path)
		fmt.Println("Authorization:", r.Header.Get("Authorization"))
		fmt.Println("OpenAI-Beta:", r.Header.Get("OpenAI-Beta"))
		fmt.Println("User-Agent:", r.Header.Get("User-Agent"))
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: done\ndata: [DONE]\n\n")
	}))
	defer srv.Close()

	hc, base, err := assistants.NewHTTPClient(
		assistants.WithBaseURL(srv.URL+"/v1"),
		assistants.WithAPIKey("sk-example"),
		assistants.WithUserAgent("example/1.0"),
		assistants.WithTimeout(time.Minute),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := hc.Post(base+"/threads/thread_1/runs", "application/json", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Println(assistants.NewAPIError(resp, nil))
		return
	}
	events, _ := io.ReadAll(resp.Body)
	fmt.Printf("%q\n", events)
	// Output:
	// POST /v1/threads/thread_1/runs
	// Authorization: Bearer sk-example
	// OpenAI-Beta: assistants=v2
	// User-Agent: assistants-go/0.1.0 example/1.0
	// "event: done\ndata: [DONE]\n\n"
}

// A non-2xx reply becomes an *APIError whose text never shows a key.
func ExampleNewAPIError() {
	resp := &http.Response{StatusCode: 401, Header: http.Header{"X-Request-Id": {"req_123"}}}
	body := []byte(`{"error":{"message":"Incorrect API key provided: sk-proj-abc123def456.","type":"invalid_request_error","code":"invalid_api_key"}}`)
	fmt.Println(assistants.NewAPIError(resp, body))
	// Output:
	// assistants: 401 invalid_request_error (invalid_api_key): Incorrect API key provided: [REDACTED]. (request req_123)
}

// Ptr fills optional fields and the constructors build union values, each
// in one expression.
func ExampleUserMessage() {
	msg := assistants.UserMessage("Where is my order A-1042?")
	run := gen.CreateRunRequest{
		AssistantId:  "asst_1",
		Instructions: assistants.Ptr("Answer in one sentence."),
		ToolChoice:   assistants.Ptr(assistants.ToolChoiceFunction("get_order")),
	}
	for _, v := range []any{msg, run} {
		b, err := json.Marshal(v)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(b))
	}
	// Output:
	// {"content":"Where is my order A-1042?","role":"user"}
	// {"assistant_id":"asst_1","instructions":"Answer in one sentence.","tool_choice":{"function":{"name":"get_order"},"type":"function"}}
}
