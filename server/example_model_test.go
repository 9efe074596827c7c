package server_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

func userMessage(text string) gen.MessageObject {
	c := gen.MessageContent{Type: gen.MessageContentTypeText, Text: gen.MessageContentText{Value: text}}
	return gen.MessageObject{Role: gen.MessageObjectRoleUser, Content: []gen.MessageContent{c}}
}

// The scripted model calls the run's function tools named in the latest user
// message, quotes their outputs once submitted, and echoes anything else.
func ExampleScripted() {
	ctx := context.Background()
	model := server.Scripted()
	in := &server.ModelInput{
		Functions: []gen.FunctionObject{{Name: "get_weather"}},
		Messages:  []gen.MessageObject{userMessage(`please get_weather {"city": "Paris"}`)},
	}
	out, _ := model.Respond(ctx, in, func(string) {})
	fmt.Printf("call: %s %s\n", out.ToolCalls[0].Name, out.ToolCalls[0].Arguments)

	in.ToolOutputs = []server.ToolOutput{{Call: server.ToolCall{ID: "call_1", Name: "get_weather", Arguments: `{"city":"Paris"}`}, Output: `{"temp":21}`}}
	var deltas []string
	out, _ = model.Respond(ctx, in, func(d string) { deltas = append(deltas, d) })
	fmt.Printf("reply: %s (%d deltas)\n", out.Text, len(deltas))

	in = &server.ModelInput{Messages: []gen.MessageObject{userMessage("hello there")}}
	out, _ = model.Respond(ctx, in, func(string) {})
	fmt.Printf("echo: %s, usage %+v\n", out.Text, out.Usage)
	// Output:
	// call: get_weather {"city":"Paris"}
	// reply: get_weather returned: {"temp":21} (3 deltas)
	// echo: You said: hello there, usage {PromptTokens:2 CompletionTokens:4}
}

// Script plays fixed turns, one per model round, for tests that need a
// given reply, tool call, error or delay.
func ExampleScript() {
	model := server.Script(
		server.Turn{ToolCalls: []server.ToolCall{{Name: "lookup", Arguments: `{"q":"go"}`}}},
		server.Turn{Text: "Found it."},
		server.Turn{Err: &server.ModelError{Code: server.ModelErrRateLimit, Message: "Slow down."}},
	)
	srv := server.New(server.WithModel(model)) // runs of srv use the script
	defer srv.Close()

	ctx := context.Background()
	for range 4 {
		out, err := model.Respond(ctx, &server.ModelInput{}, func(string) {})
		switch {
		case err != nil:
			fmt.Println("error:", strings.SplitN(err.Error(), ":", 2)[0])
		case len(out.ToolCalls) > 0:
			fmt.Println("calls", out.ToolCalls[0].Name)
		default:
			fmt.Println("says", out.Text)
		}
	}
	// Output:
	// calls lookup
	// says Found it.
	// error: model error rate_limit_exceeded
	// error: model error server_error
}
