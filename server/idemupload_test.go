package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
)

// Keyed uploads whose claimant dies or loses its lease (idemupload.go):
// replica A claims a keyed createFile and, in its store's CreateFile,
// dies after the file is stored (before the answer is recorded under the
// key), dies before it is stored, or hangs while its lease lapses. The
// client's retry goes to replica B. There must be one file for the key,
// whichever request stored it: the retry answers with A's file (at once
// while A's claim is pending, or after claiming the key over the lapsed
// claim) or stores the file itself, and a file A stores after losing its
// claim never appears. On memory, SQLite and PostgreSQL.
//
// The replicas share a fake clock: a lease lapses when the test moves it
// past IdempotencyLease (A's renewals never reach the store).

// uploadClock is the replicas' clock.
type uploadClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *uploadClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *uploadClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// What replica A's next upload does in its store (uploadReplica.mode).
const (
	uploadDiesAfter  = iota + 1 // stores the file, then A dies
	uploadDiesBefore            // A dies before the file is stored
	uploadHangs                 // waits at the end of the bytes until gate is closed, then stores
)

// uploadReplica is replica A's view of the shared store (see above). Its
// renewals never reach the store.
type uploadReplica struct {
	killable
	mode    atomic.Int32
	entered chan struct{} // receives when a hanging upload has read its bytes
	gate    chan struct{}
}

func (s *uploadReplica) CreateFile(ctx context.Context, f store.File, body io.Reader, maxBytes int64, finish func(*store.File) error) (store.File, error) {
	return s.upload(body, func(body io.Reader) (store.File, error) { return s.Store.CreateFile(ctx, f, body, maxBytes, finish) })
}

func (s *uploadReplica) CreateFileClaimed(ctx context.Context, f store.File, body io.Reader, maxBytes int64, finish func(*store.File) error, c store.Claim) (store.File, error) {
	return s.upload(body, func(body io.Reader) (store.File, error) {
		return s.Store.CreateFileClaimed(ctx, f, body, maxBytes, finish, c)
	})
}

func (s *uploadReplica) upload(body io.Reader, create func(io.Reader) (store.File, error)) (store.File, error) {
	switch s.mode.Swap(0) {
	case uploadDiesBefore:
		s.dead.Store(true)
		return store.File{}, errReplicaDead
	case uploadDiesAfter:
		f, err := create(body)
		if err == nil {
			s.dead.Store(true)
			return store.File{}, errReplicaDead
		}
		return f, err
	case uploadHangs:
		return create(&gatedEOF{r: body, entered: s.entered, gate: s.gate})
	}
	return create(body)
}

func (s *uploadReplica) RenewIdempotencyKey(context.Context, string, time.Time, time.Time) (bool, error) {
	return false, errReplicaDead
}

// gatedEOF passes r through and holds its end until gate is closed.
type gatedEOF struct {
	r       io.Reader
	entered chan<- struct{}
	gate    <-chan struct{}
	once    sync.Once
}

func (g *gatedEOF) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err == io.EOF {
		g.once.Do(func() { g.entered <- struct{}{} })
		<-g.gate
	}
	return n, err
}

// claimWatch is replica B's view of the shared store: it says on polled
// when B finds the key claimed by another request.
type claimWatch struct {
	store.Store
	polled chan struct{}
}

func (s *claimWatch) ClaimIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, now time.Time) (store.IdempotencyRecord, bool, error) {
	old, claimed, err := s.Store.ClaimIdempotencyKey(ctx, rec, now)
	if err == nil && !claimed {
		select {
		case s.polled <- struct{}{}:
		default:
		}
	}
	return old, claimed, err
}

type uploadFixture struct {
	t       *testing.T
	clock   *uploadClock
	a       *uploadReplica
	b       *claimWatch
	srvA    *server.Server
	srvB    *server.Server
	content []byte
}

func newUploadFixture(t *testing.T, st store.Store) *uploadFixture {
	f := &uploadFixture{t: t, clock: &uploadClock{now: time.Unix(1_800_000_000, 0)},
		content: bytes.Repeat([]byte("keyed upload "), 40_000)} // several chunks
	f.a = &uploadReplica{killable: killable{Store: st}, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	f.b = &claimWatch{Store: st, polled: make(chan struct{}, 1)}
	clock := func(o *server.Options) { o.Now = f.clock.Now }
	f.srvA = server.New(server.WithStore(f.a), server.WithStepDelay(0), clock)
	f.srvB = server.New(server.WithStore(f.b), server.WithStepDelay(0), clock)
	t.Cleanup(func() {
		_ = f.srvA.Close()
		_ = f.srvB.Close()
	})
	return f
}

// upload sends a keyed upload of content to srv; a request that waits
// longer than a few seconds (for a lease that lapses only when the test
// moves the clock) gives up and answers 0.
func (f *uploadFixture) upload(srv *server.Server, content []byte, key string) (int, string, http.Header) {
	ctx, cancel := context.WithTimeout(f.t.Context(), 10*time.Second)
	defer cancel()
	r := keyedUpload(f.t, content, key).WithContext(ctx)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Body.Len() == 0 {
		return 0, "", w.Result().Header
	}
	return w.Code, w.Body.String(), w.Result().Header
}

// files lists the files (on B).
func (f *uploadFixture) files() []string {
	w := httptest.NewRecorder()
	f.srvB.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/files?limit=100", nil))
	require.Equal(f.t, http.StatusOK, w.Code, w.Body.String())
	var page gen.ListFilesResponse
	require.NoError(f.t, json.Unmarshal(w.Body.Bytes(), &page))
	var ids []string
	for _, fl := range page.Data {
		ids = append(ids, fl.Id)
	}
	return ids
}

func fileID(t *testing.T, body string) string {
	t.Helper()
	var fl gen.OpenAIFile
	require.NoError(t, json.Unmarshal([]byte(body), &fl), body)
	require.NotEmpty(t, fl.Id, body)
	return fl.Id
}

// crash has A take the key and die as mode says; it returns the file A
// stored, if any.
func (f *uploadFixture) crash(mode int32, key string) string {
	before := f.files()
	f.a.dead.Store(false)
	f.a.mode.Store(mode)
	_, _, _ = f.upload(f.srvA, f.content, key)
	require.True(f.t, f.a.dead.Load(), "A did not die")
	made := f.files()
	if mode == uploadDiesBefore {
		require.Equal(f.t, before, made)
		return ""
	}
	require.Len(f.t, made, len(before)+1)
	for _, id := range made {
		if !contains(before, id) {
			return id
		}
	}
	return ""
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// uploadStores is memory, SQLite and (when reachable) PostgreSQL.
func uploadStores(t *testing.T) map[string]func(t *testing.T) store.Store {
	m := sqlStores(t)
	m["memory"] = func(*testing.T) store.Store { return memory.New() }
	return m
}

// TestKeyedUploadRetryAfterCrash: A stores the file and dies before
// recording the answer. The retry on B is answered with A's file, at once
// while A's claim is pending (Idempotent-Replayed), and also when it comes
// after A's lease lapsed (it claims the key over A's claim); the same key
// with another file is refused; one file in all. Without the upload's
// intent, the retry waits for the dead claim (and gives up here), and
// after the lease it uploads a second file.
func TestKeyedUploadRetryAfterCrash(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			f := newUploadFixture(t, open(t))
			for _, tc := range []struct {
				name   string
				lapsed bool
			}{{name: "pending claim"}, {name: "lapsed claim", lapsed: true}} {
				t.Run(tc.name, func(t *testing.T) {
					key := "crash-after-store-" + tc.name
					before := f.files()
					id := f.crash(uploadDiesAfter, key)
					if tc.lapsed {
						f.clock.advance(server.IdempotencyLease + time.Second)
					} else {
						// Another file with the key: refused, nothing stored.
						code, out, _ := f.upload(f.srvB, append([]byte("other "), f.content...), key)
						assert.Equal(t, http.StatusConflict, code, out)
						assert.Contains(t, out, "idempotency_key_reused")
					}
					code, out, h := f.upload(f.srvB, f.content, key)
					require.Equal(t, http.StatusOK, code, "the retry was not answered: %s", out)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.Equal(t, id, fileID(t, out), "the retry is answered with A's file")
					assert.Len(t, f.files(), len(before)+1, "one file for the key")

					// The retry recorded the answer: a repeat, after any
					// lease, is replayed.
					f.clock.advance(server.IdempotencyLease + time.Second)
					code, again, h := f.upload(f.srvB, f.content, key)
					require.Equal(t, http.StatusOK, code, again)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.JSONEq(t, out, again)
					code, out, _ = f.upload(f.srvB, append([]byte("other "), f.content...), key)
					assert.Equal(t, http.StatusConflict, code, out)
					assert.Contains(t, out, "idempotency_key_reused")
					assert.Len(t, f.files(), len(before)+1, "one file for the key")
				})
			}
		})
	}
}

// TestKeyedUploadRetryAfterCrashBeforeStore: A dies before the file is
// stored. The retry on B, which finds A's claim pending and polls it
// until its lease lapses (the probe path) or comes after it lapsed,
// uploads the file itself: one file, B's, which repeats are answered with.
func TestKeyedUploadRetryAfterCrashBeforeStore(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			f := newUploadFixture(t, open(t))
			for _, tc := range []struct {
				name   string
				lapsed bool
			}{{name: "pending claim"}, {name: "lapsed claim", lapsed: true}} {
				t.Run(tc.name, func(t *testing.T) {
					key := "crash-before-store-" + tc.name
					before := f.files()
					f.crash(uploadDiesBefore, key)
					var code int
					var out string
					if tc.lapsed {
						f.clock.advance(server.IdempotencyLease + time.Second)
						code, out, _ = f.upload(f.srvB, f.content, key)
					} else {
						done := make(chan struct{})
						go func() {
							defer close(done)
							code, out, _ = f.upload(f.srvB, f.content, key)
						}()
						select {
						case <-f.b.polled: // B found A's claim pending
						case <-done:
							t.Fatalf("the retry did not wait for A's claim: %d %s", code, out)
						}
						f.clock.advance(server.IdempotencyLease + time.Second)
						<-done
					}
					require.Equal(t, http.StatusOK, code, "the retry was not answered: %s", out)
					id := fileID(t, out)
					after := f.files()
					assert.Len(t, after, len(before)+1, "one file for the key")
					assert.Contains(t, after, id)

					code, again, h := f.upload(f.srvB, f.content, key)
					require.Equal(t, http.StatusOK, code, again)
					assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
					assert.Equal(t, id, fileID(t, again))
				})
			}
		})
	}
}

// TestKeyedUploadOfLostClaimNeverAppears: A is alive but its lease lapses
// while it uploads (its renewals do not reach the store); the retry on B
// takes the key over and uploads the file. When A's upload then ends, its
// file must not appear (its write checks the claim, which is B's): A's
// client gets a 409 it retries (idempotency_key_in_flux), and there is one
// file, B's. Without the check, A's file appears too.
func TestKeyedUploadOfLostClaimNeverAppears(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			f := newUploadFixture(t, open(t))
			const key = "lost-claim"
			f.a.mode.Store(uploadHangs)
			var codeA int
			var outA string
			done := make(chan struct{})
			go func() {
				defer close(done)
				codeA, outA, _ = f.upload(f.srvA, f.content, key)
			}()
			defer func() { <-done }()
			gate := sync.OnceFunc(func() { close(f.a.gate) })
			defer gate()
			select {
			case <-f.a.entered: // A read the bytes; its write waits
			case <-done:
				t.Fatalf("A answered: %d %s", codeA, outA)
			}
			f.clock.advance(server.IdempotencyLease + time.Second)
			code, out, h := f.upload(f.srvB, f.content, key)
			require.Equal(t, http.StatusOK, code, out)
			assert.Empty(t, h.Get("Idempotent-Replayed"), "B uploaded the file")
			id := fileID(t, out)

			gate()
			<-done
			assert.Equal(t, http.StatusConflict, codeA, outA)
			assert.Contains(t, outA, "idempotency_key_in_flux")
			assert.Equal(t, []string{id}, f.files(), "one file for the key: B's")

			code, again, h := f.upload(f.srvA, f.content, key)
			require.Equal(t, http.StatusOK, code, again)
			assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
			assert.Equal(t, id, fileID(t, again))
		})
	}
}

// TestKeyedUploadFieldsAfterFile: a keyed upload whose expiry fields come
// after the file's bytes (CreateFile stores the bytes hidden and the
// fields with the write that makes the file visible) leaves one file,
// with its expiry, which the key's claim names: a repeat is replayed with
// it, also after A died having stored it.
func TestKeyedUploadFieldsAfterFile(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			f := newUploadFixture(t, open(t))
			req := func(srv *server.Server, key string) (int, string, http.Header) {
				var b bytes.Buffer
				mw := multipart.NewWriter(&b)
				require.NoError(t, mw.SetBoundary("fixed-boundary-so-a-retry-is-the-same-bytes"))
				require.NoError(t, mw.WriteField("purpose", "assistants"))
				fw, err := mw.CreateFormFile("file", "late.txt")
				require.NoError(t, err)
				_, err = fw.Write(f.content)
				require.NoError(t, err)
				require.NoError(t, mw.WriteField("expires_after[anchor]", "created_at"))
				require.NoError(t, mw.WriteField("expires_after[seconds]", "7200"))
				require.NoError(t, mw.Close())
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // see upload
				defer cancel()
				r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/files", &b)
				r.Header.Set("Content-Type", mw.FormDataContentType())
				r.Header.Set("Idempotency-Key", key)
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, r)
				if w.Body.Len() == 0 {
					return 0, "", w.Result().Header
				}
				return w.Code, w.Body.String(), w.Result().Header
			}
			expiry := func(body string) int {
				var fl gen.OpenAIFile
				require.NoError(t, json.Unmarshal([]byte(body), &fl), body)
				require.NotNil(t, fl.ExpiresAt, body)
				return *fl.ExpiresAt - fl.CreatedAt
			}

			code, out, _ := req(f.srvA, "late-fields")
			require.Equal(t, http.StatusOK, code, out)
			assert.Equal(t, 7200, expiry(out))
			assert.Equal(t, []string{fileID(t, out)}, f.files(), "one file: the final copy")
			code, again, h := req(f.srvB, "late-fields")
			require.Equal(t, http.StatusOK, code, again)
			assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
			assert.JSONEq(t, out, again)

			// A stores the file and dies: the retry gets it at once.
			before := f.files()
			f.a.dead.Store(false)
			f.a.mode.Store(uploadDiesAfter)
			_, _, _ = req(f.srvA, "late-fields-crash")
			require.True(t, f.a.dead.Load(), "A did not die")
			made := f.files()
			require.Len(t, made, len(before)+1)
			code, out, h = req(f.srvB, "late-fields-crash")
			require.Equal(t, http.StatusOK, code, out)
			assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
			assert.Equal(t, 7200, expiry(out))
			assert.Contains(t, made, fileID(t, out))
			assert.Len(t, f.files(), len(before)+1, "one file for the key")
		})
	}
}
