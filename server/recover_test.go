package server_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// TestModelPanicFailsTheRun: a model that panics (before or after part of
// its reply) fails the run with server_error; the process lives and the
// next run on the thread completes.
func TestModelPanicFailsTheRun(t *testing.T) {
	for _, partial := range []bool{false, true} {
		name := map[bool]string{false: "before any text", true: "after part of a message"}[partial]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				model := server.ModelFunc(func(ctx context.Context, in *server.ModelInput, emit func(string)) (*server.ModelOutput, error) {
					if calls.Add(1) == 1 {
						if partial {
							emit("half a")
						}
						panic("model bug")
					}
					return &server.ModelOutput{Text: "fine"}, nil
				})
				x := newRT(t, assistantstest.NewInProcessServer(t, server.WithModel(model)))
				a := x.assistant(gen.CreateAssistantRequest{})
				thread := x.thread("hi")
				run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
				settle(time.Second)
				got := x.get(thread, run.Id)
				require.Equal(t, gen.RunObjectStatusFailed, got.Status)
				require.NotNil(t, got.LastError)
				assert.Equal(t, gen.RunObjectLastErrorCodeServerError, got.LastError.Code)
				assert.NotContains(t, got.LastError.Message, "model bug", "the panic value stays in the log")
				for _, st := range x.steps(thread, run.Id) {
					assert.Equal(t, gen.RunStepObjectStatusFailed, st.Status)
				}
				if partial {
					msgs := x.messages(thread)
					assert.Equal(t, gen.MessageObjectStatusIncomplete, msgs[len(msgs)-1].Status)
				}

				// The server lives, and the thread is free again.
				next := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
				settle(time.Second)
				assert.Equal(t, gen.RunObjectStatusCompleted, x.get(thread, next.Id).Status)
			})
		})
	}
}

// TestVectorStorePanicFailsTheFile: a panic while processing one file fails
// that file with server_error; the store's other files complete and the
// server goes on serving, both when processing runs in the background
// (step delay) and when it runs inside the request (no delay).
func TestVectorStorePanicFailsTheFile(t *testing.T) {
	for _, delay := range []time.Duration{stepDelay, 0} {
		t.Run(delay.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := assistantstest.NewInProcessServer(t, server.WithStepDelay(delay))
				x := newRT(t, srv)
				files := uploadN(x, 3)
				srv.Server.SetProcessFileHook(func(id string) {
					if id == files[1] {
						panic("extraction bug")
					}
				})
				r, err := x.c.CreateVectorStoreWithResponse(x.ctx, gen.CreateVectorStoreRequest{FileIds: &files})
				require.NoError(t, err)
				require.NotNil(t, r.JSON200, "body: %s", r.Body)
				vs := r.JSON200.Id
				settle(10 * stepDelay)

				for i, id := range files {
					f, err := x.c.GetVectorStoreFileWithResponse(x.ctx, vs, id)
					require.NoError(t, err)
					require.NotNil(t, f.JSON200, "body: %s", f.Body)
					if i != 1 {
						assert.Equal(t, gen.VectorStoreFileObjectStatusCompleted, f.JSON200.Status)
						continue
					}
					assert.Equal(t, gen.VectorStoreFileObjectStatusFailed, f.JSON200.Status)
					require.NotNil(t, f.JSON200.LastError)
					assert.Equal(t, gen.VectorStoreFileObjectLastErrorCodeServerError, f.JSON200.LastError.Code)
				}
				g, err := x.c.GetVectorStoreWithResponse(x.ctx, vs)
				require.NoError(t, err)
				require.NotNil(t, g.JSON200)
				assert.Equal(t, gen.VectorStoreObjectStatusCompleted, g.JSON200.Status)
				assert.Equal(t, 1, g.JSON200.FileCounts.Failed)
				assert.Equal(t, 2, g.JSON200.FileCounts.Completed)
			})
		})
	}
}
