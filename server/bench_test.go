package server_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/assistants-go/assistants/server"
)

// BenchmarkServer measures the embedded server on loopback, through a real
// httptest.Server and a plain http.Client, side by side with a bare net/http
// handler that writes the same bytes (status, headers, body): the gap is
// the cost of routing, middlewares (validation, logging...), the store and
// JSON encoding.
//
//	go test -run '^$' -bench BenchmarkServer -benchmem ./server/
//
// Each sub-benchmark reports requests per second (req/s) and the process's
// CPU time per request (cpu-ns/op, client included; on unix), which is
// steadier than req/s when the machine is busy. impl=server is the
// default server, impl=server-novalidation the same with
// Options.DisableValidation, impl=bare the bare handler.
func BenchmarkServer(b *testing.B) {
	srv := server.New(server.WithStepDelay(0))
	b.Cleanup(func() { _ = srv.Close() })
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	// The same server without the OpenAPI request validation, to show its cost.
	noval := server.New(server.WithStepDelay(0), func(o *server.Options) { o.DisableValidation = true })
	b.Cleanup(func() { _ = noval.Close() })
	nv := httptest.NewServer(noval.Handler())
	b.Cleanup(nv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)

	call := func(b *testing.B, base, method, path, body string) *http.Response {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+path, rd)
		if err != nil {
			b.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		return resp
	}
	// capture answers one request and keeps what the bare handler replays.
	type answer struct {
		status int
		header http.Header
		body   []byte
	}
	capture := func(b *testing.B, base, method, path, body string) answer {
		resp := call(b, base, method, path, body)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
		h := resp.Header.Clone()
		h.Del("Date")
		h.Del("Content-Length")
		return answer{status: resp.StatusCode, header: h, body: data}
	}
	idOf := func(body []byte) string {
		const key = `"id":"`
		i := bytes.Index(body, []byte(key))
		if i < 0 {
			b.Fatalf("no id in %s", body)
		}
		rest := body[i+len(key):]
		return string(rest[:bytes.IndexByte(rest, '"')])
	}

	// setup creates an assistant, a thread and a completed run on a server;
	// it returns the run's path and the thread's messages path.
	setup := func(base string) (runPath, msgPath string) {
		asst := idOf(capture(b, base, "POST", "/v1/assistants", `{"model":"gpt-4o","instructions":"Be brief."}`).body)
		thread := idOf(capture(b, base, "POST", "/v1/threads", `{"messages":[{"role":"user","content":"hello there"}]}`).body)
		run := idOf(capture(b, base, "POST", "/v1/threads/"+thread+"/runs", `{"assistant_id":"`+asst+`"}`).body)
		runPath = "/v1/threads/" + thread + "/runs/" + run
		for range 1000 { // wait for the run to end (step delay 0: a few requests)
			if bytes.Contains(capture(b, base, "GET", runPath, "").body, []byte(`"status":"completed"`)) {
				break
			}
		}
		return runPath, "/v1/threads/" + thread + "/messages"
	}
	runPath, msgPath := setup(hs.URL)
	nvRunPath, nvMsgPath := setup(nv.URL)
	msgBody := `{"role":"user","content":"How is the weather in Paris today?","metadata":{"k":"v"}}`

	cases := []struct {
		name, method, path, nvPath, body string
	}{
		{"GetRun", "GET", runPath, nvRunPath, ""},
		{"CreateMessage", "POST", msgPath, nvMsgPath, msgBody},
	}
	for _, tc := range cases {
		ans := capture(b, hs.URL, tc.method, tc.path, tc.body)
		bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			for k, v := range ans.header {
				w.Header()[k] = v
			}
			w.WriteHeader(ans.status)
			_, _ = w.Write(ans.body)
		}))
		b.Cleanup(bare.Close)
		impls := []struct{ name, base, path string }{
			{"server", hs.URL, tc.path},
			{"server-novalidation", nv.URL, tc.nvPath},
			{"bare", bare.URL, tc.path},
		}
		for _, impl := range impls {
			b.Run(tc.name+"/impl="+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					resp := call(b, impl.base, tc.method, impl.path, tc.body)
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
				if cpu := processCPU() - cpu0; cpu > 0 {
					// CPU time of the whole process (client and server) per
					// request: steadier than req/s on a busy machine.
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}
