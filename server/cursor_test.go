package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// rawCall sends one request straight to the server's handler.
func rawCall(t *testing.T, h http.Handler, method, path string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, "/v1"+path, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// rawList is what every list reply has.
type rawList struct {
	Data []struct {
		ID string `json:"id"`
	} `json:"data"`
	FirstID string `json:"first_id"`
	LastID  string `json:"last_id"`
	HasMore bool   `json:"has_more"`
}

func listIDs(t *testing.T, h http.Handler, path, query string) rawList {
	t.Helper()
	code, body := rawCall(t, h, http.MethodGet, path+"?"+query)
	require.Equal(t, http.StatusOK, code, "GET %s?%s: %s", path, query, body)
	var l rawList
	require.NoError(t, json.Unmarshal(body, &l), "body: %s", body)
	return l
}

func (l rawList) ids() []string {
	out := []string{}
	for _, d := range l.Data {
		out = append(out, d.ID)
	}
	return out
}

// justPast returns an id that does not exist and sits right after id in a
// list's order (asc or desc), before the next item. It stands for a deleted
// cursor where the API cannot delete items (runs, run steps): ids of
// different items differ within their time part, so a change at the very
// end of the random part never crosses another id.
func justPast(id, order string) string {
	if order == "desc" {
		return id[:len(id)-1]
	}
	return id + "0"
}

// listCase is one list endpoint: setup makes n items in creation order and
// returns the list's path, their ids, and how to delete one (nil when the
// API cannot).
type listCase struct {
	name     string
	opts     func() []server.Option // fresh options for each server
	noBefore bool                   // the endpoint has no before parameter (listFiles)
	setup    func(x *rt, h http.Handler, n int) (path string, ids []string, del func(id string))
}

func deleter(t *testing.T, h http.Handler, pathOf func(id string) string) func(string) {
	return func(id string) {
		t.Helper()
		code, body := rawCall(t, h, http.MethodDelete, pathOf(id))
		require.Equal(t, http.StatusOK, code, "DELETE %s: %s", pathOf(id), body)
	}
}

func uploadN(x *rt, n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, upload(x.t, x.ctx, x.c, fmt.Sprintf("f%d.txt", i), fmt.Sprintf("text of file %d", i)).Id)
	}
	return ids
}

func vectorStore(x *rt) string {
	x.t.Helper()
	r, err := x.c.CreateVectorStoreWithResponse(x.ctx, gen.CreateVectorStoreRequest{})
	require.NoError(x.t, err)
	require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
	return r.JSON200.Id
}

func listCases(n int) []listCase {
	toolTurns := []server.Turn{}
	for range n - 1 {
		toolTurns = append(toolTurns, server.Turn{ToolCalls: []server.ToolCall{{Name: "f"}}})
	}
	return []listCase{
		{name: "assistants", setup: func(x *rt, h http.Handler, n int) (string, []string, func(string)) {
			var ids []string
			for range n {
				ids = append(ids, x.assistant(gen.CreateAssistantRequest{}).Id)
			}
			return "/assistants", ids, deleter(x.t, h, func(id string) string { return "/assistants/" + id })
		}},
		{name: "messages", setup: func(x *rt, h http.Handler, n int) (string, []string, func(string)) {
			thread := x.thread()
			var ids []string
			for i := range n {
				r, err := x.c.CreateMessageWithResponse(x.ctx, thread, gen.CreateMessageRequest{Role: "user", Content: msgContent(fmt.Sprint("m", i))})
				require.NoError(x.t, err)
				require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
				ids = append(ids, r.JSON200.Id)
			}
			return "/threads/" + thread + "/messages", ids, deleter(x.t, h, func(id string) string { return "/threads/" + thread + "/messages/" + id })
		}},
		{name: "runs", setup: func(x *rt, h http.Handler, n int) (string, []string, func(string)) {
			a := x.assistant(gen.CreateAssistantRequest{})
			thread := x.thread("hello")
			var ids []string
			for range n {
				run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
				settle(10 * stepDelay)
				require.Equal(x.t, gen.RunObjectStatusCompleted, x.get(thread, run.Id).Status)
				ids = append(ids, run.Id)
			}
			return "/threads/" + thread + "/runs", ids, nil
		}},
		{name: "run steps", opts: func() []server.Option {
			return []server.Option{server.WithModel(server.Script(append(slices.Clone(toolTurns), server.Turn{Text: "done"})...))}
		},
			setup: func(x *rt, h http.Handler, n int) (string, []string, func(string)) {
				a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fnTool("f")}})
				thread := x.thread("hello")
				run := x.run(thread, gen.CreateRunRequest{AssistantId: a.Id})
				for range n {
					settle(10 * stepDelay)
					cur := x.get(thread, run.Id)
					if cur.Status != gen.RunObjectStatusRequiresAction {
						break
					}
					outs := map[string]string{}
					for _, c := range cur.RequiredAction.SubmitToolOutputs.ToolCalls {
						outs[c.Id] = "ok"
					}
					r := x.submit(thread, run.Id, outs)
					require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
				}
				require.Equal(x.t, gen.RunObjectStatusCompleted, x.get(thread, run.Id).Status)
				var ids []string
				for _, st := range x.steps(thread, run.Id) {
					ids = append(ids, st.Id)
				}
				require.Len(x.t, ids, n)
				return "/threads/" + thread + "/runs/" + run.Id + "/steps", ids, nil
			}},
		{name: "files", noBefore: true, setup: func(x *rt, h http.Handler, n int) (string, []string, func(string)) {
			return "/files", uploadN(x, n), deleter(x.t, h, func(id string) string { return "/files/" + id })
		}},
		{name: "vector stores", setup: func(x *rt, h http.Handler, n int) (string, []string, func(string)) {
			var ids []string
			for range n {
				ids = append(ids, vectorStore(x))
			}
			return "/vector_stores", ids, deleter(x.t, h, func(id string) string { return "/vector_stores/" + id })
		}},
		{name: "vector store files", setup: func(x *rt, h http.Handler, n int) (string, []string, func(string)) {
			files := uploadN(x, n)
			vs := vectorStore(x)
			for _, f := range files {
				r, err := x.c.CreateVectorStoreFileWithResponse(x.ctx, vs, gen.CreateVectorStoreFileRequest{FileId: f})
				require.NoError(x.t, err)
				require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
			}
			settle(10 * stepDelay)
			return "/vector_stores/" + vs + "/files", files, deleter(x.t, h, func(id string) string { return "/vector_stores/" + vs + "/files/" + id })
		}},
		{name: "batch files", setup: func(x *rt, h http.Handler, n int) (string, []string, func(string)) {
			files := uploadN(x, n)
			vs := vectorStore(x)
			r, err := x.c.CreateVectorStoreFileBatchWithResponse(x.ctx, vs, gen.CreateVectorStoreFileBatchRequest{FileIds: &files})
			require.NoError(x.t, err)
			require.NotNil(x.t, r.JSON200, "body: %s", r.Body)
			settle(10 * stepDelay)
			return "/vector_stores/" + vs + "/file_batches/" + r.JSON200.Id + "/files", files, deleter(x.t, h, func(id string) string { return "/vector_stores/" + vs + "/files/" + id })
		}},
	}
}

// TestListCursorsSurviveDeletion pages through every list endpoint in both
// orders, deleting each page's items (the cursor included) before asking for
// the next page: every item must come exactly once, in order. A cursor that
// no longer exists still marks its position, for after and for before.
func TestListCursorsSurviveDeletion(t *testing.T) {
	const n = 7
	for _, tc := range listCases(n) {
		for _, order := range []string{"asc", "desc"} {
			t.Run(tc.name+"/"+order, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var opts []server.Option
					if tc.opts != nil {
						opts = tc.opts()
					}
					srv := assistantstest.NewInProcessServer(t, opts...)
					h := srv.Server.Handler()
					x := newRT(t, srv)
					path, ids, del := tc.setup(x, h, n)
					require.Len(t, ids, n)
					require.True(t, slices.IsSorted(ids), "ids sort by creation: %v", ids)
					want := slices.Clone(ids)
					if order == "desc" {
						slices.Reverse(want)
					}
					// remove deletes id and returns the cursor that stands for it.
					remove := func(id string) string {
						if del == nil {
							return justPast(id, order)
						}
						del(id)
						return id
					}

					if del != nil {
						// A deleted cursor in the middle, with after and before.
						mid := want[n/2]
						del(mid)
						want = slices.Delete(want, n/2, n/2+1)
						l := listIDs(t, h, path, "order="+order+"&limit=100&after="+mid)
						assert.Equal(t, want[n/2:], l.ids(), "after a deleted cursor")
						if !tc.noBefore {
							l = listIDs(t, h, path, "order="+order+"&limit=100&before="+mid)
							assert.Equal(t, want[:n/2], l.ids(), "before a deleted cursor")
							l = listIDs(t, h, path, "order="+order+"&limit=1&before="+mid)
							assert.Equal(t, want[n/2-1:n/2], l.ids(), "the page right before a deleted cursor")
							assert.True(t, l.HasMore)
						}
					}

					// Iterate and delete.
					var got []string
					after := ""
					for pages := 0; ; pages++ {
						require.Less(t, pages, n, "paging does not end: %v", got)
						q := "order=" + order + "&limit=2"
						if after != "" {
							q += "&after=" + after
						}
						l := listIDs(t, h, path, q)
						got = append(got, l.ids()...)
						if len(l.Data) > 0 {
							assert.Equal(t, l.Data[len(l.Data)-1].ID, l.LastID)
						}
						last := l.LastID
						for _, id := range l.ids() {
							if c := remove(id); id == last {
								last = c
							}
						}
						if !l.HasMore {
							break
						}
						after = last
					}
					assert.Equal(t, want, got, "every item once, in order")
				})
			})
		}
	}
}

// TestListCursorPositions: a cursor is compared as a string, so one of
// another list or of no list at all still marks a definite position and is
// never silently ignored.
func TestListCursorPositions(t *testing.T) {
	srv, ctx := newTestServer(t)
	x := &rt{t: t, ctx: ctx, srv: srv, c: srv.Client}
	h := srv.Server.Handler()
	var ids []string
	for range 3 {
		ids = append(ids, x.assistant(gen.CreateAssistantRequest{}).Id)
	}
	assert.Equal(t, ids[1:], listIDs(t, h, "/assistants", "order=asc&after="+ids[0]).ids())
	assert.Equal(t, []string{}, listIDs(t, h, "/assistants", "order=asc&after=asst_~").ids(), "after everything")
	assert.Equal(t, ids, listIDs(t, h, "/assistants", "order=asc&after=asst_").ids(), "before everything")
}
