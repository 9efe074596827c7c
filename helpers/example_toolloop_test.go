package helpers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	"github.com/assistants-go/assistants/poller"
	"github.com/assistants-go/assistants/server"
)

// WeatherArgs are get_weather's arguments; the JSON Schema sent to the
// model is derived from this struct.
type WeatherArgs struct {
	City string `json:"city" jsonschema:"the city, e.g. Paris"`
	Unit string `json:"unit,omitempty" jsonschema:"celsius (default) or fahrenheit"`
}

// Weather is get_weather's result, sent to the model as JSON.
type Weather struct {
	City  string `json:"city"`
	TempC int    `json:"temp_c"`
}

// toolLoopThread creates a thread holding one user message.
func toolLoopThread(ctx context.Context, c *assistants.Client, text string) (string, error) {
	msgs := []gen.CreateMessageRequest{assistants.UserMessage(text)}
	thread, err := c.CreateThread(ctx, gen.CreateThreadRequest{Messages: &msgs})
	if err != nil {
		return "", err
	}
	return thread.Id, nil
}

// toolLoopReply returns the text of a thread's newest message.
func toolLoopReply(ctx context.Context, c *assistants.Client, threadID string) string {
	order, limit := gen.ListMessagesParamsOrderDesc, 1
	page, err := c.ListMessages(ctx, threadID,
		&gen.ListMessagesParams{Order: &order, Limit: &limit})
	if err != nil || len(page.Data) == 0 {
		return fmt.Sprint("no reply: ", err)
	}
	return helpers.MessageText(page.Data[0])
}

// Define typed tools once, give the run their definitions (reg.Tools()) and
// let RunTools answer the model's calls until the run completes. The
// embedded server's scripted model calls the tools the user names and then
// quotes their outputs.
func ExampleRunTools() {
	srv, err := assistantstest.Start(server.WithStepDelay(0))
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer srv.Close()
	ctx := context.Background()
	c := srv.Client

	reg, err := helpers.NewRegistry(
		helpers.Func("get_weather", "Current weather in a city",
			func(ctx context.Context, a WeatherArgs) (Weather, error) {
				return Weather{City: a.City, TempC: 21}, nil
			}),
		helpers.Func("get_time", "Current time in a city",
			func(ctx context.Context, a struct {
				City string `json:"city"`
			}) (string, error) {
				if a.City == "Atlantis" {
					return "", errors.New("no such city")
				}
				return "12:00", nil
			}),
	)
	if err != nil {
		fmt.Println("registry:", err)
		return
	}
	asst, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o"})
	if err != nil {
		fmt.Println("create assistant:", err)
		return
	}
	threadID, err := toolLoopThread(ctx, c, `please get_weather {"city":"Paris"} and get_time {"city":"Atlantis"}`)
	if err != nil {
		fmt.Println("create thread:", err)
		return
	}

	tools := reg.Tools()
	run, err := helpers.RunTools(ctx, c, threadID, gen.CreateRunRequest{AssistantId: asst.Id, Tools: &tools}, reg,
		helpers.WithPollOptions(poller.WithInterval(10*time.Millisecond)))
	if err != nil {
		fmt.Println("tool loop:", err)
		return
	}
	fmt.Println(run.Status)
	fmt.Println(toolLoopReply(ctx, c, threadID))
	// Output:
	// completed
	// get_weather returned: {"city":"Paris","temp_c":21}
	// get_time returned: {"error":"no such city"}
}

// Bad arguments never reach the handler: the model gets an error output
// saying what is wrong, and can try again.
func ExampleFunc() {
	tool := helpers.Func("get_weather", "Current weather in a city",
		func(ctx context.Context, a WeatherArgs) (Weather, error) {
			return Weather{City: a.City, TempC: 21}, nil
		})
	reg := helpers.MustRegistry(tool)
	outs, err := reg.Execute(context.Background(), []gen.RunToolCallObject{
		{Id: "call_1", Type: "function", Function: gen.RunToolCallFunction{Name: "get_weather", Arguments: `{"city":"Oslo"}`}},
		{Id: "call_2", Type: "function", Function: gen.RunToolCallFunction{Name: "get_weather", Arguments: `{"town":"Oslo"}`}},
		{Id: "call_3", Type: "function", Function: gen.RunToolCallFunction{Name: "get_forecast", Arguments: `{}`}},
	}, helpers.ExecOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range outs {
		fmt.Println(*o.ToolCallId, strings.ReplaceAll(*o.Output, `\"`, `'`))
	}
	// Output:
	// call_1 {"city":"Oslo","temp_c":21}
	// call_2 {"error":"invalid arguments for get_weather: unexpected additional properties ['town']"}
	// call_3 {"error":"unknown tool 'get_forecast': available tools are get_weather"}
}
