package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
)

// TestSubmitRetryAfterDeadClaim: a keyed submitToolOutputs whose claimant
// applied the outputs and died before recording its answer (its claim is
// left pending in the store) is answered on another server as soon as the
// run shows the outputs applied: a plain repeat with the run, a streamed
// one with the events the first stream sent. Without the claim's record
// of the run and calls, the repeat would wait out the claim's lease.
func TestSubmitRetryAfterDeadClaim(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "stream"}[stream], func(t *testing.T) {
			st := memory.New()
			a, b := New(WithStore(st), WithStepDelay(0)), New(WithStore(st), WithStepDelay(0))
			ha, hb := httptest.NewServer(a.Handler()), httptest.NewServer(b.Handler())
			hc := &http.Client{Transport: &http.Transport{}}
			t.Cleanup(func() { hc.CloseIdleConnections(); ha.Close(); hb.Close(); a.Close(); b.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			post := func(base, path, body, key string) (*http.Response, string) {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1"+path, strings.NewReader(body))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				if key != "" {
					req.Header.Set("Idempotency-Key", key)
				}
				resp, err := hc.Do(req)
				require.NoError(t, err, "%s %s", path, body)
				defer resp.Body.Close()
				out, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s", out)
				return resp, string(out)
			}
			var asst, run gen.RunObject
			_, out := post(ha.URL, "/assistants", `{"model":"m","tools":[{"type":"function","function":{"name":"get_weather"}}]}`, "")
			require.NoError(t, json.Unmarshal([]byte(out), &asst))
			_, out = post(ha.URL, "/threads/runs", `{"assistant_id":"`+asst.Id+`","thread":{"messages":[{"role":"user","content":"please get_weather {\"city\":\"Paris\"}"}]}}`, "")
			require.NoError(t, json.Unmarshal([]byte(out), &run))
			// Wait for requires_action: either server's queue may run the
			// run's jobs, so watch its events on both.
			changedA, stopA := a.WatchRun(run.Id)
			defer stopA()
			changedB, stopB := b.WatchRun(run.Id)
			defer stopB()
			for {
				var err error
				run, err = a.eng.getRun(ctx, run.ThreadId, run.Id)
				require.NoError(t, err)
				if run.Status == gen.RunObjectStatusRequiresAction {
					break
				}
				require.False(t, terminalStatus(run.Status), "run ended %s", run.Status)
				select {
				case <-changedA:
				case <-changedB:
				case <-ctx.Done():
					t.Fatalf("the run did not reach requires_action: %s", run.Status)
				}
			}
			call := run.RequiredAction.SubmitToolOutputs.ToolCalls[0].Id
			path := "/threads/" + run.ThreadId + "/runs/" + run.Id + "/submit_tool_outputs"
			body := `{"tool_outputs":[{"tool_call_id":"` + call + `","output":"21"}],"stream":` + map[bool]string{false: "false", true: "true"}[stream] + `}`

			// The first request: its claim is left pending (its server
			// died), its work is done.
			intent, err := json.Marshal(runIntent{RunID: run.Id, ThreadID: run.ThreadId, Calls: []string{call}})
			require.NoError(t, err)
			now := time.Now()
			_, claimed, err := st.ClaimIdempotencyKey(ctx, store.IdempotencyRecord{Key: sharedKey(idemScope(ctx) + "k1"),
				Project: store.DefaultProject, State: store.IdemPending, Body: intent, ExpiresAt: now.Add(IdempotencyLease)}, now)
			require.NoError(t, err)
			require.True(t, claimed)
			_, first := post(ha.URL, path, body, "")

			// The client's retry, on the other server.
			resp, again := post(hb.URL, path, body, "k1")
			assert.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
			if stream {
				assert.Equal(t, first, again, "the same events")
				assert.Contains(t, again, "event: thread.run.queued")
				return
			}
			var got gen.RunObject
			require.NoError(t, json.Unmarshal([]byte(again), &got))
			assert.Equal(t, run.Id, got.Id)
			assert.NotEqual(t, gen.RunObjectStatusRequiresAction, got.Status)
		})
	}
}

func terminalStatus(s gen.RunObjectStatus) bool {
	switch s {
	case gen.RunObjectStatusCompleted, gen.RunObjectStatusFailed, gen.RunObjectStatusCancelled,
		gen.RunObjectStatusExpired, gen.RunObjectStatusIncomplete:
		return true
	}
	return false
}
