// Command goopenai is ours (../ours) written with github.com/sashabaranov/go-openai:
// the same calls, so that TestConsumerFootprint compares binary sizes of equal
// programs. go-openai has no poll helper or iterator, so the program has the
// loops its users write.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg := openai.DefaultConfig(os.Getenv("OPENAI_API_KEY"))
	if u := os.Getenv("OPENAI_BASE_URL"); u != "" {
		cfg.BaseURL = u
	}
	c := openai.NewClientWithConfig(cfg)
	model := "gpt-4o"
	asst, err := c.CreateAssistant(ctx, openai.AssistantRequest{Model: model})
	if err != nil {
		return err
	}
	thread, err := c.CreateThread(ctx, openai.ThreadRequest{})
	if err != nil {
		return err
	}
	if _, err := c.CreateMessage(ctx, thread.ID, openai.MessageRequest{Role: "user", Content: "Hello"}); err != nil {
		return err
	}
	run, err := c.CreateRun(ctx, thread.ID, openai.RunRequest{AssistantID: asst.ID})
	if err != nil {
		return err
	}
	for run.Status == openai.RunStatusQueued || run.Status == openai.RunStatusInProgress || run.Status == openai.RunStatusCancelling {
		time.Sleep(time.Second)
		if run, err = c.RetrieveRun(ctx, thread.ID, run.ID); err != nil {
			return err
		}
	}
	if run.Status != openai.RunStatusCompleted {
		return fmt.Errorf("run %s ended %s", run.ID, run.Status)
	}
	var after *string
	for {
		list, err := c.ListMessage(ctx, thread.ID, nil, nil, after, nil, nil)
		if err != nil {
			return err
		}
		for _, m := range list.Messages {
			text := ""
			for _, p := range m.Content {
				if p.Text != nil {
					text += p.Text.Value
				}
			}
			fmt.Println(m.Role, text)
		}
		if !list.HasMore || list.LastID == nil {
			return nil
		}
		after = list.LastID
	}
}
