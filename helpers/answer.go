package helpers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/assistants-go/assistants/gen"
)

// Answer is what a run said: the assistant messages it created, oldest
// first. RunAnswer reads it after RunTools (or any run); an Accumulator
// holds it after StreamRunTools, with no request (Accumulator.Answer).
type Answer struct {
	// Messages are the run's assistant messages, oldest first.
	Messages []gen.MessageObject
}

// Text returns the text of the answer's messages (MessageText of each),
// joined by blank lines; "" for no messages.
func (a *Answer) Text() string {
	if a == nil {
		return ""
	}
	parts := make([]string, 0, len(a.Messages))
	for _, m := range a.Messages {
		if t := MessageText(m); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, "\n\n")
}

// RunAnswer lists the assistant messages that run created on its thread
// (GET /threads/{thread_id}/messages?run_id=...&order=asc, every page) and
// returns them as an Answer:
//
//	run, err := helpers.RunTools(ctx, client, threadID, body, reg)
//	...
//	answer, err := helpers.RunAnswer(ctx, client, run)
//	fmt.Println(answer.Text())
//
// An error ends the listing and is returned with no Answer.
func RunAnswer(ctx context.Context, client MessageLister, run *gen.RunObject) (*Answer, error) {
	if run == nil {
		return nil, errors.New("helpers: run answer: nil run")
	}
	order := gen.ListMessagesParamsOrderAsc
	params := &gen.ListMessagesParams{RunId: &run.Id, Order: &order}
	a := &Answer{}
	for m, err := range Messages(ctx, client, run.ThreadId, params) {
		if err != nil {
			return nil, fmt.Errorf("helpers: run answer of %s: %w", run.Id, err)
		}
		if m.Role == gen.MessageObjectRoleAssistant {
			a.Messages = append(a.Messages, m)
		}
	}
	return a, nil
}

// Answer returns the assistant messages the accumulator has seen, in the
// order they were created (for one StreamRunTools call: the run's answer).
func (a *Accumulator) Answer() *Answer {
	out := &Answer{}
	for _, m := range a.Messages() {
		if m.Role == gen.MessageObjectRoleAssistant {
			out.Messages = append(out.Messages, m)
		}
	}
	return out
}
