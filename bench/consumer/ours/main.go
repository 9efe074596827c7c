// Command ours is the smallest program a user of this module writes for the
// Assistants API's main job: create an assistant and a thread, add a message,
// run it and wait, then read the reply. TestConsumerFootprint builds it to
// check that it links none of the server's or the generator's dependencies
// and to compare its size with goopenai, the same program on go-openai.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	"github.com/assistants-go/assistants/poller"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	c, err := assistants.New() // $OPENAI_API_KEY, $OPENAI_BASE_URL
	if err != nil {
		return err
	}
	asst, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o"})
	if err != nil {
		return err
	}
	thread, err := c.CreateThread(ctx, gen.CreateThreadRequest{})
	if err != nil {
		return err
	}
	if _, err := c.CreateMessage(ctx, thread.Id, assistants.UserMessage("Hello")); err != nil {
		return err
	}
	if _, err := poller.CreateAndPoll(ctx, c, thread.Id, gen.CreateRunRequest{AssistantId: asst.Id}); err != nil {
		return err
	}
	for m, err := range helpers.Messages(ctx, c, thread.Id, nil) {
		if err != nil {
			return err
		}
		fmt.Println(m.Role, helpers.MessageText(m))
	}
	return nil
}
