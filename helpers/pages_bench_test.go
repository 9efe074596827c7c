package helpers

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// synthMessagesServer serves GET /v1/threads/{id}/messages over total
// messages that exist only as their index: every page is written on the fly
// from the after cursor and limit, so the server holds no list in memory.
func synthMessagesServer(total int) *httptest.Server {
	const text = "The quick brown fox jumps over the lazy dog. "
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := 20
		if s := q.Get("limit"); s != "" {
			limit, _ = strconv.Atoi(s)
		}
		from := 0
		if a := q.Get("after"); a != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(a, "msg_"))
			if err != nil {
				http.Error(w, "bad cursor", http.StatusBadRequest)
				return
			}
			from = n + 1
		}
		to := min(from+limit, total)
		w.Header().Set("Content-Type", "application/json")
		var b strings.Builder
		b.WriteString(`{"object":"list","data":[`)
		for i := from; i < to; i++ {
			if i > from {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"msg_%07d","object":"thread.message","created_at":%d,"thread_id":"thread_1",`+
				`"status":"completed","role":"assistant","assistant_id":"asst_1","run_id":"run_1","attachments":[],"metadata":{},`+
				`"content":[{"type":"text","text":{"value":"%s","annotations":[]}}]}`, i, 1700000000+i, strings.Repeat(text, 4))
		}
		fmt.Fprintf(&b, `],"first_id":"msg_%07d","last_id":"msg_%07d","has_more":%t}`, from, max(to-1, 0), to < total)
		_, _ = w.Write([]byte(b.String()))
	}))
}

// heapSampler keeps the peaks of two heap figures: the bytes of heap
// objects (live ones and garbage not yet collected, so bounded below by the
// GC's 4 MB minimum heap goal), and the live heap as marked by the last GC
// (what the program actually retains).
type heapSampler struct {
	s          []metrics.Sample
	peak, live uint64
}

func newHeapSampler() *heapSampler {
	return &heapSampler{s: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}}
}

func (h *heapSampler) sample() {
	metrics.Read(h.s)
	h.peak = max(h.peak, h.s[0].Value.Uint64())
	h.live = max(h.live, h.s[1].Value.Uint64())
}

// BenchmarkPageMessages pages through 10,000 and 100,000 messages, 100 a
// page, and reports, sampled every 100 items: peak-heap-B, the peak bytes of
// heap objects while paging (live and garbage, of client and fake server
// together; the GC lets it reach about 4 MB whatever the live size), and
// peak-live-B, the peak live heap after a GC. Both stay flat in the number
// of messages because only one page is held at a time.
func BenchmarkPageMessages(b *testing.B) {
	for _, total := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("messages=%d", total), func(b *testing.B) {
			srv := synthMessagesServer(total)
			defer srv.Close()
			c, err := assistants.New(assistants.WithBaseURL(srv.URL+"/v1"), assistants.WithAPIKey("sk-bench"),
				assistants.WithMaxRetries(0), assistants.WithHTTPClient(srv.Client()))
			if err != nil {
				b.Fatal(err)
			}
			params := &gen.ListMessagesParams{Limit: listPtr(100), Order: listPtr(gen.ListMessagesParamsOrderAsc)}
			h := newHeapSampler()
			runtime.GC()
			h.sample()
			base := h.peak
			h.peak, h.live = 0, 0
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for m, err := range Messages(b.Context(), c, "thread_1", params) {
					if err != nil {
						b.Fatal(err)
					}
					if n%100 == 0 {
						h.sample()
					}
					if m.Id == "" {
						b.Fatal("empty message")
					}
					n++
				}
				if n != total {
					b.Fatalf("paged %d messages, want %d", n, total)
				}
			}
			b.ReportMetric(float64(h.peak), "peak-heap-B")
			b.ReportMetric(float64(h.peak-min(base, h.peak)), "peak-growth-B")
			b.ReportMetric(float64(h.live), "peak-live-B")
		})
	}
}

// TestMessagesRetainFlatMemory pages 20,000 messages and checks, with a
// forced GC every 2,000, that the heap retained while paging grows by far
// less than the data paged (about 12 MB of JSON): one page at a time.
func TestMessagesRetainFlatMemory(t *testing.T) {
	const total = 20_000
	srv := synthMessagesServer(total)
	defer srv.Close()
	c, err := assistants.New(assistants.WithBaseURL(srv.URL+"/v1"), assistants.WithAPIKey("sk-test"),
		assistants.WithMaxRetries(0), assistants.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := int64(ms.HeapAlloc)
	var peak int64
	n := 0
	for _, err := range Messages(t.Context(), c, "thread_1", &gen.ListMessagesParams{Limit: listPtr(100)}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n%2000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, int64(ms.HeapAlloc)-base)
		}
	}
	if n != total {
		t.Fatalf("paged %d messages, want %d", n, total)
	}
	t.Logf("%d messages: retained heap grew by at most %d KiB", total, peak>>10)
	if peak > 1<<20 {
		t.Errorf("retained heap grew by %d KiB while paging, want under 1 MiB", peak>>10)
	}
}
