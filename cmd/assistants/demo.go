package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	"github.com/assistants-go/assistants/poller"
	"github.com/assistants-go/assistants/server"
)

// startEmbedded starts the embedded server on a free loopback port and returns
// its base URL and a function that stops it.
func startEmbedded(opts ...server.Option) (string, func(), error) {
	srv := server.New(opts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = srv.Close()
	}
	return "http://" + ln.Addr().String() + "/v1", stop, nil
}

// demoTarget picks the server: OPENAI_BASE_URL when set, else the embedded one.
func demoTarget(out io.Writer, stepDelay time.Duration) (baseURL, key string, stop func(), err error) {
	if u := os.Getenv("OPENAI_BASE_URL"); u != "" {
		fmt.Fprintf(out, "target: %s (OPENAI_BASE_URL)\n", u)
		return u, os.Getenv("OPENAI_API_KEY"), func() {}, nil
	}
	opts := []server.Option{server.WithStepDelay(stepDelay)}
	bf := addBackendFlags(flag.NewFlagSet("backend", flag.ContinueOnError), os.Getenv) // defaults from ASSISTANTS_BACKEND_*
	if m, err := bf.model(os.Getenv, nil); err != nil {
		return "", "", nil, err
	} else if m != nil {
		fmt.Fprintf(out, "model: Chat Completions backend at %s\n", bf.url)
		opts = append(opts, server.WithModel(m))
	}
	baseURL, stop, err = startEmbedded(opts...)
	if err != nil {
		return "", "", nil, err
	}
	fmt.Fprintf(out, "target: embedded server at %s\n", baseURL)
	return baseURL, "demo-key", stop, nil
}

// weather is the demo's function tool.
func weather(city string) string {
	b, _ := json.Marshal(map[string]any{"city": city, "forecast": "sunny", "temp_c": 21})
	return string(b)
}

func demo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	stepDelay := fs.Duration("step-delay", 50*time.Millisecond, "embedded server: delay before each run state change")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	baseURL, key, stop, err := demoTarget(out, *stepDelay)
	if err != nil {
		return err
	}
	defer stop()
	client, err := assistants.New(assistants.WithBaseURL(baseURL), assistants.WithAPIKey(key))
	if err != nil {
		return err
	}

	pr := &streamPrinter{out: out}

	// 1. An assistant with one typed function tool, and a thread. The tool's
	// JSON Schema and its handler come from one definition.
	type weatherArgs struct {
		City string `json:"city" jsonschema:"the city to forecast"`
	}
	reg, err := helpers.NewRegistry(helpers.Func("get_weather", "Get the weather forecast for a city.",
		func(ctx context.Context, a weatherArgs) (string, error) {
			res := weather(a.City)
			pr.line(fmt.Sprintf("tool call: get_weather({\"city\":%q}) -> %s", a.City, res))
			return res, nil
		}))
	if err != nil {
		return err
	}
	tools := reg.Tools()
	name := "Weather helper"
	asst, err := assistants.Result[gen.AssistantObject](client.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{
		Model: modelName(), Name: &name, Tools: &tools,
	}))
	if err != nil {
		return fmt.Errorf("create assistant: %w", err)
	}
	fmt.Fprintf(out, "assistant: %s (%s)\n", asst.Id, *asst.Name)
	thread, err := assistants.Result[gen.ThreadObject](client.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{}))
	if err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	fmt.Fprintf(out, "thread: %s\n", thread.Id)

	// 2. A question that triggers the tool.
	question := `What should I wear in Paris today? Please call get_weather {"city":"Paris"}`
	var content gen.CreateMessageRequest_Content
	if err := content.FromCreateMessageText(question); err != nil {
		return err
	}
	if _, err := assistants.Result[gen.MessageObject](client.CreateMessageWithResponse(ctx, thread.Id, gen.CreateMessageRequest{Role: gen.CreateMessageRequestRoleUser, Content: content})); err != nil {
		return fmt.Errorf("create message: %w", err)
	}
	fmt.Fprintf(out, "user: %s\n", question)

	// 3. Run it with the streaming tool loop: tool calls are answered as they
	// come, and the answer is printed token by token as it arrives.
	acc := &helpers.Accumulator{OnTextDelta: func(_, text string) { pr.text(text) }}
	run, err := helpers.StreamRunTools(ctx, client, thread.Id, gen.CreateRunRequest{AssistantId: asst.Id}, reg, acc)
	pr.endText()
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	fmt.Fprintf(out, "run: %s %s\n", run.Id, run.Status)

	// 4. The thread's messages, oldest first.
	order := gen.ListMessagesParamsOrderAsc
	list, err := assistants.Result[gen.ListMessagesResponse](client.ListMessagesWithResponse(ctx, thread.Id, &gen.ListMessagesParams{Order: &order}))
	if err != nil {
		return fmt.Errorf("list messages: %w", err)
	}
	fmt.Fprintf(out, "summary: %d messages\n", len(list.Data))
	width := 0
	for _, m := range list.Data {
		width = max(width, len(m.Role)+1)
	}
	for _, m := range list.Data {
		fmt.Fprintf(out, "  %-*s %s\n", width, string(m.Role)+":", oneLine(messageText(m), 100))
	}
	if run.Status != gen.RunObjectStatusCompleted {
		return fmt.Errorf("run ended %s", run.Status)
	}
	return demoFileSearch(ctx, client, out)
}

// demoDocs are the documents of the file search part.
var demoDocs = []struct{ name, text string }{
	{"refunds.md", "# Refunds\n\nRefunds are paid within 14 days of the return. Items must be unused and in their original packaging.\n"},
	{"shipping.md", "# Shipping\n\nOrders ship within 2 business days. Express delivery takes one day in most cities.\n"},
}

// demoFileSearch is the demo's second part: two small documents in a
// vector store, an assistant with file_search, a question, and the answer
// with each citation resolved to its file's name.
func demoFileSearch(ctx context.Context, client *assistants.Client, out io.Writer) error {
	storeName := "Demo documents"
	store, err := client.CreateVectorStore(ctx, gen.CreateVectorStoreRequest{Name: &storeName})
	if err != nil {
		return fmt.Errorf("create vector store: %w", err)
	}
	for _, d := range demoDocs {
		vf, err := helpers.UploadFileAndPoll(ctx, client, store.Id, helpers.FileSource{Reader: strings.NewReader(d.text), Filename: d.name}, nil)
		if err != nil {
			return fmt.Errorf("upload %s: %w", d.name, err)
		}
		fmt.Fprintf(out, "file search: %s in %s (%s, %d bytes indexed)\n", d.name, store.Id, vf.Status, vf.UsageBytes)
	}
	var tool gen.AssistantTool
	if err := tool.FromAssistantToolsFileSearch(gen.AssistantToolsFileSearch{Type: "file_search"}); err != nil {
		return err
	}
	name := "Docs helper"
	asst, err := client.CreateAssistant(ctx, gen.CreateAssistantRequest{
		Model: modelName(), Name: &name, Tools: &[]gen.AssistantTool{tool},
		Instructions:  assistants.Ptr("Answer from the files and cite them."),
		ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{store.Id}}},
	})
	if err != nil {
		return fmt.Errorf("create assistant: %w", err)
	}
	question := "How long do refunds take?"
	var content gen.CreateMessageRequest_Content
	if err := content.FromCreateMessageText(question); err != nil {
		return err
	}
	thread, err := client.CreateThread(ctx, gen.CreateThreadRequest{Messages: &[]gen.CreateMessageRequest{{Role: gen.CreateMessageRequestRoleUser, Content: content}}})
	if err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	fmt.Fprintf(out, "user: %s\n", question)
	run, err := poller.CreateAndPoll(ctx, client, thread.Id, gen.CreateRunRequest{AssistantId: asst.Id})
	if err != nil {
		return fmt.Errorf("file search run: %w", err)
	}
	if run.Status != gen.RunObjectStatusCompleted {
		return fmt.Errorf("file search run ended %s", run.Status)
	}

	// The search, as the run's steps show it.
	include := []gen.ListRunStepsParamsInclude{gen.ListRunStepsParamsIncludeStepDetailsToolCallsFileSearchResultsContent}
	asc := gen.ListRunStepsParamsOrderAsc
	steps, err := client.ListRunSteps(ctx, thread.Id, run.Id, &gen.ListRunStepsParams{Order: &asc, Include: &include})
	if err != nil {
		return fmt.Errorf("list run steps: %w", err)
	}
	for _, st := range steps.Data {
		d, err := st.StepDetails.AsRunStepDetailsToolCallsObject()
		if err != nil || st.Type != gen.RunStepObjectTypeToolCalls {
			continue
		}
		for _, c := range d.ToolCalls {
			fs, err := c.AsRunStepDetailsToolCallsFileSearchObject()
			if err != nil || fs.Type != "file_search" || fs.FileSearch.Results == nil {
				continue
			}
			var hits []string
			for _, r := range *fs.FileSearch.Results {
				hits = append(hits, fmt.Sprintf("%s (%.2f)", r.FileName, r.Score))
			}
			fmt.Fprintf(out, "file_search step: %s\n", strings.Join(hits, ", "))
		}
	}

	// The answer, with its citations resolved to file names.
	answer, err := helpers.RunAnswer(ctx, client, run)
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	list, err := client.ListMessages(ctx, thread.Id, &gen.ListMessagesParams{RunId: &run.Id})
	if err != nil {
		return fmt.Errorf("list messages: %w", err)
	}
	fmt.Fprintf(out, "assistant: %s\n", answer.Text())
	for _, m := range list.Data {
		for _, c := range m.Content {
			for _, fc := range c.Text.Annotations {
				if fc.Type != gen.MessageContentTextAnnotationTypeFileCitation {
					continue
				}
				f, err := client.RetrieveFile(ctx, fc.FileCitation.FileId)
				if err != nil {
					return fmt.Errorf("retrieve cited file: %w", err)
				}
				fmt.Fprintf(out, "  citation %s at [%d,%d) -> %s (%s)\n", fc.Text, fc.StartIndex, fc.EndIndex, f.Filename, f.Id)
			}
		}
	}
	return nil
}

// streamPrinter prints the streamed answer after "assistant (streaming): "
// and every other line (a tool call) on a line of its own, ending the
// answer's line first when it is open. Safe for concurrent use.
type streamPrinter struct {
	mu   sync.Mutex
	out  io.Writer
	open bool // an answer line is open
}

// text prints a piece of the streamed answer.
func (p *streamPrinter) text(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.open {
		fmt.Fprint(p.out, "assistant (streaming): ")
		p.open = true
	}
	fmt.Fprint(p.out, s)
}

// line prints s on a line of its own.
func (p *streamPrinter) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprintln(p.out)
		p.open = false
	}
	fmt.Fprintln(p.out, s)
}

// endText ends the answer's line, if one is open.
func (p *streamPrinter) endText() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprintln(p.out)
		p.open = false
	}
}

func modelName() string {
	if m := os.Getenv("ASSISTANTS_DEMO_MODEL"); m != "" {
		return m
	}
	return "gpt-4o"
}

// messageText joins the text parts of a message.
func messageText(m gen.MessageObject) string {
	var parts []string
	for _, c := range m.Content {
		if c.Type == gen.MessageContentTypeText {
			parts = append(parts, c.Text.Value)
		}
	}
	return strings.Join(parts, " ")
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
