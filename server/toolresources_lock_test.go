package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The vector store asked for in tool_resources is created, and with
// StepDelay 0 its files processed, without the server's lock held: a
// slow file (or a remote embedder) must not stall every other thread's
// messages and runs. The ingest hook looks at the lock while the file is
// processed inside the request.
func TestToolResourcesIngestOutsideLock(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"create assistant", `{"model":"gpt-4o","tool_resources":{"file_search":{"vector_stores":[{"file_ids":["%s"]}]}}}`},
		{"create thread", `{"tool_resources":{"file_search":{"vector_stores":[{"file_ids":["%s"]}]}}}`},
		{"create thread and run", `{"assistant_id":"%a","thread":{"tool_resources":{"file_search":{"vector_stores":[{"file_ids":["%s"]}]}}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, ctx := newTestServer(t)
			c := srv.Client
			f := upload(t, ctx, c, "doc.txt", "Krill are small crustaceans.")
			a, err := c.CreateAssistantWithBodyWithResponse(ctx, "application/json", strings.NewReader(`{"model":"gpt-4o"}`))
			require.NoError(t, err)
			require.NotNil(t, a.JSON200, "body: %s", a.Body)
			var processed, underLock atomic.Int32
			srv.Server.SetIngestHook(func(context.Context, string) {
				processed.Add(1)
				if !srv.Server.LockFree() {
					underLock.Add(1)
				}
			})
			body := strings.NewReplacer("%s", f.Id, "%a", a.JSON200.Id).Replace(tc.body)
			var code int
			var reply []byte
			switch tc.name {
			case "create assistant":
				r, err := c.CreateAssistantWithBodyWithResponse(ctx, "application/json", strings.NewReader(body))
				require.NoError(t, err)
				code, reply = r.StatusCode(), r.Body
			case "create thread":
				r, err := c.CreateThreadWithBodyWithResponse(ctx, "application/json", strings.NewReader(body))
				require.NoError(t, err)
				code, reply = r.StatusCode(), r.Body
			default:
				r, err := c.CreateThreadAndRunWithBodyWithResponse(ctx, "application/json", strings.NewReader(body))
				require.NoError(t, err)
				code, reply = r.StatusCode(), r.Body
			}
			require.Equal(t, http.StatusOK, code, "body: %s", reply)
			require.Equal(t, int32(1), processed.Load(), "the file is processed within the request (StepDelay 0)")
			assert.Zero(t, underLock.Load(), "the file was processed with the server's lock held")
		})
	}
}
