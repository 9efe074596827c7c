package helpers

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// listFake is an HTTP server that pages over n items named obj_0000,
// obj_0001, ... (created_at = index) for every list path, honouring limit,
// order, after and before like the Assistants API. It records every
// request. reply, when set, may replace the answer to request number i
// (1-based): it returns false to let the fake answer normally.
type listFake struct {
	n     int
	reply func(i int, w http.ResponseWriter, r *http.Request) bool

	mu   sync.Mutex
	reqs []*http.Request
	srv  *httptest.Server
}

func newListFake(t *testing.T, n int) *listFake {
	t.Helper()
	f := &listFake{n: n}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *listFake) client(t *testing.T) *assistants.Client {
	t.Helper()
	c, err := assistants.New(assistants.WithBaseURL(f.srv.URL+"/v1"), assistants.WithAPIKey("sk-test"),
		assistants.WithMaxRetries(0), assistants.WithHTTPClient(f.srv.Client()))
	require.NoError(t, err)
	return c
}

func (f *listFake) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

func (f *listFake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func listItemID(i int) string { return fmt.Sprintf("obj_%04d", i) }

func (f *listFake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	i := len(f.reqs)
	f.mu.Unlock()
	if r.Method != http.MethodGet {
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	if f.reply != nil && f.reply(i, w, r) {
		return
	}
	q := r.URL.Query()
	limit := 20
	if s := q.Get("limit"); s != "" {
		limit, _ = strconv.Atoi(s)
	}
	desc := q.Get("order") != "asc"
	index := func(id string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(id, "obj_"))
		if err != nil {
			return -1
		}
		return n
	}
	// Items in listing order, then cut to after < item < before.
	var order []int
	for k := range f.n {
		if desc {
			order = append(order, f.n-1-k)
		} else {
			order = append(order, k)
		}
	}
	from, to := 0, len(order)
	for pos, k := range order {
		if a := q.Get("after"); a != "" && k == index(a) {
			from = pos + 1
		}
		if b := q.Get("before"); b != "" && k == index(b) {
			to = pos
		}
	}
	var data []int
	if from < to {
		data = order[from:to]
	}
	hasMore := len(data) > limit
	if hasMore {
		data = data[:limit]
	}
	listWritePage(w, data, hasMore, true)
}

// listWritePage answers with a list of the items numbered in ids.
func listWritePage(w http.ResponseWriter, ids []int, hasMore, withLastID bool) {
	items := make([]map[string]any, 0, len(ids))
	for _, k := range ids {
		items = append(items, map[string]any{"id": listItemID(k), "created_at": k})
	}
	resp := map[string]any{"object": "list", "data": items, "has_more": hasMore, "first_id": "", "last_id": ""}
	if len(ids) > 0 {
		resp["first_id"] = listItemID(ids[0])
		if withLastID {
			resp["last_id"] = listItemID(ids[len(ids)-1])
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// listCollectIDs ranges over seq and returns the IDs it yields and the errors.
func listCollectIDs[T any](seq iter.Seq2[T, error], id func(T) string) (ids []string, errs []error) {
	for v, err := range seq {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids = append(ids, id(v))
	}
	return ids, errs
}

// listCase is one list endpoint: how to range over it with the common
// options, its path, and the extra filter query it must keep sending.
type listCase struct {
	name   string
	path   string
	filter url.Values
	list   func(ctx context.Context, c *assistants.Client, limit int, order string, before *string) iter.Seq2[string, error]
}

func listMapSeq[T any](seq iter.Seq2[T, error], id func(T) string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for v, err := range seq {
			var s string
			if err == nil {
				s = id(v)
			}
			if !yield(s, err) {
				return
			}
		}
	}
}

func listPtr[T any](v T) *T { return &v }

var listCases = []listCase{
	{name: "assistants", path: "/v1/assistants",
		list: func(ctx context.Context, c *assistants.Client, limit int, order string, before *string) iter.Seq2[string, error] {
			p := &gen.ListAssistantsParams{Limit: &limit, Order: listPtr(gen.ListAssistantsParamsOrder(order)), Before: before}
			return listMapSeq(Assistants(ctx, c, p), func(v gen.AssistantObject) string { return v.Id })
		}},
	{name: "messages", path: "/v1/threads/thread_1/messages", filter: url.Values{"run_id": {"run_9"}},
		list: func(ctx context.Context, c *assistants.Client, limit int, order string, before *string) iter.Seq2[string, error] {
			p := &gen.ListMessagesParams{Limit: &limit, Order: listPtr(gen.ListMessagesParamsOrder(order)), Before: before, RunId: listPtr("run_9")}
			return listMapSeq(Messages(ctx, c, "thread_1", p), func(v gen.MessageObject) string { return v.Id })
		}},
	{name: "runs", path: "/v1/threads/thread_1/runs",
		list: func(ctx context.Context, c *assistants.Client, limit int, order string, before *string) iter.Seq2[string, error] {
			p := &gen.ListRunsParams{Limit: &limit, Order: listPtr(gen.ListRunsParamsOrder(order)), Before: before}
			return listMapSeq(Runs(ctx, c, "thread_1", p), func(v gen.RunObject) string { return v.Id })
		}},
	{name: "run steps", path: "/v1/threads/thread_1/runs/run_1/steps",
		filter: url.Values{"include[]": {string(gen.ListRunStepsParamsIncludeStepDetailsToolCallsFileSearchResultsContent)}},
		list: func(ctx context.Context, c *assistants.Client, limit int, order string, before *string) iter.Seq2[string, error] {
			p := &gen.ListRunStepsParams{Limit: &limit, Order: listPtr(gen.ListRunStepsParamsOrder(order)), Before: before,
				Include: &[]gen.ListRunStepsParamsInclude{gen.ListRunStepsParamsIncludeStepDetailsToolCallsFileSearchResultsContent}}
			return listMapSeq(RunSteps(ctx, c, "thread_1", "run_1", p), func(v gen.RunStepObject) string { return v.Id })
		}},
	{name: "files", path: "/v1/files", filter: url.Values{"purpose": {"assistants"}},
		// listFiles has no before cursor: TestListEndpoints passes nil.
		list: func(ctx context.Context, c *assistants.Client, limit int, order string, _ *string) iter.Seq2[string, error] {
			p := &gen.ListFilesParams{Limit: &limit, Order: listPtr(gen.ListFilesParamsOrder(order)), Purpose: listPtr("assistants")}
			return listMapSeq(Files(ctx, c, p), func(v gen.OpenAIFile) string { return v.Id })
		}},
	{name: "vector stores", path: "/v1/vector_stores",
		list: func(ctx context.Context, c *assistants.Client, limit int, order string, before *string) iter.Seq2[string, error] {
			p := &gen.ListVectorStoresParams{Limit: &limit, Order: listPtr(gen.ListVectorStoresParamsOrder(order)), Before: before}
			return listMapSeq(VectorStores(ctx, c, p), func(v gen.VectorStoreObject) string { return v.Id })
		}},
	{name: "vector store files", path: "/v1/vector_stores/vs_1/files", filter: url.Values{"filter": {"completed"}},
		list: func(ctx context.Context, c *assistants.Client, limit int, order string, before *string) iter.Seq2[string, error] {
			p := &gen.ListVectorStoreFilesParams{Limit: &limit, Order: listPtr(gen.ListVectorStoreFilesParamsOrder(order)), Before: before,
				Filter: listPtr(gen.ListVectorStoreFilesParamsFilterCompleted)}
			return listMapSeq(VectorStoreFiles(ctx, c, "vs_1", p), func(v gen.VectorStoreFileObject) string { return v.Id })
		}},
	{name: "vector store batch files", path: "/v1/vector_stores/vs_1/file_batches/vsfb_1/files", filter: url.Values{"filter": {"failed"}},
		list: func(ctx context.Context, c *assistants.Client, limit int, order string, before *string) iter.Seq2[string, error] {
			p := &gen.ListFilesInVectorStoreBatchParams{Limit: &limit, Order: listPtr(gen.ListFilesInVectorStoreBatchParamsOrder(order)), Before: before,
				Filter: listPtr(gen.ListFilesInVectorStoreBatchParamsFilterFailed)}
			return listMapSeq(VectorStoreBatchFiles(ctx, c, "vs_1", "vsfb_1", p), func(v gen.VectorStoreFileObject) string { return v.Id })
		}},
}

// TestListEndpoints pages every list endpoint over 23 items, 4 a page
// (6 pages), in both orders and with a before cursor, and checks the items,
// the number of requests and the query of each request.
func TestListEndpoints(t *testing.T) {
	const n, limit = 23, 4
	want := func(order string, before int) []string {
		var ids []string
		for k := range n {
			i := k
			if order == "desc" {
				i = n - 1 - k
			}
			if i == before {
				break
			}
			ids = append(ids, listItemID(i))
		}
		return ids
	}
	type variant struct {
		name   string
		order  string
		before int // -1: none
	}
	variants := []variant{
		{"asc", "asc", -1},
		{"desc", "desc", -1},
		{"asc before", "asc", 21},  // 21 items in 6 pages
		{"desc before", "desc", 1}, // 21 items in 6 pages
	}
	for _, lc := range listCases {
		for _, v := range variants {
			if v.before >= 0 && lc.name == "files" {
				continue // listFiles has no before cursor in the API
			}
			t.Run(lc.name+"/"+v.name, func(t *testing.T) {
				f := newListFake(t, n)
				var before *string
				if v.before >= 0 {
					before = listPtr(listItemID(v.before))
				}
				ids, errs := listCollectIDs(lc.list(t.Context(), f.client(t), limit, v.order, before), func(s string) string { return s })
				require.Empty(t, errs)
				exp := want(v.order, v.before)
				assert.Equal(t, exp, ids)
				pages := (len(exp) + limit - 1) / limit
				require.GreaterOrEqual(t, pages, 5)
				reqs := f.requests()
				require.Len(t, reqs, pages, "one request a page")
				for i, r := range reqs {
					q := r.URL.Query()
					assert.Equal(t, lc.path, r.URL.Path)
					assert.Equal(t, strconv.Itoa(limit), q.Get("limit"), "limit kept")
					assert.Equal(t, v.order, q.Get("order"), "order kept")
					if before != nil {
						assert.Equal(t, *before, q.Get("before"), "before kept")
					} else {
						assert.False(t, q.Has("before"))
					}
					for k, vals := range lc.filter {
						assert.Equal(t, vals, q[k], "filter %s kept", k)
					}
					if i == 0 {
						assert.False(t, q.Has("after"), "first page has no cursor")
					} else {
						assert.Equal(t, exp[i*limit-1], q.Get("after"), "after = last_id of the previous page")
					}
				}
			})
		}
	}
}

// TestListStartsAtCallersAfter checks that the caller's own after cursor is
// where paging starts.
func TestListStartsAtCallersAfter(t *testing.T) {
	f := newListFake(t, 10)
	p := &gen.ListMessagesParams{Limit: listPtr(3), Order: listPtr(gen.ListMessagesParamsOrderAsc), After: listPtr(listItemID(4))}
	ids, errs := listCollectIDs(Messages(t.Context(), f.client(t), "thread_1", p), idOfMessageValue)
	require.Empty(t, errs)
	assert.Equal(t, []string{"obj_0005", "obj_0006", "obj_0007", "obj_0008", "obj_0009"}, ids)
	reqs := f.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "obj_0004", reqs[0].URL.Query().Get("after"))
	assert.Equal(t, "obj_0007", reqs[1].URL.Query().Get("after"))
}

func idOfMessageValue(m gen.MessageObject) string { return m.Id }

// TestListParamsNotMutated checks that the caller's params (and what they
// point to) are left as they were, and that changing them after the
// iterator was made does not change what it sends.
func TestListParamsNotMutated(t *testing.T) {
	f := newListFake(t, 9)
	limit, order, runID := 2, gen.ListMessagesParamsOrderAsc, "run_1"
	p := &gen.ListMessagesParams{Limit: &limit, Order: &order, RunId: &runID}
	seq := Messages(t.Context(), f.client(t), "thread_1", p)

	// Changed after the iterator was made: the iterator keeps the copy.
	limit, order, runID = 50, gen.ListMessagesParamsOrderDesc, "run_other"
	ids, errs := listCollectIDs(seq, idOfMessageValue)
	require.Empty(t, errs)
	assert.Len(t, ids, 9)
	assert.Equal(t, "obj_0000", ids[0], "asc order from the copy")
	for _, r := range f.requests() {
		assert.Equal(t, "2", r.URL.Query().Get("limit"))
		assert.Equal(t, "run_1", r.URL.Query().Get("run_id"))
	}
	assert.Len(t, f.requests(), 5)

	// The caller's struct and the values it points to are untouched.
	assert.Nil(t, p.After, "After never set on the caller's params")
	assert.Nil(t, p.Before)
	assert.Same(t, &limit, p.Limit)
	assert.Equal(t, 50, limit)
	assert.Equal(t, gen.ListMessagesParamsOrderDesc, order)
	assert.Equal(t, "run_other", runID)

	// RunSteps copies its Include slice too.
	inc := []gen.ListRunStepsParamsInclude{gen.ListRunStepsParamsIncludeStepDetailsToolCallsFileSearchResultsContent}
	sp := &gen.ListRunStepsParams{Include: &inc, After: listPtr(listItemID(3)), Order: listPtr(gen.ListRunStepsParamsOrderAsc)}
	steps := RunSteps(t.Context(), f.client(t), "thread_1", "run_1", sp)
	inc[0] = "changed"
	ids, errs = listCollectIDs(steps, func(s gen.RunStepObject) string { return s.Id })
	require.Empty(t, errs)
	assert.Len(t, ids, 5)
	last := f.requests()[len(f.requests())-1]
	assert.Equal(t, []string{string(gen.ListRunStepsParamsIncludeStepDetailsToolCallsFileSearchResultsContent)}, last.URL.Query()["include[]"])
	assert.Equal(t, listItemID(3), *sp.After, "caller's After unchanged")
}

// TestListBreakStopsRequests checks that leaving the loop early stops all
// further requests.
func TestListBreakStopsRequests(t *testing.T) {
	for _, stopAfter := range []int{1, 2, 3, 5, 6} {
		t.Run(strconv.Itoa(stopAfter), func(t *testing.T) {
			f := newListFake(t, 100)
			n := 0
			for _, err := range Messages(t.Context(), f.client(t), "thread_1", &gen.ListMessagesParams{Limit: listPtr(2)}) {
				require.NoError(t, err)
				n++
				if n == stopAfter {
					break
				}
			}
			assert.Equal(t, stopAfter, n)
			assert.Equal(t, (stopAfter+1)/2, f.count(), "only the pages that were consumed are requested")
		})
	}
}

// TestListErrorYieldedOnce checks that a failing page ends the iteration
// with exactly one error, an *assistants.APIError for a non-2xx reply.
func TestListErrorYieldedOnce(t *testing.T) {
	f := newListFake(t, 20)
	f.reply = func(i int, w http.ResponseWriter, r *http.Request) bool {
		if i != 3 {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"message":"boom","type":"server_error"}}`))
		return true
	}
	var ids []string
	var errs []error
	yields := 0
	for m, err := range Messages(t.Context(), f.client(t), "thread_1", &gen.ListMessagesParams{Limit: listPtr(3)}) {
		yields++
		if err != nil {
			errs = append(errs, err)
			continue // the iterator must stop by itself
		}
		ids = append(ids, m.Id)
	}
	assert.Len(t, ids, 6, "two good pages")
	require.Len(t, errs, 1)
	assert.Equal(t, 7, yields)
	var apiErr *assistants.APIError
	require.ErrorAs(t, errs[0], &apiErr)
	assert.Equal(t, http.StatusInternalServerError, apiErr.StatusCode)
	assert.Contains(t, errs[0].Error(), "list messages")
	assert.Equal(t, 3, f.count())
}

// TestListRepeatedCursor runs servers whose cursors form cycles of several
// lengths: each ends in one ErrRepeatedCursor error, never in a loop.
func TestListRepeatedCursor(t *testing.T) {
	cases := []struct {
		name      string
		cycle     int // the server's pages repeat after this many
		maxReqs   int // requests allowed before the error
		noRepeats bool
	}{
		{"server ignores after", 1, 2, true},
		{"two-page cycle", 2, 3, true},
		{"three-page cycle", 3, 12, false},
		{"seven-page cycle", 7, 30, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newListFake(t, 0)
			f.reply = func(i int, w http.ResponseWriter, r *http.Request) bool {
				if i > 200 {
					http.Error(w, "endless", http.StatusTeapot)
					return true
				}
				// Page k (0-based, by request) holds items 2k, 2k+1 of a
				// cycle of tc.cycle pages: the cursor after the last page
				// of the cycle leads back to the first.
				k := 0
				if a := r.URL.Query().Get("after"); a != "" {
					n, _ := strconv.Atoi(strings.TrimPrefix(a, "obj_"))
					k = (n/2 + 1) % tc.cycle
				}
				listWritePage(w, []int{2 * k, 2*k + 1}, true, true)
				return true
			}
			ids, errs := listCollectIDs(Messages(t.Context(), f.client(t), "thread_1", nil), idOfMessageValue)
			require.Len(t, errs, 1)
			assert.ErrorIs(t, errs[0], ErrRepeatedCursor)
			assert.LessOrEqual(t, f.count(), tc.maxReqs)
			seen := map[string]int{}
			for _, id := range ids {
				seen[id]++
			}
			assert.Len(t, seen, 2*tc.cycle, "every distinct item was yielded")
			if tc.noRepeats {
				assert.Len(t, ids, 2*tc.cycle, "short cycles are caught before a repeated page is yielded")
			}
		})
	}
}

// TestListPageShapes covers the end conditions and the last_id fallback.
func TestListPageShapes(t *testing.T) {
	t.Run("empty page with has_more ends", func(t *testing.T) {
		f := newListFake(t, 0)
		f.reply = func(i int, w http.ResponseWriter, r *http.Request) bool {
			if i == 1 {
				listWritePage(w, []int{0, 1}, true, true)
			} else {
				listWritePage(w, nil, true, true)
			}
			return true
		}
		ids, errs := listCollectIDs(Messages(t.Context(), f.client(t), "thread_1", nil), idOfMessageValue)
		assert.Empty(t, errs)
		assert.Equal(t, []string{"obj_0000", "obj_0001"}, ids)
		assert.Equal(t, 2, f.count())
	})
	t.Run("missing last_id falls back to the last item", func(t *testing.T) {
		f := newListFake(t, 0)
		f.reply = func(i int, w http.ResponseWriter, r *http.Request) bool {
			if i == 1 {
				listWritePage(w, []int{0, 1}, true, false)
			} else {
				assert.Equal(t, "obj_0001", r.URL.Query().Get("after"))
				listWritePage(w, []int{2}, false, false)
			}
			return true
		}
		ids, errs := listCollectIDs(Messages(t.Context(), f.client(t), "thread_1", nil), idOfMessageValue)
		assert.Empty(t, errs)
		assert.Equal(t, []string{"obj_0000", "obj_0001", "obj_0002"}, ids)
	})
	t.Run("has_more without any cursor is an error", func(t *testing.T) {
		f := newListFake(t, 0)
		f.reply = func(i int, w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"object":"list","data":[{"id":""}],"has_more":true,"first_id":"","last_id":""}`))
			return true
		}
		ids, errs := listCollectIDs(Messages(t.Context(), f.client(t), "thread_1", nil), idOfMessageValue)
		assert.Empty(t, ids)
		require.Len(t, errs, 1)
		assert.Contains(t, errs[0].Error(), "no last_id")
		assert.Equal(t, 1, f.count())
	})
	t.Run("ranging twice starts over", func(t *testing.T) {
		f := newListFake(t, 5)
		seq := Messages(t.Context(), f.client(t), "thread_1", &gen.ListMessagesParams{Limit: listPtr(2)})
		a, errs := listCollectIDs(seq, idOfMessageValue)
		require.Empty(t, errs)
		b, errs := listCollectIDs(seq, idOfMessageValue)
		require.Empty(t, errs)
		assert.Equal(t, a, b)
		assert.Len(t, a, 5)
		assert.Equal(t, 6, f.count())
	})
}

// TestListBadArguments checks that bad arguments give one clear error and
// no request.
func TestListBadArguments(t *testing.T) {
	f := newListFake(t, 3)
	c := f.client(t)
	ctx := t.Context()
	cases := map[string]iter.Seq2[string, error]{
		"nil client":           listMapSeq(Messages(ctx, nil, "thread_1", nil), idOfMessageValue),
		"empty thread":         listMapSeq(Messages(ctx, c, "", nil), idOfMessageValue),
		"runs empty thread":    listMapSeq(Runs(ctx, c, "", nil), func(v gen.RunObject) string { return v.Id }),
		"steps empty run":      listMapSeq(RunSteps(ctx, c, "thread_1", "", nil), func(v gen.RunStepObject) string { return v.Id }),
		"vs files empty store": listMapSeq(VectorStoreFiles(ctx, c, "", nil), func(v gen.VectorStoreFileObject) string { return v.Id }),
		"batch empty batch":    listMapSeq(VectorStoreBatchFiles(ctx, c, "vs_1", "", nil), func(v gen.VectorStoreFileObject) string { return v.Id }),
		"assistants nil":       listMapSeq(Assistants(ctx, nil, nil), func(v gen.AssistantObject) string { return v.Id }),
		"files nil":            listMapSeq(Files(ctx, nil, nil), func(v gen.OpenAIFile) string { return v.Id }),
		"vector stores nil":    listMapSeq(VectorStores(ctx, nil, nil), func(v gen.VectorStoreObject) string { return v.Id }),
	}
	for name, seq := range cases {
		t.Run(name, func(t *testing.T) {
			ids, errs := listCollectIDs(seq, func(s string) string { return s })
			assert.Empty(t, ids)
			require.Len(t, errs, 1)
			assert.Contains(t, errs[0].Error(), "helpers: list")
		})
	}
	assert.Equal(t, 0, f.count())
}

// TestListContextCancelled checks that cancelling the context mid-way ends
// the iteration with one context error and no further request.
func TestListContextCancelled(t *testing.T) {
	f := newListFake(t, 50)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errs []error
	n := 0
	for _, err := range Messages(ctx, f.client(t), "thread_1", &gen.ListMessagesParams{Limit: listPtr(5)}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n++; n == 7 {
			cancel()
		}
	}
	assert.Equal(t, 10, n, "the page in hand is finished")
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], context.Canceled)
	assert.Equal(t, 2, f.count())
}
