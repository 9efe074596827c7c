package poller_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/poller"
	"github.com/assistants-go/assistants/server"
)

// userMessage is a thread's first message.
func userMessage(text string) gen.CreateMessageRequest {
	return assistants.UserMessage(text)
}

// lastReply returns the text of the newest message of a thread.
func lastReply(ctx context.Context, c *assistants.Client, threadID string) string {
	order, limit := gen.ListMessagesParamsOrderDesc, 1
	page, err := c.ListMessages(ctx, threadID,
		&gen.ListMessagesParams{Order: &order, Limit: &limit})
	if err != nil || len(page.Data) == 0 {
		return fmt.Sprint("no reply: ", err)
	}
	var text string
	for _, part := range page.Data[0].Content {
		if part.Type == gen.MessageContentTypeText {
			text += part.Text.Value
		}
	}
	return text
}

// CreateThreadAndRunAndPoll starts a run and waits for it; the embedded
// server's scripted model echoes the user.
func ExampleCreateThreadAndRunAndPoll() {
	srv, err := assistantstest.Start(server.WithStepDelay(0))
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer srv.Close()
	ctx := context.Background()
	c := srv.Client

	asst, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o"})
	if err != nil {
		fmt.Println("create assistant:", err)
		return
	}
	msgs := []gen.CreateMessageRequest{userMessage("hello there")}
	run, err := poller.CreateThreadAndRunAndPoll(ctx, c, gen.CreateThreadAndRunRequest{
		AssistantId: asst.Id,
		Thread:      &gen.CreateThreadRequest{Messages: &msgs},
	}, poller.WithInterval(10*time.Millisecond))
	var runErr *poller.RunError
	switch {
	case errors.As(err, &runErr):
		fmt.Println("run ended:", runErr.Status, runErr.Message)
	case err != nil:
		fmt.Println("error:", err)
	default:
		fmt.Println(run.Status)
		fmt.Println(lastReply(ctx, c, run.ThreadId))
	}
	// Output:
	// completed
	// You said: hello there
}

// A run that needs a tool stops in requires_action; answer it with
// SubmitToolOutputsAndPoll. (helpers.RunToolLoop does all of this for you.)
func ExampleSubmitToolOutputsAndPoll() {
	srv, err := assistantstest.Start(server.WithStepDelay(0))
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer srv.Close()
	ctx := context.Background()
	c := srv.Client

	params := gen.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}
	var tool gen.AssistantTool
	_ = tool.FromAssistantToolsFunction(gen.AssistantToolsFunction{Type: "function",
		Function: gen.FunctionObject{Name: "get_weather", Parameters: &params}})
	tools := []gen.AssistantTool{tool}
	asst, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o", Tools: &tools})
	if err != nil {
		fmt.Println("create assistant:", err)
		return
	}
	msgs := []gen.CreateMessageRequest{userMessage(`please get_weather {"city":"Paris"}`)}
	thread, err := c.CreateThread(ctx, gen.CreateThreadRequest{Messages: &msgs})
	if err != nil {
		fmt.Println("create thread:", err)
		return
	}

	fast := poller.WithInterval(10 * time.Millisecond)
	run, err := poller.CreateAndPoll(ctx, c, thread.Id, gen.CreateRunRequest{AssistantId: asst.Id}, fast)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(run.Status)
	var outputs []gen.SubmitToolOutputsRunRequestToolOutput
	for _, call := range run.RequiredAction.SubmitToolOutputs.ToolCalls {
		fmt.Println("call:", call.Function.Name, call.Function.Arguments)
		id, out := call.Id, `{"temp_c":21}`
		outputs = append(outputs, gen.SubmitToolOutputsRunRequestToolOutput{ToolCallId: &id, Output: &out})
	}
	run, err = poller.SubmitToolOutputsAndPoll(ctx, c, thread.Id, run.Id, gen.SubmitToolOutputsRunRequest{ToolOutputs: outputs}, fast)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(run.Status)
	fmt.Println(lastReply(ctx, c, thread.Id))
	// Output:
	// requires_action
	// call: get_weather {"city":"Paris"}
	// completed
	// get_weather returned: {"temp_c":21}
}

// The step API: resume a run from its ids and drive the polls yourself.
func ExampleNew() {
	srv, err := assistantstest.Start(server.WithStepDelay(0))
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer srv.Close()
	ctx := context.Background()
	c := srv.Client

	asst, _ := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o"})
	msgs := []gen.CreateMessageRequest{userMessage("ping")}
	started, err := c.CreateThreadAndRun(ctx, gen.CreateThreadAndRunRequest{
		AssistantId: asst.Id, Thread: &gen.CreateThreadRequest{Messages: &msgs}})
	if err != nil {
		fmt.Println("error:", err)
		return
	}

	// Later, perhaps in another process, with only the two ids:
	p := poller.New(c, started.ThreadId, started.Id, poller.WithInterval(10*time.Millisecond))
	for !p.Done() {
		if _, err := p.Poll(ctx); err != nil && !poller.IsTransient(err) {
			break
		}
		if !p.Done() {
			time.Sleep(p.NextInterval()) // or select on ctx.Done() and a timer
		}
	}
	run, err := p.Result()
	fmt.Println(run.Status, err)
	// Output: completed <nil>
}
