package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
)

// The vector store a createAssistant, createThread or createThreadAndRun
// asks for with tool_resources.file_search.vector_stores is made before
// the object that references it is written (createToolResources). When
// that write stores nothing, the request deletes the vector store (with
// its files' attachments): a failed create leaves no vector store behind.
// When the write committed, or may have, the vector store is kept: the
// object (which a retry of the request's Idempotency-Key may be answered
// with) references it. On memory, SQLite and PostgreSQL.

// writeFault is what objectWrites does to the next object write.
type writeFault int

const (
	writeOK writeFault = iota
	// writeRefused: the write stores nothing and fails with
	// store.ErrClaimLost, as a create fenced on an Idempotency-Key claim
	// that another request took over.
	writeRefused
	// writeUnsure: the write stores nothing and fails with a driver's
	// error, which the server cannot tell from writeLostReply's.
	writeUnsure
	// writeLostReply: the write commits, then fails with a driver's error
	// (the connection lost before the commit's reply came).
	writeLostReply
)

// errConnLost is the driver's error of writeUnsure and writeLostReply.
var errConnLost = errors.New("test: connection lost")

// objectWrites is the store under the server: once armed, the next write
// of an assistant, a thread, or a run (with its thread) meets the fault.
// It records the vector stores made and the assistants and threads whose
// write committed. With cancelAfterVectorStore set, it calls it once a
// vector store is made (the client goes away).
type objectWrites struct {
	store.Store
	mu                     sync.Mutex
	fault                  writeFault
	cancelAfterVectorStore func()
	vectorStores, written  []string
}

func (s *objectWrites) arm(f writeFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

func (s *objectWrites) made() (vectorStores, written []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.vectorStores), slices.Clone(s.written)
}

// object runs write, the write of the object id (a run's thread; "" for a
// run on an existing thread), with the armed fault.
func (s *objectWrites) object(id string, write func() error) error {
	s.mu.Lock()
	f := s.fault
	s.fault = writeOK
	s.mu.Unlock()
	switch f {
	case writeRefused:
		return fmt.Errorf("test: %w", store.ErrClaimLost)
	case writeUnsure:
		return errConnLost
	}
	err := write()
	if err == nil && id != "" {
		s.mu.Lock()
		s.written = append(s.written, id)
		s.mu.Unlock()
	}
	if err == nil && f == writeLostReply {
		return errConnLost
	}
	return err
}

func (s *objectWrites) CreateAssistant(ctx context.Context, a store.Assistant) error {
	return s.object(a.ID, func() error { return s.Store.CreateAssistant(ctx, a) })
}

func (s *objectWrites) CreateAssistantClaimed(ctx context.Context, a store.Assistant, c store.Claim) error {
	return s.object(a.ID, func() error { return s.Store.CreateAssistantClaimed(ctx, a, c) })
}

func (s *objectWrites) CreateThread(ctx context.Context, t store.Thread, msgs []store.Message) error {
	return s.object(t.ID, func() error { return s.Store.CreateThread(ctx, t, msgs) })
}

func (s *objectWrites) CreateThreadClaimed(ctx context.Context, t store.Thread, msgs []store.Message, c store.Claim) error {
	return s.object(t.ID, func() error { return s.Store.CreateThreadClaimed(ctx, t, msgs, c) })
}

func (s *objectWrites) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, []store.Event, error) {
	id := ""
	if nr.Thread != nil {
		id = nr.Thread.ID
	}
	var r store.Run
	var evs []store.Event
	err := s.object(id, func() (err error) {
		r, evs, err = s.Store.CreateRun(ctx, nr)
		return err
	})
	return r, evs, err
}

func (s *objectWrites) CreateVectorStore(ctx context.Context, vs store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	err := s.Store.CreateVectorStore(ctx, vs, files, jobs...)
	if err == nil {
		s.mu.Lock()
		s.vectorStores = append(s.vectorStores, vs.ID)
		cancel := s.cancelAfterVectorStore
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
	return err
}

// inlineStoreCase is a create whose object references the vector store
// it asks for in tool_resources: body's %f is the file the store holds,
// %a an assistant; get reads the object back (a thread for
// createThreadAndRun).
type inlineStoreCase struct {
	name, path, body, get string
}

var inlineStoreCases = []inlineStoreCase{
	{"createAssistant", "/v1/assistants", `{"model":"gpt-4o","tool_resources":%r}`, "/v1/assistants/"},
	{"createThread", "/v1/threads", `{"tool_resources":%r}`, "/v1/threads/"},
	{"createThreadAndRun", "/v1/threads/runs", `{"assistant_id":"%a","thread":{"tool_resources":%r}}`, "/v1/threads/"},
}

// bodyFor is tc's body with file in the vector store it asks for and
// asst as createThreadAndRun's assistant.
func (tc inlineStoreCase) bodyFor(file, asst string) string {
	tr := `{"file_search":{"vector_stores":[{"file_ids":["` + file + `"],"metadata":{"made":"inline"}}]}}`
	return strings.NewReplacer("%r", tr, "%a", asst).Replace(tc.body)
}

// inlineFixture uploads a file and makes an assistant on srv.
func inlineFixture(t *testing.T, srv http.Handler) (file, asst string) {
	t.Helper()
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, keyedUpload(t, []byte("Krill are small crustaceans."), ""))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	file = objectID(t, w.Body.String())
	code, out, _ := postKeyed(t, srv, "/v1/assistants", `{"model":"gpt-4o"}`, "")
	require.Equal(t, http.StatusOK, code, out)
	return file, objectID(t, out)
}

// objectID is the id of the JSON object out.
func objectID(t *testing.T, out string) string {
	t.Helper()
	var obj struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(out), &obj), out)
	require.NotEmpty(t, obj.ID, out)
	return obj.ID
}

// getJSON GETs path from srv and returns the status and body.
func getJSON(srv http.Handler, path string) (int, string) {
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w.Code, w.Body.String()
}

// listedVectorStores is what GET /v1/vector_stores lists, by id.
func listedVectorStores(t *testing.T, srv http.Handler) []string {
	t.Helper()
	code, out := getJSON(srv, "/v1/vector_stores?limit=100")
	require.Equal(t, http.StatusOK, code, out)
	var page struct {
		Data []struct{ ID string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &page), out)
	ids := []string{}
	for _, v := range page.Data {
		ids = append(ids, v.ID)
	}
	return ids
}

// referencedStores is the vector store ids of the tool_resources of the
// assistant or thread at path.
func referencedStores(t *testing.T, srv http.Handler, path string) []string {
	t.Helper()
	code, out := getJSON(srv, path)
	require.Equal(t, http.StatusOK, code, out)
	var obj struct {
		ToolResources struct {
			FileSearch struct {
				VectorStoreIDs []string `json:"vector_store_ids"`
			} `json:"file_search"`
		} `json:"tool_resources"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &obj), out)
	return obj.ToolResources.FileSearch.VectorStoreIDs
}

// requireGone checks that vector store vs and its files are gone, as
// after DELETE /v1/vector_stores/{vs}.
func requireGone(t *testing.T, srv http.Handler, vs string) {
	t.Helper()
	code, out := getJSON(srv, "/v1/vector_stores/"+vs)
	assert.Equal(t, http.StatusNotFound, code, out)
	code, out = getJSON(srv, "/v1/vector_stores/"+vs+"/files")
	assert.Equal(t, http.StatusNotFound, code, out)
}

// TestToolResourcesStoreOfUnwrittenCreate: see above. The object write
// meets a fault (objectWrites). A write that certainly stored nothing (a
// lost claim) deletes the request's vector store; a write that committed
// (written; its reply lost) keeps it, referenced by the object; a write
// whose outcome the server cannot know keeps it too, and says so in the
// log. Without the cleanup, the lost claim's vector store is listed.
func TestToolResourcesStoreOfUnwrittenCreate(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			st := &objectWrites{Store: open(t)}
			logs := &syncBuffer{}
			srv := server.New(server.WithStore(st), server.WithStepDelay(0),
				server.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
			t.Cleanup(func() { _ = srv.Close() })
			file, asst := inlineFixture(t, srv)

			for _, tc := range inlineStoreCases {
				for _, fc := range []struct {
					name    string
					fault   writeFault
					code    int
					written bool // the object exists, referencing the store
					kept    bool
				}{
					{"written", writeOK, http.StatusOK, true, true},
					{"claim lost", writeRefused, http.StatusConflict, false, false},
					{"outcome unknown", writeUnsure, http.StatusInternalServerError, false, true},
					{"reply lost after commit", writeLostReply, http.StatusInternalServerError, true, true},
				} {
					t.Run(tc.name+"/"+fc.name, func(t *testing.T) {
						listed := listedVectorStores(t, srv)
						madeBefore, writtenBefore := st.made()
						st.arm(fc.fault)
						key := "inline-store-" + tc.name + "-" + fc.name
						code, out, _ := postKeyed(t, srv, tc.path, tc.bodyFor(file, asst), key)
						require.Equal(t, fc.code, code, out)

						made, written := st.made()
						require.Len(t, made[len(madeBefore):], 1, "the request made its vector store")
						vs := made[len(madeBefore)]
						written = written[len(writtenBefore):]
						if !fc.kept {
							assert.ElementsMatch(t, listed, listedVectorStores(t, srv), "the vector store of an object not written is deleted")
							requireGone(t, srv, vs)
							assert.Empty(t, written)
							return
						}
						assert.ElementsMatch(t, append(listed, vs), listedVectorStores(t, srv), "the vector store is kept")
						if !fc.written {
							assert.Empty(t, written)
							assert.Contains(t, logs.String(), vs, "the kept vector store is logged")
							assert.NotContains(t, logs.String(), key, "the Idempotency-Key is not logged")
							return
						}
						require.Len(t, written, 1, "the object was written")
						assert.Equal(t, []string{vs}, referencedStores(t, srv, tc.get+written[0]))
					})
				}
			}
		})
	}
}

// TestToolResourcesStoreOfGoneClient: the client goes away once the
// vector store is made. The SQL stores then fail the request's next read
// or write (its context is done): the vector store is deleted. The memory
// store does not look at the context: the object is written, and keeps
// its vector store. Either way, no vector store is left that nothing
// references. Without the cleanup, the SQL stores list one.
func TestToolResourcesStoreOfGoneClient(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			st := &objectWrites{Store: open(t)}
			srv := server.New(server.WithStore(st), server.WithStepDelay(0), server.WithLogger(slog.New(slog.DiscardHandler)))
			t.Cleanup(func() { _ = srv.Close() })
			file, asst := inlineFixture(t, srv)

			for _, tc := range inlineStoreCases {
				t.Run(tc.name, func(t *testing.T) {
					listed := listedVectorStores(t, srv)
					madeBefore, writtenBefore := st.made()
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel()
					st.mu.Lock()
					st.cancelAfterVectorStore = cancel
					st.mu.Unlock()
					defer func() {
						st.mu.Lock()
						st.cancelAfterVectorStore = nil
						st.mu.Unlock()
					}()
					r := httptest.NewRequestWithContext(ctx, http.MethodPost, tc.path, strings.NewReader(tc.bodyFor(file, asst)))
					r.Header.Set("Content-Type", "application/json")
					srv.ServeHTTP(httptest.NewRecorder(), r)

					made, written := st.made()
					require.Len(t, made[len(madeBefore):], 1, "the request made its vector store")
					vs := made[len(madeBefore)]
					written = written[len(writtenBefore):]
					var referenced []string
					for _, id := range written {
						referenced = append(referenced, referencedStores(t, srv, tc.get+id)...)
					}
					assert.ElementsMatch(t, append(listed, referenced...), listedVectorStores(t, srv),
						"the vector stores listed are those before and those an object written references")
					if len(written) == 0 {
						requireGone(t, srv, vs)
					}
				})
			}
		})
	}
}

// TestToolResourcesStoreOfLostClaim: replica A makes the vector store of
// a keyed create and stalls (cut off from the store for longer than a
// lease) before writing its object; the client's retry on replica B takes
// the key over and makes the object with a vector store of its own. A's
// write is then fenced off (409 idempotency_key_in_flux): A deletes its
// vector store, and only B's is listed, which A's retry is answered with
// (Idempotent-Replayed). Without the cleanup, A's vector store is listed
// too, referenced by nothing.
func TestToolResourcesStoreOfLostClaim(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			r := newLostClaimReplicas(t, open(t), time.Hour)
			file, asst := inlineFixture(t, r.srvB)

			for _, tc := range inlineStoreCases {
				t.Run(tc.name, func(t *testing.T) {
					key, body := "lost-claim-inline-store-"+tc.name, tc.bodyFor(file, asst)
					listed := listedVectorStores(t, r.srvB)
					madeBefore := len(r.shared.of("vector_store"))
					// A stalls in its first create: the vector store's.
					finishA := r.stallA(t, tc.path, body, key)

					r.clock.advance(server.IdempotencyLease + time.Second)
					code, out, h := postKeyed(t, r.srvB, tc.path, body, key)
					require.Equal(t, http.StatusOK, code, out)
					assert.Empty(t, h.Get("Idempotent-Replayed"), "B made the object")
					var obj struct {
						ID       string `json:"id"`
						ThreadID string `json:"thread_id"` // createThreadAndRun's run's
					}
					require.NoError(t, json.Unmarshal([]byte(out), &obj), out)
					get := tc.get + obj.ID
					if obj.ThreadID != "" {
						get = tc.get + obj.ThreadID
					}
					refB := referencedStores(t, r.srvB, get)
					require.Len(t, refB, 1)

					codeA, outA := finishA()
					require.Equal(t, http.StatusConflict, codeA, outA)
					assert.Contains(t, outA, "idempotency_key_in_flux")
					assert.ElementsMatch(t, append(listed, refB[0]), listedVectorStores(t, r.srvB),
						"one vector store for the key: B's")
					made := r.shared.of("vector_store")[madeBefore:]
					require.Len(t, made, 2, "A and B each made a vector store")
					for _, vs := range made {
						if vs != refB[0] {
							requireGone(t, r.srvB, vs) // A's
						}
					}

					code, again, h := postKeyed(t, r.srvA, tc.path, body, key)
					require.Equal(t, http.StatusOK, code, again)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.JSONEq(t, out, again)
					assert.Equal(t, refB, referencedStores(t, r.srvB, get), "B's object keeps its vector store")
				})
			}
		})
	}
}
