package server_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
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
			require.Len(t, f.files(), 1, "A's file")
			f.clock.advance(server.IdempotencyLease + time.Second)
			code, out := req(f.srvB, "k")
			assert.Equal(t, http.StatusOK, code, "the same request retried after A died: %s", out)
			code, out = req(f.srvB, "k") // the SDK retries 409s
			t.Logf("second retry: %d; files now: %v", code, f.files())
			assert.Len(t, f.files(), 1, "one file for the key")
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
