package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// The faults that strike after the work: each test checks that the client
// sees the failure, that the work was done, and that retrying with the same
// Idempotency-Key ends with exactly one object.

func faultServer(t *testing.T, route string, rates server.FaultRates) (*assistantstest.Server, *rt) {
	t.Helper()
	srv := assistantstest.NewServer(t, server.WithStepDelay(0), assistantstest.WithoutResponseValidation(),
		server.WithFaults(&server.Faults{Seed: 3, Routes: map[string]server.FaultRates{route: rates}}))
	return srv, newRT(t, srv)
}

func (x *rt) assistantCount() int {
	x.t.Helper()
	r, err := x.c.ListAssistantsWithResponse(x.ctx, nil)
	require.NoError(x.t, err)
	require.NotNil(x.t, r.JSON200)
	return len(r.JSON200.Data)
}

// TestFaultsAfterWorkJSON: DropAfter, CutBody and Reset on createAssistant.
// Every faulted attempt fails on the client side after the assistant was
// made; the first attempt that gets through is a replay of it.
func TestFaultsAfterWorkJSON(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rates server.FaultRates
		check func(t *testing.T, resp *http.Response, err error)
	}{
		{"drop after", server.FaultRates{DropAfter: 0.7}, func(t *testing.T, resp *http.Response, err error) {
			require.Error(t, err, "the reply is lost: no status line")
		}},
		{"reset", server.FaultRates{Reset: 0.7}, func(t *testing.T, resp *http.Response, err error) {
			require.Error(t, err, "the connection is reset: no status line")
		}},
		{"cut body", server.FaultRates{CutBody: 0.7}, func(t *testing.T, resp *http.Response, err error) {
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, "the headers arrive")
			b, rerr := io.ReadAll(resp.Body)
			require.ErrorIs(t, rerr, io.ErrUnexpectedEOF, "then the body stops: %q", b)
			assert.True(t, strings.HasPrefix(string(b), `{`), "half a JSON object: %q", b)
			assert.False(t, json.Valid(b))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, x := faultServer(t, "createAssistant", tc.rates)
			failed := 0
			for attempt := 0; ; attempt++ {
				require.Less(t, attempt, 30, "the seeded faults let a request through")
				req, err := http.NewRequestWithContext(x.ctx, http.MethodPost, srv.URL+"/assistants", strings.NewReader(`{"model":"gpt-4o"}`))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", "k-"+tc.name)
				resp, err := srv.HTTP.Client().Do(req)
				if err == nil && resp.StatusCode == http.StatusOK && attempt == failed {
					b, rerr := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if rerr == nil {
						var a gen.AssistantObject
						require.NoError(t, json.Unmarshal(b, &a))
						if failed > 0 && tc.name != "reset" {
							// (After a reset the retry may reach the server
							// before the first attempt's handler does: then
							// the retry does the work and the first replays.)
							assert.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
						}
						break
					}
					failed++
					continue
				}
				tc.check(t, resp, err)
				failed++
			}
			require.Positive(t, failed, "the seed makes the first attempt fail")
			assert.Equal(t, 1, x.assistantCount(), "the work was done once")
		})
	}
}

// TestFaultsAfterWorkStreams: DropAfter, Reset and CutBody on a streamed
// createRun, cut after 0 to 3 events. A client that retries with the same
// key and the Last-Event-ID it has seen gets every event of the run exactly
// once, in order, and there is one run.
func TestFaultsAfterWorkStreams(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rates server.FaultRates
	}{
		{"drop after", server.FaultRates{DropAfter: 0.6}},
		{"reset", server.FaultRates{Reset: 0.6}},
		{"cut body", server.FaultRates{CutBody: 0.8, CutAfter: 0, CutAfterMax: 3}},
		{"cut before the first event", server.FaultRates{CutBody: 0.6, CutAfter: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, x := faultServer(t, "createRun", tc.rates)
			a := x.assistant(gen.CreateAssistantRequest{})
			thread := x.thread("tell me a story")
			body := `{"assistant_id":"` + a.Id + `","stream":true}`
			var got []idEvent
			failed, cutBeforeFirst := 0, 0
			for attempt := 0; ; attempt++ {
				require.Less(t, attempt, 40, "the seeded faults let a stream through")
				last := ""
				if len(got) > 0 {
					last = got[len(got)-1].id
				}
				req, err := http.NewRequestWithContext(x.ctx, http.MethodPost, srv.URL+"/threads/"+thread+"/runs", strings.NewReader(body))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", "stream-"+tc.name)
				if last != "" {
					req.Header.Set("Last-Event-ID", last)
				}
				resp, err := srv.HTTP.Client().Do(req)
				if err != nil {
					failed++
					continue
				}
				require.Equal(t, http.StatusOK, resp.StatusCode)
				n := 0
				rerr := scanIDEvents(resp.Body, func(ev idEvent) bool { got = append(got, ev); n++; return true })
				_ = resp.Body.Close()
				if rerr == nil && len(got) > 0 && got[len(got)-1].name == "done" {
					break
				}
				require.ErrorIs(t, rerr, io.ErrUnexpectedEOF)
				failed++
				if n == 0 {
					cutBeforeFirst++
				}
			}
			require.Positive(t, failed, "the seed makes attempts fail")
			if tc.name == "cut before the first event" {
				assert.Positive(t, cutBeforeFirst)
			}
			require.Greater(t, len(got), 5)
			assert.Equal(t, "thread.run.created", got[0].name)
			for i, ev := range got[:len(got)-1] {
				require.Equal(t, strconv.Itoa(i+1), ev.id, "event %d (%s): every event once, in order", i, ev.name)
			}
			assert.Equal(t, "thread.run.completed", got[len(got)-2].name)
			assert.Equal(t, 1, x.runCount(thread))
			t.Logf("attempts failed: %d (cut before the first event: %d), events: %d", failed, cutBeforeFirst, len(got))
		})
	}
}
