package bench

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveEnv makes the test binary run as the fixture server instead of the
// benchmarks (see TestMain). The server runs in a child process so that its
// allocations and GC do not count against the clients measured here.
const serveEnv = "ASSISTANTS_BENCH_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		serve()
		return
	}
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		// A configuration line for benchstat and the report.
		fmt.Printf("go: %s\n", runtime.Version())
	}
	code := m.Run()
	stopServer()
	os.Exit(code)
}

var (
	srvOnce sync.Once
	srvURL  string
	srvErr  error
	srvCmd  *exec.Cmd
	srvIn   io.WriteCloser
)

// server returns the base URL (http://127.0.0.1:port, without /v1) of the
// fixture server, starting it on first use.
func server(tb testing.TB) string {
	tb.Helper()
	srvOnce.Do(func() { srvURL, srvErr = startServer() })
	if srvErr != nil {
		tb.Fatalf("fixture server: %v", srvErr)
	}
	return srvURL
}

// startServer re-executes this test binary as the server. The child prints
// its URL on stdout and exits when its stdin is closed (by stopServer, or by
// the kernel when this process dies).
func startServer() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"=1", "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://") {
		_ = in.Close()
		_ = cmd.Wait()
		return "", fmt.Errorf("child did not report its URL (got %q): %v", line, err)
	}
	srvCmd, srvIn = cmd, in
	return strings.TrimSpace(line), nil
}

func stopServer() {
	if srvCmd == nil {
		return
	}
	_ = srvIn.Close()
	_ = srvCmd.Wait()
}

// serve runs the fixture server until stdin reaches EOF.
func serve() {
	srv := httptest.NewServer(newHandler())
	fmt.Println(srv.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Close()
}

// handler serves the fixtures. Routes (all under /v1):
//
//	GET  /threads/{t}/runs/{r}      the run fixture; run IDs starting with
//	                                "run_poll_" complete pollSteps hint
//	                                intervals after their first GET
//	GET  /threads/{t}/messages      thread "thread_items_<n>": n messages in
//	                                pages of ?limit after ?after; any other
//	                                thread: one fixed page of 100
//	POST /threads/{t}/messages      the created message
//	POST /threads/{t}/runs          the 10 MB event stream
type handler struct {
	run, page, created, stream []byte
	pages                      map[string][]byte // thread+"/"+after -> page of listPageSize

	mu    sync.Mutex
	polls map[string]*pollState
}

type pollState struct {
	first time.Time
	n     int
}

func newHandler() http.Handler {
	h := &handler{
		run:     runFixture(benchRun, "completed", map[string]string{"customer": "c_42", "session": "s_9"}),
		page:    pageFixture(benchThread, 0, listPageSize, 10*listPageSize),
		created: createdMessageFixture(),
		pages:   map[string][]byte{},
		polls:   map[string]*pollState{},
	}
	h.stream, _ = streamFixture(streamSize)
	for _, n := range []int{pageAllSmall, pageAllLarge} {
		thread := itemsThread(n)
		for from := 0; from < n; from += listPageSize {
			after := ""
			if from > 0 {
				after = messageID(from - 1)
			}
			h.pages[thread+"/"+after] = pageFixture(thread, from, min(from+listPageSize, n), n)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/threads/{thread}/runs/{run}", h.getRun)
	mux.HandleFunc("GET /v1/threads/{thread}/messages", h.listMessages)
	mux.HandleFunc("POST /v1/threads/{thread}/messages", h.createMessage)
	mux.HandleFunc("POST /v1/threads/{thread}/runs", h.createRun)
	return mux
}

func itemsThread(n int) string { return "thread_items_" + strconv.Itoa(n) }

var (
	jsonType  = []string{"application/json"}
	sseType   = []string{"text/event-stream; charset=utf-8"}
	requestID = []string{"req_bench0001"}
)

func writeJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["X-Request-Id"] = requestID
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	_, _ = w.Write(body)
}

func (h *handler) getRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run")
	if !strings.HasPrefix(id, "run_poll_") {
		writeJSON(w, h.run)
		return
	}
	// A polled run: in progress until pollSteps hint intervals after its
	// first GET, then completed. The completed run's metadata tells the
	// client how many GETs it made and how late it saw the completion.
	now := time.Now()
	h.mu.Lock()
	st := h.polls[id]
	if st == nil {
		st = &pollState{first: now}
		h.polls[id] = st
	}
	st.n++
	doneAt := st.first.Add(pollSteps * pollHintMS * time.Millisecond)
	n := st.n
	if !now.Before(doneAt) {
		delete(h.polls, id)
	}
	h.mu.Unlock()
	if now.Before(doneAt) {
		w.Header().Set("Openai-Poll-After-Ms", strconv.Itoa(pollHintMS))
		writeJSON(w, runFixture(id, "in_progress", map[string]string{}))
		return
	}
	writeJSON(w, runFixture(id, "completed", map[string]string{
		"polls":  strconv.Itoa(n),
		"lag_us": strconv.FormatInt(now.Sub(doneAt).Microseconds(), 10),
	}))
}

func (h *handler) listMessages(w http.ResponseWriter, r *http.Request) {
	thread := r.PathValue("thread")
	if !strings.HasPrefix(thread, "thread_items_") {
		writeJSON(w, h.page)
		return
	}
	q := r.URL.Query()
	if l := q.Get("limit"); l != strconv.Itoa(listPageSize) {
		http.Error(w, `{"error":{"message":"bench server: limit must be 100","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	page, ok := h.pages[thread+"/"+q.Get("after")]
	if !ok {
		http.Error(w, `{"error":{"message":"bench server: unknown cursor","type":"invalid_request_error"}}`, http.StatusNotFound)
		return
	}
	writeJSON(w, page)
}

func (h *handler) createMessage(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || !strings.Contains(string(body), createMessageText) {
		http.Error(w, `{"error":{"message":"bench server: unexpected body","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	writeJSON(w, h.created)
}

func (h *handler) createRun(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	hd := w.Header()
	hd["Content-Type"] = sseType
	hd["X-Request-Id"] = requestID
	_, _ = w.Write(h.stream) // sent chunked, as a real stream is

}
