package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// BenchmarkStores measures the server on each store side by side, through
// its HTTP API on loopback with the load generator in the same process:
//
//   - GetRun: GET a completed run (req/s);
//   - CreateMessage: POST a short message, on one thread per goroutine;
//   - ListMessages100: GET a page of 100 messages of a thread of 1000;
//   - Conversation: createThreadAndRun with one message, polled (every
//     millisecond) until completed, step delay 0 (conv/s; polls/op is the
//     GETs a conversation took, which grow when runs take longer).
//
// Every benchmark runs in parallel, as clients of a server do: clients
// times GOMAXPROCS goroutines (convClients times for Conversation, whose
// requests mostly wait for the run), and reports its rate besides ns/op.
// Run them together:
//
//	go test -run '^$' -bench BenchmarkStores -benchtime 3s ./internal/e2e/
func BenchmarkStores(b *testing.B) {
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			st := s.open(b)
			srv := server.New(server.WithStepDelay(0), server.WithStore(st))
			hs := httptest.NewServer(srv.Handler())
			b.Cleanup(func() {
				hs.Close()
				srv.Close()
				st.Close()
			})
			bc := &benchClient{base: hs.URL + "/v1", hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
			asst := bc.post(b, "/assistants", `{"model":"gpt-4o"}`)
			var polls atomic.Int64
			conv := func() (threadID, runID string) {
				out := bc.do(b, http.MethodPost, "/threads/runs", `{"assistant_id":"`+asst+`","thread":{"messages":[{"role":"user","content":"hello"}]}}`)
				var run gen.RunObject
				require.NoError(b, json.Unmarshal(out, &run))
				for {
					polls.Add(1)
					g := bc.get(b, "/threads/"+run.ThreadId+"/runs/"+run.Id)
					var cur gen.RunObject
					require.NoError(b, json.Unmarshal(g, &cur))
					if cur.Status == "completed" {
						return run.ThreadId, run.Id
					}
					if terminal(cur.Status) {
						b.Fatalf("run ended %s", cur.Status)
					}
					time.Sleep(time.Millisecond)
				}
			}

			b.Run("GetRun", func(b *testing.B) {
				th, run := conv()
				path := "/threads/" + th + "/runs/" + run
				b.ResetTimer()
				cpu := processCPU()
				b.SetParallelism(clients)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						bc.get(b, path)
					}
				})
				rate(b, "req/s", cpu)
			})
			b.Run("CreateMessage", func(b *testing.B) {
				cpu := processCPU()
				b.SetParallelism(clients)
				b.RunParallel(func(pb *testing.PB) {
					th := bc.post(b, "/threads", `{}`)
					body := `{"role":"user","content":"` + strings.Repeat("x", 200) + `"}`
					for pb.Next() {
						bc.post(b, "/threads/"+th+"/messages", body)
					}
				})
				rate(b, "req/s", cpu)
			})
			b.Run("ListMessages100", func(b *testing.B) {
				th := bc.post(b, "/threads", `{}`)
				for i := range 1000 {
					bc.post(b, "/threads/"+th+"/messages", fmt.Sprintf(`{"role":"user","content":"message %d"}`, i))
				}
				path := "/threads/" + th + "/messages?limit=100"
				b.ResetTimer()
				cpu := processCPU()
				b.SetParallelism(clients)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if n := bytes.Count(bc.get(b, path), []byte(`"object":"thread.message"`)); n != 100 {
							b.Errorf("a page of %d messages, want 100", n)
							return
						}
					}
				})
				rate(b, "req/s", cpu)
			})
			b.Run("Conversation", func(b *testing.B) {
				w0, c0 := writeStats(st)
				cpu := processCPU()
				polls.Store(0)
				b.SetParallelism(convClients)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						conv()
					}
				})
				rate(b, "conv/s", cpu)
				b.ReportMetric(float64(polls.Load())/float64(b.N), "polls/op")
				if w1, c1 := writeStats(st); c1 > c0 {
					b.ReportMetric(float64(w1-w0)/float64(c1-c0), "writes/commit")
				}
			})
		})
	}
}

// writeStats returns the writes and commits of a store that groups its
// writes (the SQLite store), or zeros.
func writeStats(st any) (writes, commits int64) {
	if g, ok := st.(interface{ WriteStats() (int64, int64) }); ok {
		return g.WriteStats()
	}
	return 0, 0
}

// The load: goroutines per GOMAXPROCS (b.SetParallelism).
const (
	clients     = 4
	convClients = 16
)

// rate reports b.N per second of the benchmark's time as unit, and the
// CPU time of the process (server and load generator) per op since cpu
// (processCPU at the start): on a machine shared with other work the rate
// varies with the load, the CPU per op much less.
func rate(b *testing.B, unit string, cpu time.Duration) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, unit)
	}
	if used := processCPU() - cpu; cpu > 0 && used > 0 && b.N > 0 {
		b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

// benchClient sends raw requests: the server's cost, not a client's.
type benchClient struct {
	base string
	hc   *http.Client
}

// do sends a request and returns the reply's body; anything but 200 fails
// the test (from a goroutine other than the test's, use try).
func (c *benchClient) do(b testing.TB, method, path, body string) []byte {
	out, err := c.try(method, path, body)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// try sends a request and returns the reply's body, or an error for
// anything but 200.
func (c *benchClient) try(method, path, body string) ([]byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %d %v: %.300s", method, path, resp.StatusCode, err, out)
	}
	return out, nil
}

func (c *benchClient) get(b testing.TB, path string) []byte { return c.do(b, http.MethodGet, path, "") }

// post sends body and returns the id of the object created.
func (c *benchClient) post(b testing.TB, path, body string) string {
	out := c.do(b, http.MethodPost, path, body)
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.ID == "" {
		b.Fatalf("POST %s: no id in %.300s", path, out)
	}
	return v.ID
}
