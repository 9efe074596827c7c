package server_test

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/internal/pgtest"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
	"github.com/assistants-go/assistants/server/store/postgres"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// The isolation table: every operation of the spec, called as project B
// on project A's objects, must answer exactly as it does for ids that do
// not exist (404 for a path id, the same 400 for an id in a body, an
// empty list), and leave A's objects as they were; on the memory, SQLite
// and PostgreSQL stores. An operation added to
// the spec fails TestProjectIsolationCoversEveryOperation until it has a
// row here.

// isoCase is one request as project B. Path and body name objects as
// {asst}, {thread}, {msg}, {run}, {step}, {file}, {vs}, {batch} (A's, or
// unknown ids of the same kind) and {b_thread}, {b_asst}, {b_vs} (B's own).
type isoCase struct {
	op     string // the operationId it covers ("" for an extra cross-reference row)
	name   string
	method string
	path   string
	body   string // JSON; "multipart" uploads a file
	// want: "404" (not found, as an unknown id), "list" (200 with no
	// data), "same" (whatever an unknown id gets, which must be a 4xx),
	// "created" (B makes its own object; see check).
	want  string
	check func(t *testing.T, x *isoEnv, status int, body []byte, ids map[string]string)
}

var isoCases = []isoCase{
	{op: "listAssistants", method: "GET", path: "/v1/assistants", want: "list"},
	{op: "createAssistant", method: "POST", path: "/v1/assistants", body: `{"model":"gpt-4o","tool_resources":{"file_search":{"vector_store_ids":["{vs}"]}}}`, want: "same"},
	{name: "createAssistant code_interpreter file", method: "POST", path: "/v1/assistants", body: `{"model":"gpt-4o","tool_resources":{"code_interpreter":{"file_ids":["{file}"]}}}`, want: "same"},
	{op: "getAssistant", method: "GET", path: "/v1/assistants/{asst}", want: "404"},
	{op: "modifyAssistant", method: "POST", path: "/v1/assistants/{asst}", body: `{"name":"taken"}`, want: "404"},
	{name: "modifyAssistant B's with A's vector store", method: "POST", path: "/v1/assistants/{b_asst}", body: `{"tool_resources":{"file_search":{"vector_store_ids":["{vs}"]}}}`, want: "same"},
	{op: "deleteAssistant", method: "DELETE", path: "/v1/assistants/{asst}", want: "404"},

	{op: "createThread", method: "POST", path: "/v1/threads", body: `{"messages":[{"role":"user","content":"hi","attachments":[{"file_id":"{file}","tools":[{"type":"file_search"}]}]}]}`, want: "same"},
	{name: "createThread with A's vector store", method: "POST", path: "/v1/threads", body: `{"tool_resources":{"file_search":{"vector_store_ids":["{vs}"]}}}`, want: "same"},
	{op: "getThread", method: "GET", path: "/v1/threads/{thread}", want: "404"},
	{op: "modifyThread", method: "POST", path: "/v1/threads/{thread}", body: `{"metadata":{"k":"v"}}`, want: "404"},
	{name: "modifyThread B's with A's vector store", method: "POST", path: "/v1/threads/{b_thread}", body: `{"tool_resources":{"file_search":{"vector_store_ids":["{vs}"]}}}`, want: "same"},
	{op: "deleteThread", method: "DELETE", path: "/v1/threads/{thread}", want: "404"},

	{op: "listMessages", method: "GET", path: "/v1/threads/{thread}/messages", want: "404"},
	{op: "createMessage", method: "POST", path: "/v1/threads/{thread}/messages", body: `{"role":"user","content":"x"}`, want: "404"},
	{name: "createMessage B's thread with A's file", method: "POST", path: "/v1/threads/{b_thread}/messages", body: `{"role":"user","content":"x","attachments":[{"file_id":"{file}","tools":[{"type":"file_search"}]}]}`, want: "same"},
	{op: "getMessage", method: "GET", path: "/v1/threads/{thread}/messages/{msg}", want: "404"},
	{op: "modifyMessage", method: "POST", path: "/v1/threads/{thread}/messages/{msg}", body: `{"metadata":{"k":"v"}}`, want: "404"},
	{op: "deleteMessage", method: "DELETE", path: "/v1/threads/{thread}/messages/{msg}", want: "404"},

	{op: "createThreadAndRun", method: "POST", path: "/v1/threads/runs", body: `{"assistant_id":"{asst}"}`, want: "404"},
	{op: "listRuns", method: "GET", path: "/v1/threads/{thread}/runs", want: "404"},
	{op: "createRun", method: "POST", path: "/v1/threads/{thread}/runs", body: `{"assistant_id":"{b_asst}"}`, want: "404"},
	{name: "createRun B's thread with A's assistant", method: "POST", path: "/v1/threads/{b_thread}/runs", body: `{"assistant_id":"{asst}"}`, want: "404"},
	{op: "getRun", method: "GET", path: "/v1/threads/{thread}/runs/{run}", want: "404"},
	{op: "modifyRun", method: "POST", path: "/v1/threads/{thread}/runs/{run}", body: `{"metadata":{"k":"v"}}`, want: "404"},
	{op: "cancelRun", method: "POST", path: "/v1/threads/{thread}/runs/{run}/cancel", want: "404"},
	{op: "listRunSteps", method: "GET", path: "/v1/threads/{thread}/runs/{run}/steps", want: "404"},
	{op: "getRunStep", method: "GET", path: "/v1/threads/{thread}/runs/{run}/steps/{step}", want: "404"},
	{op: "submitToolOuputsToRun", method: "POST", path: "/v1/threads/{thread}/runs/{run}/submit_tool_outputs", body: `{"tool_outputs":[{"tool_call_id":"call_x","output":"1"}]}`, want: "404"},

	{op: "listFiles", method: "GET", path: "/v1/files", want: "list"},
	{op: "createFile", method: "POST", path: "/v1/files", body: "multipart", want: "created", check: checkCreatedFile},
	{op: "retrieveFile", method: "GET", path: "/v1/files/{file}", want: "404"},
	{op: "deleteFile", method: "DELETE", path: "/v1/files/{file}", want: "404"},
	{op: "downloadFile", method: "GET", path: "/v1/files/{file}/content", want: "404"},

	{op: "listVectorStores", method: "GET", path: "/v1/vector_stores", want: "list"},
	{op: "createVectorStore", method: "POST", path: "/v1/vector_stores", body: `{"file_ids":["{file}"]}`, want: "created", check: checkVSFileAsUnknown},
	{op: "getVectorStore", method: "GET", path: "/v1/vector_stores/{vs}", want: "404"},
	{op: "modifyVectorStore", method: "POST", path: "/v1/vector_stores/{vs}", body: `{"name":"taken"}`, want: "404"},
	{op: "deleteVectorStore", method: "DELETE", path: "/v1/vector_stores/{vs}", want: "404"},
	{op: "createVectorStoreFileBatch", method: "POST", path: "/v1/vector_stores/{vs}/file_batches", body: `{"file_ids":["{file}"]}`, want: "404"},
	{name: "createVectorStoreFileBatch B's store with A's file", method: "POST", path: "/v1/vector_stores/{b_vs}/file_batches", body: `{"file_ids":["{file}"]}`, want: "created", check: checkVSFileAsUnknown},
	{op: "getVectorStoreFileBatch", method: "GET", path: "/v1/vector_stores/{vs}/file_batches/{batch}", want: "404"},
	{op: "cancelVectorStoreFileBatch", method: "POST", path: "/v1/vector_stores/{vs}/file_batches/{batch}/cancel", want: "404"},
	{op: "listFilesInVectorStoreBatch", method: "GET", path: "/v1/vector_stores/{vs}/file_batches/{batch}/files", want: "404"},
	{op: "listVectorStoreFiles", method: "GET", path: "/v1/vector_stores/{vs}/files", want: "404"},
	{op: "createVectorStoreFile", method: "POST", path: "/v1/vector_stores/{vs}/files", body: `{"file_id":"{file}"}`, want: "404"},
	{name: "createVectorStoreFile B's store with A's file", method: "POST", path: "/v1/vector_stores/{b_vs}/files", body: `{"file_id":"{file}"}`, want: "created", check: checkVSFileAsUnknown},
	{op: "getVectorStoreFile", method: "GET", path: "/v1/vector_stores/{vs}/files/{file}", want: "404"},
	{op: "updateVectorStoreFileAttributes", method: "POST", path: "/v1/vector_stores/{vs}/files/{file}", body: `{"attributes":{"k":"v"}}`, want: "404"},
	{op: "deleteVectorStoreFile", method: "DELETE", path: "/v1/vector_stores/{vs}/files/{file}", want: "404"},
	{op: "retrieveVectorStoreFileContent", method: "GET", path: "/v1/vector_stores/{vs}/files/{file}/content", want: "404"},
	{op: "searchVectorStore", method: "POST", path: "/v1/vector_stores/{vs}/search", body: `{"query":"penguins"}`, want: "404"},
}

// specOperations returns the operationIds of the server's spec.
func specOperations(t *testing.T) []string {
	t.Helper()
	doc, err := genserver.GetSpec()
	require.NoError(t, err)
	var ops []string
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			id := op.OperationID // the embedded spec spells them as Go names: lower the first letter
			ops = append(ops, strings.ToLower(id[:1])+id[1:])
		}
	}
	slices.Sort(ops)
	return ops
}

func TestProjectIsolationCoversEveryOperation(t *testing.T) {
	spec := specOperations(t)
	var covered []string
	for _, c := range isoCases {
		if c.op != "" {
			covered = append(covered, c.op)
		}
	}
	slices.Sort(covered)
	require.Equal(t, spec, slices.Compact(covered), "every operation of the spec needs a row in isoCases")
	require.Len(t, spec, 44)
}

func TestProjectIsolation(t *testing.T) {
	stores := map[string]func(t *testing.T) store.Store{
		"memory": func(t *testing.T) store.Store { return memory.New() },
		"sqlite": func(t *testing.T) store.Store {
			st, err := sqlite.OpenDir(t.Context(), t.TempDir(), func(o *sqlite.Options) { o.Logger = slog.New(slog.DiscardHandler) })
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
		"postgres": func(t *testing.T) store.Store {
			st, err := postgres.Open(t.Context(), pgtest.Schema(t), func(o *postgres.Options) { o.Logger = slog.New(slog.DiscardHandler) })
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			x := newIsoEnv(t, open(t))
			before := x.snapshotA(t)
			// Deletes go last: one that wrongly worked would hide what
			// the rows after it would find.
			cases := slices.Clone(isoCases)
			slices.SortStableFunc(cases, func(a, b isoCase) int {
				return cmp.Compare(boolInt(a.method == "DELETE"), boolInt(b.method == "DELETE"))
			})
			for _, c := range cases {
				label := c.op
				if label == "" {
					label = c.name
				}
				t.Run(label, func(t *testing.T) { x.run(t, c) })
			}
			require.Equal(t, before, x.snapshotA(t), "project B changed project A's objects")
		})
	}
}

// isoEnv is a server with projects A and B, each with a key, and A's
// objects.
type isoEnv struct {
	h    http.Handler
	srv  *server.Server // for waitStatus (WatchRun)
	keyA string
	keyB string
	idsA map[string]string // A's objects by placeholder name
	idsB map[string]string // B's own objects
}

var isoSecret = []byte("isolation-test-key-secret-0123456789abcdef")

// newKey makes a project with a key in st.
func newKey(t *testing.T, st store.Store, project string) string {
	t.Helper()
	ctx := t.Context()
	if project != store.DefaultProject {
		require.NoError(t, st.CreateProject(ctx, store.Project{ID: project, CreatedAt: time.Now().Unix()}))
	}
	key, rec, err := server.NewAPIKey(isoSecret, project, time.Now())
	require.NoError(t, err)
	require.NoError(t, st.CreateAPIKey(ctx, rec))
	return key
}

func newIsoEnv(t *testing.T, st store.Store) *isoEnv {
	t.Helper()
	srv := server.New(server.WithStore(st), server.WithKeySecret(isoSecret), server.WithStepDelay(0))
	t.Cleanup(func() { _ = srv.Close() })
	x := &isoEnv{h: srv.Handler(), srv: srv, keyA: newKey(t, st, "team-a"), keyB: newKey(t, st, "team-b"),
		idsA: map[string]string{}, idsB: map[string]string{}}

	// A's objects.
	st1, body := x.do(t, x.keyA, "POST", "/v1/files", "multipart")
	require.Equal(t, 200, st1, "%s", body)
	x.idsA["file"] = jsonField(t, body, "id")
	x.idsA["vs"] = x.create(t, x.keyA, "/v1/vector_stores", `{"file_ids":["`+x.idsA["file"]+`"]}`)
	x.idsA["batch"] = x.create(t, x.keyA, "/v1/vector_stores/"+x.idsA["vs"]+"/file_batches", `{"file_ids":["`+x.idsA["file"]+`"]}`)
	x.idsA["asst"] = x.create(t, x.keyA, "/v1/assistants", `{"model":"gpt-4o","tools":[{"type":"file_search"}],"tool_resources":{"file_search":{"vector_store_ids":["`+x.idsA["vs"]+`"]}}}`)
	x.idsA["thread"] = x.create(t, x.keyA, "/v1/threads", `{"messages":[{"role":"user","content":"What do penguins eat?"}]}`)
	x.idsA["run"] = x.create(t, x.keyA, "/v1/threads/"+x.idsA["thread"]+"/runs", `{"assistant_id":"`+x.idsA["asst"]+`"}`)
	x.waitRun(t, x.keyA, x.idsA["thread"], x.idsA["run"])
	_, steps := x.do(t, x.keyA, "GET", "/v1/threads/"+x.idsA["thread"]+"/runs/"+x.idsA["run"]+"/steps", "")
	x.idsA["step"] = firstID(t, steps)
	_, msgs := x.do(t, x.keyA, "GET", "/v1/threads/"+x.idsA["thread"]+"/messages?order=asc", "")
	x.idsA["msg"] = firstID(t, msgs)
	// The run's jobs worked in A's project: file_search found A's vector
	// store (in another project it would have found nothing).
	_, msgs = x.do(t, x.keyA, "GET", "/v1/threads/"+x.idsA["thread"]+"/messages?order=desc&limit=1", "")
	require.Contains(t, string(msgs), "krill", "the run's reply did not come from A's vector store")

	// B's own objects, for the cross-reference rows.
	x.idsB["b_thread"] = x.create(t, x.keyB, "/v1/threads", `{}`)
	x.idsB["b_asst"] = x.create(t, x.keyB, "/v1/assistants", `{"model":"gpt-4o"}`)
	x.idsB["b_vs"] = x.create(t, x.keyB, "/v1/vector_stores", `{}`)
	return x
}

// do sends one request with key and returns the status and body.
func (x *isoEnv) do(t *testing.T, key, method, path, body string) (int, []byte) {
	t.Helper()
	var r *http.Request
	switch body {
	case "":
		r = httptest.NewRequest(method, path, nil)
	case "multipart":
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		require.NoError(t, mw.WriteField("purpose", "assistants"))
		fw, err := mw.CreateFormFile("file", "penguins.md")
		require.NoError(t, err)
		_, _ = fw.Write([]byte("Emperor penguins eat krill and fish.\n\nThey live in Antarctica.\n"))
		require.NoError(t, mw.Close())
		r = httptest.NewRequest(method, path, &b)
		r.Header.Set("Content-Type", mw.FormDataContentType())
	default:
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", "Bearer "+key)
	r.Header.Set("OpenAI-Beta", "assistants=v2")
	w := httptest.NewRecorder()
	x.h.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}

func (x *isoEnv) create(t *testing.T, key, path, body string) string {
	t.Helper()
	st, b := x.do(t, key, "POST", path, body)
	require.Equal(t, 200, st, "POST %s: %s", path, b)
	return jsonField(t, b, "id")
}

func (x *isoEnv) waitRun(t *testing.T, key, thread, run string) {
	t.Helper()
	x.waitStatus(t, key, thread, run, "completed")
}

// waitStatus waits until a run is in status want (it fails on another
// end state).
func (x *isoEnv) waitStatus(t *testing.T, key, thread, run, want string) {
	t.Helper()
	require.NotNil(t, x.srv, "waitStatus needs isoEnv.srv")
	changed, stop := x.srv.WatchRun(run) // before the first read: no change is missed
	defer stop()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	// A change made by another replica whose wake-up was lost is still
	// seen, as streams see it (subscriberPoll).
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		_, b := x.do(t, key, "GET", "/v1/threads/"+thread+"/runs/"+run, "")
		switch s := jsonField(t, b, "status"); s {
		case want:
			return
		case "queued", "in_progress", "cancelling", "requires_action":
		default:
			t.Fatalf("the run ended %s, not %s: %s", s, want, b)
		}
		select {
		case <-changed: // the run's events were written: read it again
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("the run did not reach %s: %s", want, b)
		}
	}
}

func jsonField(t *testing.T, b []byte, field string) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s", b)
	s, _ := m[field].(string)
	require.NotEmpty(t, s, "no %s in %s", field, b)
	return s
}

func firstID(t *testing.T, list []byte) string {
	t.Helper()
	var l struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(list, &l), "%s", list)
	require.NotEmpty(t, l.Data, "%s", list)
	return l.Data[0].ID
}

// unknownIDs returns an id of the same kind as each of A's that exists in
// no project.
func (x *isoEnv) unknownIDs() map[string]string {
	out := map[string]string{}
	for k, id := range x.idsA {
		i := strings.IndexAny(id, "_-") + 1
		var b [12]byte
		_, _ = rand.Read(b[:])
		out[k] = fmt.Sprintf("%s0unknown%x", id[:i], b)
	}
	return out
}

func fill(s string, ids ...map[string]string) string {
	for _, m := range ids {
		for k, v := range m {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
	}
	return s
}

// normalize replaces the ids of m in b by their placeholder names.
func normalize(b []byte, m map[string]string) string {
	s := string(b)
	for k, v := range m {
		s = strings.ReplaceAll(s, v, "{"+k+"}")
	}
	return s
}

func (x *isoEnv) run(t *testing.T, c isoCase) {
	unknown := x.unknownIDs()
	gotSt, got := x.do(t, x.keyB, c.method, fill(c.path, x.idsA, x.idsB), fill(c.body, x.idsA, x.idsB))
	wantSt, want := x.do(t, x.keyB, c.method, fill(c.path, unknown, x.idsB), fill(c.body, unknown, x.idsB))
	switch c.want {
	case "404":
		require.Equal(t, http.StatusNotFound, gotSt, "%s", got)
	case "list":
		// B's list holds B's objects only (B made some for the rows
		// below), never one of A's.
		require.Equal(t, http.StatusOK, gotSt, "%s", got)
		var l struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(got, &l))
		for _, it := range l.Data {
			for _, a := range x.idsA {
				require.NotEqual(t, a, it.ID, "B lists A's object: %s", got)
			}
		}
		require.LessOrEqual(t, len(l.Data), 1, "B's list: %s", got)
		return
	case "same":
		require.GreaterOrEqual(t, gotSt, 400, "%s", got)
		require.Less(t, gotSt, 500, "%s", got)
	case "created":
		require.Equal(t, http.StatusOK, gotSt, "%s", got)
		c.check(t, x, gotSt, got, unknown)
		return
	}
	// Exactly as an unknown id: the same status and body, ids aside.
	require.Equal(t, wantSt, gotSt)
	require.Equal(t, normalize(want, unknown), normalize(got, x.idsA))
}

// checkCreatedFile: B's upload is B's: A cannot see it.
func checkCreatedFile(t *testing.T, x *isoEnv, _ int, body []byte, _ map[string]string) {
	id := jsonField(t, body, "id")
	st, b := x.do(t, x.keyA, "GET", "/v1/files/"+id, "")
	require.Equal(t, http.StatusNotFound, st, "A sees B's file: %s", b)
}

// checkVSFileAsUnknown: a vector store file (or batch) of B naming A's
// file ends exactly as one naming an unknown file: failed, "No file
// found". body is the vector store or batch B made.
func checkVSFileAsUnknown(t *testing.T, x *isoEnv, _ int, body []byte, _ map[string]string) {
	vs := jsonField(t, body, "id")
	if strings.HasPrefix(vs, "vsfb_") || strings.HasPrefix(vs, "file-") {
		var m map[string]any
		require.NoError(t, json.Unmarshal(body, &m))
		vs = m["vector_store_id"].(string)
	}
	st, b := x.do(t, x.keyB, "GET", "/v1/vector_stores/"+vs+"/files/"+x.idsA["file"], "")
	require.Equal(t, http.StatusOK, st, "%s", b)
	var f struct {
		Status    string `json:"status"`
		LastError struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"last_error"`
	}
	require.NoError(t, json.Unmarshal(b, &f))
	require.Equal(t, "failed", f.Status, "B's vector store read A's file: %s", b)
	require.Equal(t, "invalid_file", f.LastError.Code)
	require.Equal(t, "No file found with id '"+x.idsA["file"]+"'.", f.LastError.Message)
}

// snapshotA reads every object of A, as A.
func (x *isoEnv) snapshotA(t *testing.T) map[string]string {
	t.Helper()
	a := x.idsA
	paths := []string{
		"/v1/assistants/" + a["asst"],
		"/v1/threads/" + a["thread"],
		"/v1/threads/" + a["thread"] + "/messages",
		"/v1/threads/" + a["thread"] + "/messages/" + a["msg"],
		"/v1/threads/" + a["thread"] + "/runs",
		"/v1/threads/" + a["thread"] + "/runs/" + a["run"],
		"/v1/threads/" + a["thread"] + "/runs/" + a["run"] + "/steps/" + a["step"],
		"/v1/files",
		"/v1/files/" + a["file"],
		"/v1/files/" + a["file"] + "/content",
		"/v1/vector_stores",
		"/v1/vector_stores/" + a["vs"],
		"/v1/vector_stores/" + a["vs"] + "/files",
		"/v1/vector_stores/" + a["vs"] + "/files/" + a["file"],
		"/v1/vector_stores/" + a["vs"] + "/files/" + a["file"] + "/content",
		"/v1/vector_stores/" + a["vs"] + "/file_batches/" + a["batch"],
		"/v1/assistants",
	}
	out := map[string]string{}
	for _, p := range paths {
		st, b := x.do(t, x.keyA, "GET", p, "")
		require.Equal(t, http.StatusOK, st, "A's GET %s: %s", p, b)
		out[p] = string(b)
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
