package helpers

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// After RunTools (polling) and StreamRunTools (streaming) the answer comes
// back in one call: RunAnswer lists the run's assistant messages, and the
// Accumulator already holds them. Both give the scripted model's reply.
func TestRunAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := assistantstest.NewInProcessServer(t, server.WithStepDelay(0))
		c := srv.Client
		ctx := t.Context()
		reg := MustRegistry(Func("get_weather", "", func(ctx context.Context, a weatherArgs) (string, error) {
			return "sunny in " + a.City, nil
		}))
		tools := reg.Tools()
		asst, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o", Tools: &tools})
		require.NoError(t, err)

		ask := func() string {
			th, err := c.CreateThread(ctx, gen.CreateThreadRequest{})
			require.NoError(t, err)
			// An earlier user message, so the answer must leave it out.
			_, err = c.CreateMessage(ctx, th.Id, assistants.UserMessage(`please get_weather {"city":"Paris"}`))
			require.NoError(t, err)
			return th.Id
		}
		const want = `get_weather returned: sunny in Paris`

		thread := ask()
		run, err := RunTools(ctx, c, thread, gen.CreateRunRequest{AssistantId: asst.Id}, reg)
		require.NoError(t, err)
		answer, err := RunAnswer(ctx, c, run)
		require.NoError(t, err)
		require.Len(t, answer.Messages, 1)
		assert.Equal(t, gen.MessageObjectRoleAssistant, answer.Messages[0].Role)
		assert.Contains(t, answer.Text(), want)

		thread = ask()
		acc := &Accumulator{}
		_, err = StreamRunTools(ctx, c, thread, gen.CreateRunRequest{AssistantId: asst.Id}, reg, acc)
		require.NoError(t, err)
		assert.Contains(t, acc.Answer().Text(), want)
		assert.Len(t, acc.Answer().Messages, 1)
	})
}

func TestRunAnswerErrors(t *testing.T) {
	_, err := RunAnswer(context.Background(), nil, nil)
	assert.ErrorContains(t, err, "nil run")
	var a *Answer
	assert.Equal(t, "", a.Text())
}
