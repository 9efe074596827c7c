package server_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
)

// TestRunCarriesTheAssistantsTools: a run takes its assistant's tools, and
// an assistant may carry 128, so a run may too. The test server checks
// every reply against the spec: RunObject.tools allowed only 20, and every
// reply carrying such a run broke the spec.
func TestRunCarriesTheAssistantsTools(t *testing.T) {
	for _, n := range []int{21, 128} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				x := newRT(t, assistantstest.NewInProcessServer(t))
				tools := make([]gen.AssistantTool, n)
				for i := range tools {
					tools[i] = fnTool(fmt.Sprintf("tool_%d", i))
				}
				a := x.assistant(gen.CreateAssistantRequest{Tools: &tools})
				thread := x.thread("hello")
				run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
				assert.Len(t, run.Tools, n)
				settle(time.Second)
				got := x.get(thread, run.Id)
				assert.Equal(t, gen.RunObjectStatusCompleted, got.Status)
				assert.Len(t, got.Tools, n)
				l, err := x.c.ListRunsWithResponse(x.ctx, thread, nil)
				require.NoError(t, err)
				require.NotNil(t, l.JSON200, "body: %s", l.Body)
				require.Len(t, l.JSON200.Data, 1)
				assert.Len(t, l.JSON200.Data[0].Tools, n)

				r, err := x.c.CreateThreadAndRunWithResponse(x.ctx, gen.CreateThreadAndRunRequest{AssistantId: a.Id})
				require.NoError(t, err)
				require.NotNil(t, r.JSON200, "body: %s", r.Body)
				assert.Len(t, r.JSON200.Tools, n)
				settle(time.Second)
			})
		})
	}
}
