package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// reply is what every generated reply has.
type reply interface {
	StatusCode() int
}

// requireAPIError checks an error reply: status, API shape, param.
func requireAPIError(t *testing.T, r reply, body []byte, status int, param string) gen.Error {
	t.Helper()
	require.Equal(t, status, r.StatusCode(), "body: %s", body)
	var e gen.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	require.NotEmpty(t, e.Error.Message)
	require.NotEmpty(t, e.Error.Type)
	if param != "" {
		require.NotNil(t, e.Error.Param, "body: %s", body)
		assert.Equal(t, param, *e.Error.Param, "body: %s", body)
	}
	return e.Error
}

func newTestServer(t *testing.T, opts ...server.Option) (*assistantstest.Server, context.Context) {
	t.Helper()
	srv := assistantstest.NewServer(t, append([]server.Option{server.WithStepDelay(0)}, opts...)...)
	return srv, t.Context()
}

func textOf(t *testing.T, m gen.MessageObject) string {
	t.Helper()
	require.NotEmpty(t, m.Content)
	tx := m.Content[0]
	require.Equal(t, gen.MessageContentTypeText, tx.Type)
	return tx.Text.Value
}

func strContent(s string) gen.CreateMessageRequest_Content {
	var c gen.CreateMessageRequest_Content
	_ = c.FromCreateMessageText(s)
	return c
}

func TestAssistantsCRUD(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	name, instr := "Math tutor", "Be brief."
	var tool gen.AssistantTool
	require.NoError(t, tool.FromAssistantToolsFunction(gen.AssistantToolsFunction{Type: "function", Function: gen.FunctionObject{Name: "get_weather"}}))
	cr, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{
		Model: "gpt-4o", Name: &name, Instructions: &instr,
		Tools: &[]gen.AssistantTool{tool}, Metadata: &gen.Metadata{"team": "a"},
	})
	require.NoError(t, err)
	require.NotNil(t, cr.JSON200, "body: %s", cr.Body)
	a := cr.JSON200
	assert.True(t, strings.HasPrefix(a.Id, "asst_"))
	assert.Equal(t, gen.AssistantObjectObject("assistant"), a.Object)
	assert.NotZero(t, a.CreatedAt)
	assert.Equal(t, "gpt-4o", a.Model)
	assert.Equal(t, name, *a.Name)
	assert.Len(t, a.Tools, 1)
	assert.Equal(t, gen.Metadata{"team": "a"}, *a.Metadata)

	gr, err := c.GetAssistantWithResponse(ctx, a.Id)
	require.NoError(t, err)
	require.NotNil(t, gr.JSON200)
	assert.Equal(t, *a, *gr.JSON200)

	newName := "Algebra tutor"
	mr, err := c.ModifyAssistantWithResponse(ctx, a.Id, gen.ModifyAssistantRequest{Name: &newName, Metadata: &gen.Metadata{"team": "b"}})
	require.NoError(t, err)
	require.NotNil(t, mr.JSON200, "body: %s", mr.Body)
	assert.Equal(t, newName, *mr.JSON200.Name)
	assert.Equal(t, instr, *mr.JSON200.Instructions, "fields not sent stay")
	assert.Equal(t, a.Temperature, mr.JSON200.Temperature, "fields not sent stay")
	assert.Len(t, mr.JSON200.Tools, 1)
	assert.Equal(t, gen.Metadata{"team": "b"}, *mr.JSON200.Metadata)

	lr, err := c.ListAssistantsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.NotNil(t, lr.JSON200)
	require.Len(t, lr.JSON200.Data, 1)
	assert.Equal(t, newName, *lr.JSON200.Data[0].Name)

	dr, err := c.DeleteAssistantWithResponse(ctx, a.Id)
	require.NoError(t, err)
	require.NotNil(t, dr.JSON200)
	assert.Equal(t, gen.DeleteAssistantResponse{Id: a.Id, Object: "assistant.deleted", Deleted: true}, *dr.JSON200)

	gr, err = c.GetAssistantWithResponse(ctx, a.Id)
	require.NoError(t, err)
	e := requireAPIError(t, gr, gr.Body, http.StatusNotFound, "assistant_id")
	assert.Equal(t, "invalid_request_error", e.Type)
	assert.Contains(t, e.Message, a.Id)
}

func TestThreadsAndMessagesCRUD(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	tr, err := c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{
		Messages: &[]gen.CreateMessageRequest{
			{Role: "user", Content: strContent("first")},
			{Role: "assistant", Content: strContent("second")},
		},
		Metadata: &gen.Metadata{"k": "v"},
	})
	require.NoError(t, err)
	require.NotNil(t, tr.JSON200, "body: %s", tr.Body)
	th := tr.JSON200
	assert.True(t, strings.HasPrefix(th.Id, "thread_"))
	assert.Equal(t, gen.ThreadObjectObject("thread"), th.Object)

	gr, err := c.GetThreadWithResponse(ctx, th.Id)
	require.NoError(t, err)
	require.NotNil(t, gr.JSON200)
	assert.Equal(t, *th, *gr.JSON200)

	mt, err := c.ModifyThreadWithResponse(ctx, th.Id, gen.ModifyThreadRequest{Metadata: &gen.Metadata{"k": "w"}})
	require.NoError(t, err)
	require.NotNil(t, mt.JSON200)
	assert.Equal(t, gen.Metadata{"k": "w"}, *mt.JSON200.Metadata)

	// Messages: the two from creation, plus one added, with parts.
	var parts gen.CreateMessageRequest_Content
	var p gen.MessageRequestContent
	require.NoError(t, p.FromMessageRequestContentTextObject(gen.MessageRequestContentTextObject{Type: "text", Text: "third"}))
	var img gen.MessageRequestContent
	require.NoError(t, img.FromMessageContentImageUrlObject(gen.MessageContentImageUrlObject{Type: "image_url", ImageUrl: gen.MessageContentImageUrl{Url: "https://example.com/a.png"}}))
	require.NoError(t, parts.FromCreateMessageParts([]gen.MessageRequestContent{p, img}))
	cm, err := c.CreateMessageWithResponse(ctx, th.Id, gen.CreateMessageRequest{Role: "user", Content: parts, Metadata: &gen.Metadata{"n": "3"}})
	require.NoError(t, err)
	require.NotNil(t, cm.JSON200, "body: %s", cm.Body)
	m := cm.JSON200
	assert.True(t, strings.HasPrefix(m.Id, "msg_"))
	assert.Equal(t, th.Id, m.ThreadId)
	assert.Equal(t, gen.MessageObjectRole("user"), m.Role)
	assert.Equal(t, gen.MessageObjectStatus("completed"), m.Status)
	require.Len(t, m.Content, 2)
	assert.Equal(t, "third", textOf(t, *m))
	u := m.Content[1]
	require.Equal(t, gen.MessageContentTypeImageUrl, u.Type)
	assert.Equal(t, "https://example.com/a.png", u.ImageUrl.Url)

	asc := gen.ListMessagesParamsOrder("asc")
	lm, err := c.ListMessagesWithResponse(ctx, th.Id, &gen.ListMessagesParams{Order: &asc})
	require.NoError(t, err)
	require.NotNil(t, lm.JSON200)
	require.Len(t, lm.JSON200.Data, 3)
	assert.Equal(t, []string{"first", "second", "third"}, []string{textOf(t, lm.JSON200.Data[0]), textOf(t, lm.JSON200.Data[1]), textOf(t, lm.JSON200.Data[2])})
	assert.Equal(t, gen.MessageObjectRole("assistant"), lm.JSON200.Data[1].Role)

	gm, err := c.GetMessageWithResponse(ctx, th.Id, m.Id)
	require.NoError(t, err)
	require.NotNil(t, gm.JSON200)
	assert.Equal(t, *m, *gm.JSON200)

	mm, err := c.ModifyMessageWithResponse(ctx, th.Id, m.Id, gen.ModifyMessageRequest{Metadata: &gen.Metadata{"n": "4"}})
	require.NoError(t, err)
	require.NotNil(t, mm.JSON200)
	assert.Equal(t, gen.Metadata{"n": "4"}, *mm.JSON200.Metadata)
	assert.Equal(t, "third", textOf(t, *mm.JSON200))

	dm, err := c.DeleteMessageWithResponse(ctx, th.Id, m.Id)
	require.NoError(t, err)
	require.NotNil(t, dm.JSON200)
	assert.Equal(t, gen.DeleteMessageResponse{Id: m.Id, Object: "thread.message.deleted", Deleted: true}, *dm.JSON200)
	gm, err = c.GetMessageWithResponse(ctx, th.Id, m.Id)
	require.NoError(t, err)
	requireAPIError(t, gm, gm.Body, http.StatusNotFound, "message_id")

	dt, err := c.DeleteThreadWithResponse(ctx, th.Id)
	require.NoError(t, err)
	require.NotNil(t, dt.JSON200)
	assert.Equal(t, gen.DeleteThreadResponse{Id: th.Id, Object: "thread.deleted", Deleted: true}, *dt.JSON200)
	lm, err = c.ListMessagesWithResponse(ctx, th.Id, nil)
	require.NoError(t, err)
	requireAPIError(t, lm, lm.Body, http.StatusNotFound, "thread_id")
}

func TestEmptyThread(t *testing.T) {
	srv, ctx := newTestServer(t)
	r, err := srv.Client.CreateThreadWithBodyWithResponse(ctx, "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	require.NotNil(t, r.JSON200, "body: %s", r.Body)
	assert.Equal(t, gen.Metadata{}, *r.JSON200.Metadata)
}

func TestUnknownIDs404(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	th, err := c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{})
	require.NoError(t, err)
	thread := th.JSON200.Id
	vs, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{})
	require.NoError(t, err)
	store := vs.JSON200.Id

	type call func() (reply, []byte, error)
	wrap := func(r reply, body []byte, err error) (reply, []byte, error) { return r, body, err }
	cases := []struct {
		name  string
		param string
		call  call
	}{
		{"assistant", "assistant_id", func() (reply, []byte, error) {
			r, err := c.GetAssistantWithResponse(ctx, "asst_missing")
			return wrap(r, body(r), err)
		}},
		{"modify assistant", "assistant_id", func() (reply, []byte, error) {
			r, err := c.ModifyAssistantWithResponse(ctx, "asst_missing", gen.ModifyAssistantRequest{})
			return wrap(r, body(r), err)
		}},
		{"delete assistant", "assistant_id", func() (reply, []byte, error) {
			r, err := c.DeleteAssistantWithResponse(ctx, "asst_missing")
			return wrap(r, body(r), err)
		}},
		{"thread", "thread_id", func() (reply, []byte, error) {
			r, err := c.GetThreadWithResponse(ctx, "thread_missing")
			return wrap(r, body(r), err)
		}},
		{"modify thread", "thread_id", func() (reply, []byte, error) {
			r, err := c.ModifyThreadWithResponse(ctx, "thread_missing", gen.ModifyThreadRequest{})
			return wrap(r, body(r), err)
		}},
		{"delete thread", "thread_id", func() (reply, []byte, error) {
			r, err := c.DeleteThreadWithResponse(ctx, "thread_missing")
			return wrap(r, body(r), err)
		}},
		{"create message", "thread_id", func() (reply, []byte, error) {
			r, err := c.CreateMessageWithResponse(ctx, "thread_missing", gen.CreateMessageRequest{Role: "user", Content: strContent("x")})
			return wrap(r, body(r), err)
		}},
		{"message", "message_id", func() (reply, []byte, error) {
			r, err := c.GetMessageWithResponse(ctx, thread, "msg_missing")
			return wrap(r, body(r), err)
		}},
		{"modify message", "message_id", func() (reply, []byte, error) {
			r, err := c.ModifyMessageWithResponse(ctx, thread, "msg_missing", gen.ModifyMessageRequest{})
			return wrap(r, body(r), err)
		}},
		{"delete message", "message_id", func() (reply, []byte, error) {
			r, err := c.DeleteMessageWithResponse(ctx, thread, "msg_missing")
			return wrap(r, body(r), err)
		}},
		{"file", "file_id", func() (reply, []byte, error) {
			r, err := c.RetrieveFileWithResponse(ctx, "file-missing")
			return wrap(r, body(r), err)
		}},
		{"file content", "file_id", func() (reply, []byte, error) {
			r, err := c.DownloadFileWithResponse(ctx, "file-missing")
			return wrap(r, body(r), err)
		}},
		{"delete file", "file_id", func() (reply, []byte, error) {
			r, err := c.DeleteFileWithResponse(ctx, "file-missing")
			return wrap(r, body(r), err)
		}},
		{"vector store", "vector_store_id", func() (reply, []byte, error) {
			r, err := c.GetVectorStoreWithResponse(ctx, "vs_missing")
			return wrap(r, body(r), err)
		}},
		{"modify vector store", "vector_store_id", func() (reply, []byte, error) {
			r, err := c.ModifyVectorStoreWithResponse(ctx, "vs_missing", gen.UpdateVectorStoreRequest{})
			return wrap(r, body(r), err)
		}},
		{"delete vector store", "vector_store_id", func() (reply, []byte, error) {
			r, err := c.DeleteVectorStoreWithResponse(ctx, "vs_missing")
			return wrap(r, body(r), err)
		}},
		{"vector store files", "vector_store_id", func() (reply, []byte, error) {
			r, err := c.ListVectorStoreFilesWithResponse(ctx, "vs_missing", nil)
			return wrap(r, body(r), err)
		}},
		{"vector store file", "file_id", func() (reply, []byte, error) {
			r, err := c.GetVectorStoreFileWithResponse(ctx, store, "file-missing")
			return wrap(r, body(r), err)
		}},
		{"vector store file content", "file_id", func() (reply, []byte, error) {
			r, err := c.RetrieveVectorStoreFileContentWithResponse(ctx, store, "file-missing")
			return wrap(r, body(r), err)
		}},
		{"vector store file attributes", "file_id", func() (reply, []byte, error) {
			r, err := c.UpdateVectorStoreFileAttributesWithResponse(ctx, store, "file-missing", gen.UpdateVectorStoreFileAttributesRequest{})
			return wrap(r, body(r), err)
		}},
		{"delete vector store file", "file_id", func() (reply, []byte, error) {
			r, err := c.DeleteVectorStoreFileWithResponse(ctx, store, "file-missing")
			return wrap(r, body(r), err)
		}},
		{"batch", "batch_id", func() (reply, []byte, error) {
			r, err := c.GetVectorStoreFileBatchWithResponse(ctx, store, "vsfb_missing")
			return wrap(r, body(r), err)
		}},
		{"cancel batch", "batch_id", func() (reply, []byte, error) {
			r, err := c.CancelVectorStoreFileBatchWithResponse(ctx, store, "vsfb_missing")
			return wrap(r, body(r), err)
		}},
		{"batch files", "batch_id", func() (reply, []byte, error) {
			r, err := c.ListFilesInVectorStoreBatchWithResponse(ctx, store, "vsfb_missing", nil)
			return wrap(r, body(r), err)
		}},
		{"search", "vector_store_id", func() (reply, []byte, error) {
			var q gen.VectorStoreSearchQuery
			_ = q.FromVectorStoreSearchQueryText("x")
			r, err := c.SearchVectorStoreWithResponse(ctx, "vs_missing", gen.VectorStoreSearchRequest{Query: q})
			return wrap(r, body(r), err)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, b, err := tc.call()
			require.NoError(t, err)
			e := requireAPIError(t, r, b, http.StatusNotFound, tc.param)
			assert.Equal(t, "invalid_request_error", e.Type)
			require.NotNil(t, e.Code)
			assert.Equal(t, "not_found", *e.Code)
		})
	}
}

// body returns the raw body of any generated reply.
func body(r any) []byte {
	v := reflect.ValueOf(r)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	return v.Elem().FieldByName("Body").Bytes()
}

func TestBadBodies400(t *testing.T) {
	srv, ctx := newTestServer(t)
	c := srv.Client
	th, err := c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{})
	require.NoError(t, err)
	thread := th.JSON200.Id
	long := strings.Repeat("x", 513)
	many := map[string]string{}
	for i := range 17 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	manyJSON, _ := json.Marshal(many)
	cases := []struct {
		name, path, body, param string
	}{
		{"not JSON", "/assistants", `{"model":`, ""},
		{"missing model", "/assistants", `{}`, "model"},
		{"model wrong type", "/assistants", `{"model":5}`, "model"},
		{"bad tool type", "/assistants", `{"model":"m","tools":[{"type":"browser"}]}`, "tools[0]"},
		{"temperature too high", "/assistants", `{"model":"m","temperature":3}`, "temperature"},
		{"bad role enum", "/threads/" + thread + "/messages", `{"role":"system","content":"x"}`, "role"},
		{"bad role in thread", "/threads", `{"messages":[{"role":"bot","content":"x"}]}`, "messages[0].role"},
		{"empty content", "/threads/" + thread + "/messages", `{"role":"user","content":""}`, "content"},
		{"metadata too many keys", "/assistants", `{"model":"m","metadata":` + string(manyJSON) + `}`, "metadata"},
		{"metadata value too long", "/threads", `{"metadata":{"k":"` + long + `"}}`, "metadata"},
		{"metadata key too long", "/threads/" + thread, `{"metadata":{"` + strings.Repeat("k", 65) + `":"v"}}`, "metadata"},
		{"message metadata", "/threads/" + thread + "/messages", `{"role":"user","content":"x","metadata":{"k":"` + long + `"}}`, "metadata"},
		{"unknown attachment file", "/threads/" + thread + "/messages", `{"role":"user","content":"x","attachments":[{"file_id":"file-nope","tools":[{"type":"file_search"}]}]}`, "attachments[0].file_id"},
		{"unknown vector store", "/assistants", `{"model":"m","tool_resources":{"file_search":{"vector_store_ids":["vs_nope"]}}}`, "tool_resources.file_search.vector_store_ids[0]"},
		{"vector store bad expiry", "/vector_stores", `{"expires_after":{"anchor":"last_active_at","days":0}}`, "expires_after.days"},
		{"batch without files", "/vector_stores/vs_x/file_batches", `{}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.HTTP.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var e gen.ErrorResponse
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			require.Contains(t, []int{400, 404}, resp.StatusCode, "%+v", e)
			if tc.param == "" {
				return
			}
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%+v", e)
			require.NotNil(t, e.Error.Param, "%+v", e)
			// The param names the field, or a key inside it ("metadata.k").
			assert.True(t, *e.Error.Param == tc.param || strings.HasPrefix(*e.Error.Param, tc.param+"."), "param %q, want %q", *e.Error.Param, tc.param)
			assert.Contains(t, e.Error.Message, tc.param)
			assert.Equal(t, "invalid_request_error", e.Error.Type)
		})
	}
}

// The validator is not alone: with it off, the handlers still give the
// same 400s.
func TestBadBodiesWithoutValidation(t *testing.T) {
	srv, ctx := newTestServer(t, func(o *server.Options) { o.DisableValidation = true })
	cases := []struct{ path, body, param string }{
		{"/assistants", `{"model":""}`, "model"},
		{"/assistants", `{"model":"m","temperature":3}`, "temperature"},
		{"/threads", `{"messages":[{"role":"bot","content":"x"}]}`, "messages[0].role"},
		{"/threads", `{"metadata":{"k":"` + strings.Repeat("v", 600) + `"}}`, "metadata"},
	}
	for _, tc := range cases {
		r, err := srv.Client.CreateThreadWithBodyWithResponse(ctx, "application/json", strings.NewReader(tc.body), func(_ context.Context, req *http.Request) error {
			req.URL.Path = strings.TrimSuffix(req.URL.Path, "/threads") + tc.path
			return nil
		})
		require.NoError(t, err)
		requireAPIError(t, r, r.Body, http.StatusBadRequest, tc.param)
	}
}

func TestThreadLockedWhileRunActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := assistantstest.NewInProcessServer(t, server.WithStepDelay(10*time.Millisecond))
		ctx, c := t.Context(), srv.Client
		var tool gen.AssistantTool
		require.NoError(t, tool.FromAssistantToolsFunction(gen.AssistantToolsFunction{Type: "function", Function: gen.FunctionObject{Name: "lookup"}}))
		a, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "m", Tools: &[]gen.AssistantTool{tool}})
		require.NoError(t, err)
		th, err := c.CreateThreadWithResponse(ctx, gen.CreateThreadRequest{})
		require.NoError(t, err)
		thread := th.JSON200.Id
		_, err = c.CreateMessageWithResponse(ctx, thread, gen.CreateMessageRequest{Role: "user", Content: strContent(`please lookup {"q":"x"}`)})
		require.NoError(t, err)
		rr, err := c.CreateRunWithResponse(ctx, thread, nil, gen.CreateRunRequest{AssistantId: a.JSON200.Id})
		require.NoError(t, err)
		require.NotNil(t, rr.JSON200, "body: %s", rr.Body)
		run := rr.JSON200

		// Queued, in progress or waiting for tool outputs: the thread is locked.
		cm, err := c.CreateMessageWithResponse(ctx, thread, gen.CreateMessageRequest{Role: "user", Content: strContent("more")})
		require.NoError(t, err)
		e := requireAPIError(t, cm, cm.Body, http.StatusBadRequest, "")
		assert.Equal(t, fmt.Sprintf("Can't add messages to %s while a run %s is active.", thread, run.Id), e.Message)

		// Once the run is over, messages are welcome again.
		_, err = c.CancelRunWithResponse(ctx, thread, run.Id)
		require.NoError(t, err)
		time.Sleep(time.Second)
		synctest.Wait()
		g, err := c.GetRunWithResponse(ctx, thread, run.Id)
		require.NoError(t, err)
		require.NotNil(t, g.JSON200)
		require.Equal(t, gen.RunObjectStatus("cancelled"), g.JSON200.Status)
		cm, err = c.CreateMessageWithResponse(ctx, thread, gen.CreateMessageRequest{Role: "user", Content: strContent("more")})
		require.NoError(t, err)
		require.NotNil(t, cm.JSON200, "body: %s", cm.Body)
	})
}
