package bench

import (
	"context"
	"testing"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// BenchmarkCreateMessageAttempt measures what the per-attempt timeout costs
// CreateMessage, beside what a cancellable context costs go-openai:
//
//	part=default          ours, the default client (10-minute per-attempt timeout)
//	part=no-timeout       ours with WithTimeout(-1): no per-attempt timeout
//	part=goopenai         go-openai as in BenchmarkCreateMessage (context.Background)
//	part=goopenai-cancel  go-openai with a cancellable context, as a caller's
//	                      request context usually is
//
// (The parts are not named like the SDKs, so the report's peer tables leave
// this benchmark out.)
//
// The per-attempt timeout makes every attempt's context cancellable (and
// gives it a timer), and net/http does more for a request whose context can
// be cancelled.
func BenchmarkCreateMessageAttempt(b *testing.B) {
	base := server(b)
	ours, err := assistants.New(assistants.WithBaseURL(base+"/v1"), assistants.WithAPIKey(apiKey))
	if err != nil {
		b.Fatal(err)
	}
	noTimeout, err := assistants.New(assistants.WithBaseURL(base+"/v1"), assistants.WithAPIKey(apiKey), assistants.WithTimeout(-1))
	if err != nil {
		b.Fatal(err)
	}
	cfg := goopenai.DefaultConfig(apiKey)
	cfg.BaseURL = base + "/v1"
	goai := goopenai.NewClientWithConfig(cfg)

	oursOp := func(c *assistants.Client) func(context.Context) error {
		return func(ctx context.Context) error {
			body := gen.CreateMessageRequest{Role: gen.CreateMessageRequestRoleUser, Metadata: &gen.Metadata{"channel": "web"}}
			if err := body.Content.FromCreateMessageText(createMessageText); err != nil {
				return err
			}
			_, err := c.CreateMessage(ctx, benchThread, body)
			return err
		}
	}
	goOp := func(ctx context.Context) error {
		_, err := goai.CreateMessage(ctx, benchThread, goopenai.MessageRequest{
			Role: "user", Content: createMessageText, Metadata: map[string]any{"channel": "web"}})
		return err
	}
	parts := []struct {
		name   string
		cancel bool
		op     func(context.Context) error
	}{
		{"default", false, oursOp(ours)},
		{"no-timeout", false, oursOp(noTimeout)},
		{"goopenai", false, goOp},
		{"goopenai-cancel", true, goOp},
	}
	for _, p := range parts {
		b.Run("part="+p.name, func(b *testing.B) {
			ctx := context.Background()
			if p.cancel {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
			}
			if err := p.op(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if err := p.op(ctx); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}
