package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
)

// Intents of keyed creating requests other than runs (idemshared.go,
// runIntent): replica A commits a keyed createThread, createMessage,
// createAssistant, createVectorStore or createVectorStoreFileBatch and dies before recording the
// answer under the key, so the key's claim is left pending in the store.
// The client's retry on replica B must be answered at once with the
// object A made (the same JSON as reading it back, Idempotent-Replayed:
// true), not wait out the dead claim's lease and make a second object
// (what chaos --restarts found for messages: duplicated=1); the same key
// with another body is still refused (409 idempotency_key_reused).

// intentFixture is what the creates of TestRetryAfterCrashBetweenCreateAndAnswer
// go into: a thread (messages), a file and a vector store (file batches).
type intentFixture struct{ thread, file, vectorStore string }

func newIntentFixture(t *testing.T, f *leaseFixture, srv *server.Server) intentFixture {
	var fx intentFixture
	id := func(code int, out string) string {
		t.Helper()
		require.Equal(t, http.StatusOK, code, out)
		var obj struct{ ID string }
		require.NoError(t, json.Unmarshal([]byte(out), &obj))
		return obj.ID
	}
	code, out, _ := f.post(srv, "/v1/threads", `{}`, "")
	fx.thread = id(code, out)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, keyedUpload(t, []byte("some notes"), ""))
	fx.file = id(w.Code, w.Body.String())
	code, out, _ = f.post(srv, "/v1/vector_stores", `{}`, "")
	fx.vectorStore = id(code, out)
	return fx
}

// literal is a function of the fixture that returns s.
func literal(s string) func(intentFixture) string {
	return func(intentFixture) string { return s }
}

// creations is the store both replicas share: it records the ids of the
// threads, messages, assistants, vector stores and file batches made.
type creations struct {
	store.Store
	mu  sync.Mutex
	ids map[string][]string // by kind
}

func (s *creations) made(kind, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[kind] = append(s.ids[kind], id)
}

func (s *creations) of(kind string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids[kind]...)
}

func (s *creations) CreateThread(ctx context.Context, t store.Thread, msgs []store.Message) error {
	err := s.Store.CreateThread(ctx, t, msgs)
	if err == nil {
		s.made("thread", t.ID)
	}
	return err
}

func (s *creations) CreateMessage(ctx context.Context, m store.Message) error {
	err := s.Store.CreateMessage(ctx, m)
	if err == nil {
		s.made("message", m.ID)
	}
	return err
}

func (s *creations) CreateMessageClaimed(ctx context.Context, m store.Message, c store.Claim) error {
	err := s.Store.CreateMessageClaimed(ctx, m, c)
	if err == nil {
		s.made("message", m.ID)
	}
	return err
}

func (s *creations) CreateThreadClaimed(ctx context.Context, t store.Thread, msgs []store.Message, c store.Claim) error {
	err := s.Store.CreateThreadClaimed(ctx, t, msgs, c)
	if err == nil {
		s.made("thread", t.ID)
	}
	return err
}

func (s *creations) CreateAssistantClaimed(ctx context.Context, a store.Assistant, c store.Claim) error {
	err := s.Store.CreateAssistantClaimed(ctx, a, c)
	if err == nil {
		s.made("assistant", a.ID)
	}
	return err
}

func (s *creations) CreateFileBatchClaimed(ctx context.Context, c store.Claim, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	err := s.Store.CreateFileBatchClaimed(ctx, c, b, files, jobs...)
	if err == nil {
		s.made("file_batch", b.ID)
	}
	return err
}

func (s *creations) CreateVectorStoreClaimed(ctx context.Context, c store.Claim, vs store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	err := s.Store.CreateVectorStoreClaimed(ctx, c, vs, files, jobs...)
	if err == nil {
		s.made("vector_store", vs.ID)
	}
	return err
}

func (s *creations) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, []store.Event, error) {
	r, evs, err := s.Store.CreateRun(ctx, nr)
	if err == nil {
		s.made("run", r.ID)
		if nr.Thread != nil {
			s.made("thread", nr.Thread.ID)
		}
	}
	return r, evs, err
}

func (s *creations) CreateAssistant(ctx context.Context, a store.Assistant) error {
	err := s.Store.CreateAssistant(ctx, a)
	if err == nil {
		s.made("assistant", a.ID)
	}
	return err
}

func (s *creations) CreateFileBatch(ctx context.Context, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	err := s.Store.CreateFileBatch(ctx, b, files, jobs...)
	if err == nil {
		s.made("file_batch", b.ID)
	}
	return err
}

func (s *creations) CreateVectorStore(ctx context.Context, vs store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	err := s.Store.CreateVectorStore(ctx, vs, files, jobs...)
	if err == nil {
		s.made("vector_store", vs.ID)
	}
	return err
}

// diesAfterCommit is replica A's view of the store: once armed, the first
// creation it commits kills the replica, so that nothing A writes after
// it (its answer under the key, the claim's removal, a renewal) reaches
// the store.
type diesAfterCommit struct {
	killable
	armed atomic.Bool
}

func (s *diesAfterCommit) died(err error) error {
	if err == nil && s.armed.Load() {
		s.dead.Store(true)
		return errReplicaDead
	}
	return err
}

func (s *diesAfterCommit) CreateThread(ctx context.Context, t store.Thread, msgs []store.Message) error {
	return s.died(s.Store.CreateThread(ctx, t, msgs))
}

func (s *diesAfterCommit) CreateMessage(ctx context.Context, m store.Message) error {
	return s.died(s.Store.CreateMessage(ctx, m))
}

func (s *diesAfterCommit) CreateMessageClaimed(ctx context.Context, m store.Message, c store.Claim) error {
	return s.died(s.Store.CreateMessageClaimed(ctx, m, c))
}

func (s *diesAfterCommit) CreateThreadClaimed(ctx context.Context, t store.Thread, msgs []store.Message, c store.Claim) error {
	return s.died(s.Store.CreateThreadClaimed(ctx, t, msgs, c))
}

func (s *diesAfterCommit) CreateAssistantClaimed(ctx context.Context, a store.Assistant, c store.Claim) error {
	return s.died(s.Store.CreateAssistantClaimed(ctx, a, c))
}

func (s *diesAfterCommit) CreateFileBatchClaimed(ctx context.Context, c store.Claim, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.died(s.Store.CreateFileBatchClaimed(ctx, c, b, files, jobs...))
}

func (s *diesAfterCommit) CreateVectorStoreClaimed(ctx context.Context, c store.Claim, vs store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.died(s.Store.CreateVectorStoreClaimed(ctx, c, vs, files, jobs...))
}

func (s *diesAfterCommit) CreateAssistant(ctx context.Context, a store.Assistant) error {
	return s.died(s.Store.CreateAssistant(ctx, a))
}

func (s *diesAfterCommit) CreateFileBatch(ctx context.Context, b store.FileBatch, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.died(s.Store.CreateFileBatch(ctx, b, files, jobs...))
}

func (s *diesAfterCommit) CreateVectorStore(ctx context.Context, vs store.VectorStore, files []store.VectorStoreFile, jobs ...store.Job) error {
	return s.died(s.Store.CreateVectorStore(ctx, vs, files, jobs...))
}

func (s *diesAfterCommit) RenewIdempotencyKey(ctx context.Context, key string, held, until time.Time) (bool, error) {
	if s.dead.Load() {
		return false, errReplicaDead
	}
	return s.Store.RenewIdempotencyKey(ctx, key, held, until)
}

// intentCase is a keyed creating request that names its object in its
// claim (runIntent): its kind (as creations counts it), path, body and
// another body, and the path that reads the object back.
type intentCase struct {
	kind        string
	path        func(fx intentFixture) string // the create's path
	body, other func(fx intentFixture) string // the create's body, and another
	get         func(fx intentFixture, id string) string
}

// intentCases are createMessage, createThread, createAssistant,
// createVectorStore and createVectorStoreFileBatch.
var intentCases = []intentCase{
	{kind: "message",
		path:  func(fx intentFixture) string { return "/v1/threads/" + fx.thread + "/messages" },
		body:  literal(`{"role":"user","content":"hello"}`),
		other: literal(`{"role":"user","content":"bye"}`),
		get:   func(fx intentFixture, id string) string { return "/v1/threads/" + fx.thread + "/messages/" + id }},
	{kind: "thread",
		path:  literal("/v1/threads"),
		body:  literal(`{"messages":[{"role":"user","content":"hello"}]}`),
		other: literal(`{}`),
		get:   func(_ intentFixture, id string) string { return "/v1/threads/" + id }},
	{kind: "assistant",
		path:  literal("/v1/assistants"),
		body:  literal(`{"model":"m","name":"a"}`),
		other: literal(`{"model":"m","name":"b"}`),
		get:   func(_ intentFixture, id string) string { return "/v1/assistants/" + id }},
	{kind: "vector_store",
		path:  literal("/v1/vector_stores"),
		body:  literal(`{"name":"a"}`),
		other: literal(`{"name":"b"}`),
		get:   func(_ intentFixture, id string) string { return "/v1/vector_stores/" + id }},
	{kind: "file_batch",
		path:  func(fx intentFixture) string { return "/v1/vector_stores/" + fx.vectorStore + "/file_batches" },
		body:  func(fx intentFixture) string { return `{"file_ids":["` + fx.file + `"]}` },
		other: func(fx intentFixture) string { return `{"file_ids":["` + fx.file + `"],"attributes":{"k":"v"}}` },
		get: func(fx intentFixture, id string) string {
			return "/v1/vector_stores/" + fx.vectorStore + "/file_batches/" + id
		}},
}

// TestRetryAfterCrashBetweenCreateAndAnswer: see above, for each of the
// five requests.
func TestRetryAfterCrashBetweenCreateAndAnswer(t *testing.T) {
	cases := intentCases
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				shared := &creations{Store: memory.New(), ids: map[string][]string{}}
				a := &diesAfterCommit{killable: killable{Store: shared}}
				srvA := server.New(server.WithStore(a), server.WithStepDelay(0))
				srvB := server.New(server.WithStore(shared), server.WithStepDelay(0))
				t.Cleanup(func() { _ = srvA.Close(); _ = srvB.Close() })
				f := &leaseFixture{t: t}
				fx := newIntentFixture(t, f, srvB)

				// A commits the keyed create and dies before answering: the
				// id of what it made, and when it died.
				crash := func(key string) (string, time.Time) {
					before := len(shared.of(tc.kind))
					a.dead.Store(false)
					a.armed.Store(true)
					code, out, _ := f.post(srvA, tc.path(fx), tc.body(fx), key)
					a.armed.Store(false)
					require.True(t, a.dead.Load(), "A never committed: %d %s", code, out)
					made := shared.of(tc.kind)
					require.Len(t, made, before+1)
					return made[before], time.Now()
				}
				// retry is the client's retry on B: answered with A's object,
				// at once.
				retry := func(key, id string, died time.Time) {
					before := len(shared.of(tc.kind))
					synctest.Wait() // the work A's commit started (a batch's files) is done: the object is steady
					code, out, h := f.post(srvB, tc.path(fx), tc.body(fx), key)
					waited := time.Since(died)
					require.Equal(t, http.StatusOK, code, out)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.Equal(t, "application/json", h.Get("Content-Type"))
					assert.Less(t, waited, server.IdempotencyLease, "the retry waited for the dead claim")
					var got struct{ ID string }
					require.NoError(t, json.Unmarshal([]byte(out), &got))
					assert.Equal(t, id, got.ID, "A's %s", tc.kind)
					assert.Len(t, shared.of(tc.kind)[before:], 0, "the retry made a %s", tc.kind)
					w := httptest.NewRecorder()
					srvB.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.get(fx, id), nil))
					require.Equal(t, http.StatusOK, w.Code, w.Body.String())
					assert.Equal(t, w.Body.String(), out, "the object as its handler answers it")
				}

				id, died := crash("crash-1")
				retry("crash-1", id, died)

				// The same key with another request, while the claim is
				// pending: refused at once (and nothing made); the retry is
				// then answered as above.
				id, died = crash("crash-2")
				before := len(shared.of(tc.kind))
				code, out, _ := f.post(srvB, tc.path(fx), tc.other(fx), "crash-2")
				assert.Equal(t, http.StatusConflict, code, out)
				assert.Contains(t, out, "idempotency_key_reused")
				assert.Less(t, time.Since(died), server.IdempotencyLease, "the refusal waited for the dead claim")
				assert.Len(t, shared.of(tc.kind)[before:], 0)
				retry("crash-2", id, died)

				// A retry that comes after the dead claim's lease claims the
				// key over the lapsed claim, and is answered with A's object
				// too (lapsedCreate), which later repeats replay.
				id, _ = crash("crash-3")
				time.Sleep(server.IdempotencyLease + time.Second)
				synctest.Wait()
				before = len(shared.of(tc.kind))
				code, out, h := f.post(srvB, tc.path(fx), tc.body(fx), "crash-3")
				require.Equal(t, http.StatusOK, code, out)
				assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
				var got struct{ ID string }
				require.NoError(t, json.Unmarshal([]byte(out), &got))
				assert.Equal(t, id, got.ID, "A's %s, after the lease", tc.kind)
				assert.Len(t, shared.of(tc.kind)[before:], 0, "the retry after the lease made a %s", tc.kind)
				code, again, _ := f.post(srvB, tc.path(fx), tc.body(fx), "crash-3")
				require.Equal(t, http.StatusOK, code, again)
				assert.JSONEq(t, out, again)

				// The same, the retry coming after the replicas swept the
				// expired records (every minute) since the lease lapsed:
				// the lapsed claim is kept (for the idempotency TTL).
				id, _ = crash("crash-4")
				time.Sleep(2*time.Minute + server.IdempotencyLease)
				synctest.Wait()
				before = len(shared.of(tc.kind))
				code, out, _ = f.post(srvB, tc.path(fx), tc.body(fx), "crash-4")
				require.Equal(t, http.StatusOK, code, out)
				require.NoError(t, json.Unmarshal([]byte(out), &got))
				assert.Equal(t, id, got.ID, "A's %s, after a sweep", tc.kind)
				assert.Len(t, shared.of(tc.kind)[before:], 0, "the retry after a sweep made a %s", tc.kind)
			})
		})
	}
}
