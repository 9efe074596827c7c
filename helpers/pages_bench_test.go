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

// heapSampler reads the bytes of live and not yet swept heap objects, the
// figure the peak is taken of.
type heapSampler struct {
	s    []metrics.Sample
	peak uint64
}

func newHeapSampler() *heapSampler {
	return &heapSampler{s: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
}

func (h *heapSampler) sample() {
	metrics.Read(h.s)
	if v := h.s[0].Value.Uint64(); v > h.peak {
		h.peak = v
	}
}

// BenchmarkPageMessages pages through 10,000 and 100,000 messages, 100 a
// page, and reports the peak heap in use while paging (sampled every 100
// items) as peak-heap-B. It stays flat in the number of messages because
// only one page is held at a time.
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
			h.peak = 0
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
		})
	}
}
