package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
)

// Keyed uploads retried after their claimant died, in the ways that lose
// track of the file unless the key's records keep naming it (see
// idemupload_test.go for the fixture).

// TestKeyedUploadFieldsAfterFileCrashRetried: the expiry comes after the
// file's bytes; A stores the file and dies. The same request retried
// after A's lease is answered with A's file (stored once, with its
// expiry), and so is the retry after that: one file in all.
func TestKeyedUploadFieldsAfterFileCrashRetried(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			f := newUploadFixture(t, open(t))
			req := func(srv *server.Server, key string) (int, string) {
				var b bytes.Buffer
				mw := multipart.NewWriter(&b)
				require.NoError(t, mw.SetBoundary("fixed-boundary-so-a-retry-is-the-same-bytes"))
				require.NoError(t, mw.WriteField("purpose", "assistants"))
				fw, err := mw.CreateFormFile("file", "late.txt")
				require.NoError(t, err)
				_, _ = fw.Write(f.content)
				require.NoError(t, mw.WriteField("expires_after[anchor]", "created_at"))
				require.NoError(t, mw.WriteField("expires_after[seconds]", "7200"))
				require.NoError(t, mw.Close())
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/files", &b)
				r.Header.Set("Content-Type", mw.FormDataContentType())
				r.Header.Set("Idempotency-Key", key)
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, r)
				return w.Code, w.Body.String()
			}
			f.a.mode.Store(uploadDiesAfter) // A stores the file, then dies
			_, _ = req(f.srvA, "k")
			require.True(t, f.a.dead.Load())
			made := f.files()
			require.Len(t, made, 1, "A's file")
			f.clock.advance(server.IdempotencyLease + time.Second)
			code, out := req(f.srvB, "k")
			require.Equal(t, http.StatusOK, code, "the same request retried after A died: %s", out)
			assert.Equal(t, made[0], fileID(t, out), "answered with A's file")
			var fl struct {
				CreatedAt int `json:"created_at"`
				ExpiresAt int `json:"expires_at"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &fl))
			assert.Equal(t, 7200, fl.ExpiresAt-fl.CreatedAt, "stored with its expiry")
			code, again := req(f.srvB, "k")
			require.Equal(t, http.StatusOK, code, again)
			assert.JSONEq(t, out, again)
			assert.Equal(t, made, f.files(), "one file for the key")
		})
	}
}

// TestKeyedUploadLapsedClaimOutlivesSweep: A stores the file and dies; a
// replica's sweep of expired records (every minute) runs after A's lease
// lapsed and before the retry, which is still answered with A's file.
func TestKeyedUploadLapsedClaimOutlivesSweep(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			f := newUploadFixture(t, st)
			id := f.crash(uploadDiesAfter, "k")
			f.clock.advance(server.IdempotencyLease + time.Second)
			require.NoError(t, f.srvB.SweepIdempotency(t.Context()))
			code, out, _ := f.upload(f.srvB, f.content, "k")
			require.Equal(t, http.StatusOK, code, out)
			assert.Equal(t, id, fileID(t, out), "answered with A's file")
			assert.Len(t, f.files(), 1, "one file for the key")
		})
	}
}

// TestKeyedUploadForgottenTakeoverKeepsFile: after A's lease, a request
// claims the key over A's lapsed claim and gets an answer that is not
// remembered (another body: 409). The client's retry after it is still
// answered with A's file: one file in all.
func TestKeyedUploadForgottenTakeoverKeepsFile(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			f := newUploadFixture(t, open(t))
			id := f.crash(uploadDiesAfter, "k")
			f.clock.advance(server.IdempotencyLease + time.Second)
			code, out, _ := f.upload(f.srvB, append([]byte("other "), f.content...), "k")
			require.Equal(t, http.StatusConflict, code, out)
			code, out, _ = f.upload(f.srvB, f.content, "k")
			require.Equal(t, http.StatusOK, code, out)
			assert.Equal(t, id, fileID(t, out), "answered with A's file")
			assert.Len(t, f.files(), 1, "one file for the key")
		})
	}
}

// droppedBody is a request body whose connection drops before its end.
type droppedBody struct {
	r io.Reader
}

func (f *droppedBody) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF // the client's connection dropped
	}
	return n, err
}

// TestKeyedUploadDroppedTakeoverKeepsFile: the same, the takeover being
// the client's own retry whose connection drops mid-body.
func TestKeyedUploadDroppedTakeoverKeepsFile(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			f := newUploadFixture(t, open(t))
			id := f.crash(uploadDiesAfter, "k")
			f.clock.advance(server.IdempotencyLease + time.Second)
			full := keyedUpload(t, f.content, "k")
			all, _ := io.ReadAll(full.Body)
			r := httptest.NewRequest(http.MethodPost, "/v1/files", &droppedBody{r: bytes.NewReader(all[:len(all)/2])})
			r.Header = full.Header.Clone()
			w := httptest.NewRecorder()
			f.srvB.ServeHTTP(w, r)
			t.Logf("dropped retry: %d %s", w.Code, w.Body.String())
			code, out, _ := f.upload(f.srvB, f.content, "k")
			require.Equal(t, http.StatusOK, code, out)
			assert.Equal(t, id, fileID(t, out), "answered with A's file")
			assert.Len(t, f.files(), 1, "one file for the key")
		})
	}
}

// renewsFirst is a replica's view of the shared store in which the
// claimant of a key renews its lease right before the replica records an
// answer for it (the claimant is alive).
type renewsFirst struct {
	store.Store
}

func (s *renewsFirst) CompleteIdempotencyKey(ctx context.Context, rec store.IdempotencyRecord, held time.Time) (bool, error) {
	if _, err := s.Store.RenewIdempotencyKey(ctx, rec.Key, held, held.Add(server.IdempotencyLease)); err != nil {
		return false, err
	}
	return s.Store.CompleteIdempotencyKey(ctx, rec, held)
}

// deletesOnOpen is a replica's view of the shared store in which the file
// a request reads back is deleted first (once armed), or while it is read
// (midRead).
type deletesOnOpen struct {
	store.Store
	armed, midRead atomic.Bool
}

func (s *deletesOnOpen) OpenFile(ctx context.Context, project, id string) (io.ReadCloser, error) {
	if !s.armed.Swap(false) {
		return s.Store.OpenFile(ctx, project, id)
	}
	if !s.midRead.Load() {
		_, _ = s.Store.DeleteFile(ctx, project, id)
		return s.Store.OpenFile(ctx, project, id)
	}
	rc, err := s.Store.OpenFile(ctx, project, id)
	if err == nil {
		_, _ = s.Store.DeleteFile(ctx, project, id)
	}
	return rc, err
}

// replica starts another server on the fixture's store (st, as the
// replica sees it) and clock.
func (f *uploadFixture) replica(st store.Store) *server.Server {
	srv := server.New(server.WithStore(st), server.WithStepDelay(0), func(o *server.Options) { o.Now = f.clock.Now })
	f.t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// TestKeyedUploadRepeatAnsweredOnceRecorded: A stores the file and dies;
// the retry on C, while A's claim is pending, finds the file, but A
// renews its lease before C records the file as the key's answer (A is
// alive after all, and records its own): C's client is told to retry (409
// idempotency_key_in_flux), not given an answer the store does not keep.
func TestKeyedUploadRepeatAnsweredOnceRecorded(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			f := newUploadFixture(t, st)
			f.crash(uploadDiesAfter, "k")
			c := f.replica(&renewsFirst{Store: st})
			code, out, _ := f.upload(c, f.content, "k")
			assert.Equal(t, http.StatusConflict, code, out)
			assert.Contains(t, out, "idempotency_key_in_flux")
			assert.Len(t, f.files(), 1)
		})
	}
}

// TestKeyedUploadOfDeletedFile: the file a lapsed or pending claim names
// is deleted while a retry compares its body with it. Before the retry's
// body is read (after A's lease), the retry uploads the file itself;
// while it is read (A's claim pending), the client is told to retry (409
// idempotency_key_in_flux). Neither is a 409 idempotency_key_reused: the
// request is the same.
func TestKeyedUploadOfDeletedFile(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			f := newUploadFixture(t, st)
			del := &deletesOnOpen{Store: st}
			c := f.replica(del)

			del.midRead.Store(true)
			del.armed.Store(true)
			f.crash(uploadDiesAfter, "pending")
			code, out, _ := f.upload(c, f.content, "pending")
			assert.Equal(t, http.StatusConflict, code, out)
			assert.Contains(t, out, "idempotency_key_in_flux")
			assert.Empty(t, f.files())

			id := f.crash(uploadDiesAfter, "lapsed")
			f.clock.advance(server.IdempotencyLease + time.Second)
			del.midRead.Store(false)
			del.armed.Store(true)
			code, out, _ = f.upload(c, f.content, "lapsed")
			require.Equal(t, http.StatusOK, code, out)
			mine := fileID(t, out)
			assert.NotEqual(t, id, mine)
			assert.Equal(t, []string{mine}, f.files())
			code, again, h := f.upload(c, f.content, "lapsed")
			require.Equal(t, http.StatusOK, code, again)
			assert.Equal(t, "true", h.Get("Idempotent-Replayed"))
			assert.Equal(t, mine, fileID(t, again))
		})
	}
}

// diesOnOpen is a replica's view of the shared store in which the replica
// dies when it reads a stored file back: nothing it writes after that
// reaches the store (no renewal, no answer, no dropped claim).
type diesOnOpen struct {
	killable
}

func (s *diesOnOpen) OpenFile(context.Context, string, string) (io.ReadCloser, error) {
	s.dead.Store(true)
	return nil, errReplicaDead
}

func (s *diesOnOpen) RenewIdempotencyKey(ctx context.Context, key string, held, until time.Time) (bool, error) {
	if s.dead.Load() {
		return false, errReplicaDead
	}
	return s.Store.RenewIdempotencyKey(ctx, key, held, until)
}

// TestKeyedUploadCrashedTakeoverKeepsFile: after A's lease, the client's
// retry on D claims the key over A's lapsed claim, and D dies while it
// compares the upload with A's file, leaving its own claim. The retry
// after D's lease is answered with A's file: D's claim named it from the
// start (one file in all).
func TestKeyedUploadCrashedTakeoverKeepsFile(t *testing.T) {
	for name, open := range uploadStores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			f := newUploadFixture(t, st)
			id := f.crash(uploadDiesAfter, "k")
			f.clock.advance(server.IdempotencyLease + time.Second)
			d := &diesOnOpen{killable: killable{Store: st}}
			_, _, _ = f.upload(f.replica(d), f.content, "k")
			require.True(t, d.dead.Load(), "D did not die")
			f.clock.advance(server.IdempotencyLease + time.Second)
			code, out, _ := f.upload(f.srvB, f.content, "k")
			require.Equal(t, http.StatusOK, code, out)
			assert.Equal(t, id, fileID(t, out), "answered with A's file")
			assert.Equal(t, []string{id}, f.files(), "one file for the key")
		})
	}
}
