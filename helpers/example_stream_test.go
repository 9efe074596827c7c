package helpers_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	"github.com/assistants-go/assistants/server"
)

// exampleServer starts the embedded Assistants server (scripted model, no
// delays) and returns a client for it and a function that stops both.
func exampleServer() (*assistants.Client, func()) {
	srv := server.New(server.WithStepDelay(0))
	hs := httptest.NewServer(srv.Handler())
	stop := func() { _ = srv.Close(); hs.Close() }
	client, err := assistants.New(assistants.WithBaseURL(hs.URL+"/v1"), assistants.WithAPIKey("sk-example"))
	if err != nil {
		stop()
		panic(err)
	}
	return client, stop
}

// exampleThread creates an assistant with tools and a thread holding one
// user message, and returns their ids.
func exampleThread(ctx context.Context, client *assistants.Client, tools []gen.AssistantTool, text string) (string, string, error) {
	body := gen.CreateAssistantRequest{Model: "gpt-4o"}
	if tools != nil {
		body.Tools = &tools
	}
	asst, err := client.CreateAssistant(ctx, body)
	if err != nil {
		return "", "", err
	}
	msgs := []gen.CreateMessageRequest{assistants.UserMessage(text)}
	thread, err := client.CreateThread(ctx, gen.CreateThreadRequest{Messages: &msgs})
	if err != nil {
		return "", "", err
	}
	return asst.Id, thread.Id, nil
}

// Stream a run, print its text as it arrives, then read the results from
// the accumulator. The embedded server's scripted model echoes the user.
func ExampleStreamRun() {
	client, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	asstID, threadID, err := exampleThread(ctx, client, nil, "Hello there")
	if err != nil {
		fmt.Println(err)
		return
	}

	stream, err := helpers.StreamRun(ctx, client, threadID, gen.CreateRunRequest{AssistantId: asstID})
	if err != nil {
		fmt.Println(err)
		return
	}
	acc := helpers.Accumulator{
		OnTextDelta: func(messageID, text string) { fmt.Printf("%q\n", text) },
	}
	if err := acc.Consume(stream); err != nil { // reads to the done event
		fmt.Println(err)
		return
	}
	fmt.Println("run:", acc.Run().Status)
	for _, m := range acc.Messages() {
		fmt.Println("message:", helpers.MessageText(m))
	}
	// Output:
	// "You "
	// "said: "
	// "Hello "
	// "there"
	// run: completed
	// message: You said: Hello there
}

// Range over the typed events of a stream.
func ExampleStream_Events() {
	client, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	asstID, threadID, err := exampleThread(ctx, client, nil, "Hi")
	if err != nil {
		fmt.Println(err)
		return
	}
	stream, err := helpers.StreamRun(ctx, client, threadID, gen.CreateRunRequest{AssistantId: asstID})
	if err != nil {
		fmt.Println(err)
		return
	}
	for ev, err := range stream.Events() { // closes the stream when the loop ends
		if err != nil {
			fmt.Println("stream error:", err)
			break
		}
		switch {
		case ev.Run != nil:
			fmt.Println(ev.Name, ev.Run.Status)
		case ev.RunStep != nil:
			fmt.Println(ev.Name, ev.RunStep.Type)
		case ev.MessageDelta != nil:
			// many of these; skipped
		default:
			fmt.Println(ev.Name)
		}
	}
	// Output:
	// thread.run.created queued
	// thread.run.queued queued
	// thread.run.in_progress in_progress
	// thread.run.step.created message_creation
	// thread.run.step.in_progress message_creation
	// thread.message.created
	// thread.message.in_progress
	// thread.message.completed
	// thread.run.step.completed message_creation
	// thread.run.completed completed
}

// Run a tool loop over streams: the model calls get_weather, the loop runs
// it and submits its output, and the reply streams in.
func ExampleStreamRunTools() {
	client, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	type args struct {
		City string `json:"city"`
	}
	reg := helpers.MustRegistry(helpers.Func("get_weather", "Current weather in a city.",
		func(ctx context.Context, a args) (string, error) {
			return "sunny in " + a.City, nil
		}))
	asstID, threadID, err := exampleThread(ctx, client, reg.Tools(), `What is the weather? get_weather {"city":"Paris"}`)
	if err != nil {
		fmt.Println(err)
		return
	}

	acc := &helpers.Accumulator{
		OnToolCallDelta: func(d helpers.ToolCallDelta) {
			if d.Name != "" {
				fmt.Println("calling", d.Name)
			}
		},
	}
	run, err := helpers.StreamRunTools(ctx, client, threadID, gen.CreateRunRequest{AssistantId: asstID}, reg, acc)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("run:", run.Status)
	msgs := acc.Messages()
	fmt.Println("reply:", helpers.MessageText(msgs[len(msgs)-1]))
	// Output:
	// calling get_weather
	// run: completed
	// reply: get_weather returned: sunny in Paris
}
