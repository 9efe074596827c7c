package helpers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// filesUploadPart is what a fake server read from one multipart upload.
type filesUploadPart struct {
	fields      map[string]string
	filename    string
	contentType string
	content     []byte
}

// filesParseUpload reads a multipart/form-data upload body.
func filesParseUpload(contentType string, body io.Reader) (*filesUploadPart, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		return nil, fmt.Errorf("content type %q: %v", contentType, err)
	}
	mr := multipart.NewReader(body, params["boundary"])
	up := &filesUploadPart{fields: map[string]string{}}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return up, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		if p.FormName() == "file" {
			up.filename, up.contentType, up.content = p.FileName(), p.Header.Get("Content-Type"), b
			continue
		}
		up.fields[p.FormName()] = string(b)
	}
}

func filesWriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func filesFileJSON(id, name string, size int) map[string]any {
	return map[string]any{"id": id, "object": "file", "bytes": size, "created_at": 1, "filename": name,
		"purpose": "assistants", "status": "processed"}
}

func filesTestClient(t *testing.T, srv *httptest.Server, retries int) *assistants.Client {
	t.Helper()
	c, err := assistants.New(assistants.WithBaseURL(srv.URL+"/v1"), assistants.WithAPIKey("sk-test"),
		assistants.WithMaxRetries(retries), assistants.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	return c
}

// filesOnlyReader hides every method of r but Read (no Seek, no Name).
type filesOnlyReader struct{ r io.Reader }

func (o filesOnlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestUploadFileMultipart checks the multipart request UploadFile sends for
// each kind of source.
func TestUploadFileMultipart(t *testing.T) {
	dir := t.TempDir()
	content := []byte("hello, files\n")
	path := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(path, content, 0o600))

	type seen struct {
		part          *filesUploadPart
		contentLength int64
		chunked       bool
		path          string
	}
	var mu sync.Mutex
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up, err := filesParseUpload(r.Header.Get("Content-Type"), r.Body)
		if err != nil {
			filesWriteJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": err.Error()}})
			return
		}
		mu.Lock()
		got = seen{up, r.ContentLength, filesContains(r.TransferEncoding, "chunked"), r.URL.Path}
		mu.Unlock()
		filesWriteJSON(w, http.StatusOK, filesFileJSON("file-1", up.filename, len(up.content)))
	}))
	defer srv.Close()
	c := filesTestClient(t, srv, 0)

	osFile, err := os.Open(path)
	require.NoError(t, err)
	defer osFile.Close()
	offset := bytes.NewReader(append([]byte("SKIP"), content...))
	_, err = offset.Seek(4, io.SeekStart)
	require.NoError(t, err)

	cases := []struct {
		name            string
		src             FileSource
		opts            *UploadOptions
		wantName, wantC string
		wantFields      map[string]string
		knownLength     bool
	}{
		{name: "path", src: FileSource{Path: path}, wantName: "notes.txt", wantC: "text/plain; charset=utf-8",
			wantFields: map[string]string{"purpose": "assistants"}, knownLength: true},
		{name: "seekable reader at an offset", src: FileSource{Reader: offset, Filename: "data.json"},
			opts: &UploadOptions{Purpose: gen.CreateFileRequestPurposeUserData}, wantName: "data.json", wantC: "application/json",
			wantFields: map[string]string{"purpose": "user_data"}, knownLength: true},
		{name: "plain reader", src: FileSource{Reader: filesOnlyReader{bytes.NewReader(content)}, Filename: "x.bin", ContentType: "application/x-custom"},
			opts:     &UploadOptions{ExpiresAfter: &gen.FileExpirationAfter{Seconds: 3600}},
			wantName: "x.bin", wantC: "application/x-custom",
			wantFields: map[string]string{"purpose": "assistants", "expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"}},
		{name: "os.File names itself", src: FileSource{Reader: osFile}, wantName: "notes.txt", wantC: "text/plain; charset=utf-8",
			wantFields: map[string]string{"purpose": "assistants"}, knownLength: true},
		{name: "awkward file name", src: FileSource{Reader: bytes.NewReader(content), Filename: `a "quoted" naïve\name.md`},
			wantName: `a "quoted" naïve\name.md`, wantC: "text/markdown; charset=utf-8",
			wantFields: map[string]string{"purpose": "assistants"}, knownLength: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := UploadFile(t.Context(), c, tc.src, tc.opts)
			require.NoError(t, err)
			assert.Equal(t, "file-1", f.Id)
			mu.Lock()
			g := got
			mu.Unlock()
			assert.Equal(t, "/v1/files", g.path)
			assert.Equal(t, content, g.part.content)
			assert.Equal(t, tc.wantName, g.part.filename)
			assert.Equal(t, tc.wantC, g.part.contentType)
			assert.Equal(t, tc.wantFields, g.part.fields)
			if tc.knownLength {
				assert.Positive(t, g.contentLength, "Content-Length sent")
				assert.False(t, g.chunked)
			} else {
				assert.Equal(t, int64(-1), g.contentLength)
				assert.True(t, g.chunked, "unknown length goes chunked")
			}
		})
	}
}

func filesContains(ss []string, s string) bool {
	for _, v := range ss {
		if v == s {
			return true
		}
	}
	return false
}

// TestUploadFileBadInput checks that bad filesSources fail before any request.
func TestUploadFileBadInput(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		filesWriteJSON(w, http.StatusOK, filesFileJSON("file-1", "x", 1))
	}))
	defer srv.Close()
	c := filesTestClient(t, srv, 0)
	dir := t.TempDir()
	cases := []struct {
		name   string
		client FileUploader
		src    FileSource
		want   string
	}{
		{"nil client", nil, FileSource{Path: "x"}, "nil client"},
		{"neither", c, FileSource{}, "neither Path nor Reader"},
		{"both", c, FileSource{Path: "x", Reader: strings.NewReader("")}, "both Path and Reader"},
		{"reader without name", c, FileSource{Reader: strings.NewReader("abc")}, "needs a Filename"},
		{"missing path", c, FileSource{Path: filepath.Join(dir, "nope.txt")}, "no such file"},
		{"directory", c, FileSource{Path: dir}, "not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := UploadFile(t.Context(), tc.client, tc.src, nil)
			assert.Nil(t, f)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	assert.Zero(t, requests.Load())
}

// filesPatternReader yields n deterministic bytes without allocating.
type filesPatternReader struct {
	n, off int64
}

func (p *filesPatternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := int(min(int64(len(b)), p.n-p.off))
	for i := range k {
		b[i] = byte((p.off + int64(i)) * 31 >> 3)
	}
	p.off += int64(k)
	return k, nil
}

// TestUploadFileStreamsLargeFile uploads 50 MB from a reader and from a
// path to a server that hashes and discards the body, and checks that the
// memory allocated during the upload stays far below the file's size.
func TestUploadFileStreamsLargeFile(t *testing.T) {
	const size = 50 << 20
	const budget = 8 << 20
	want := sha256.New()
	_, err := io.Copy(want, &filesPatternReader{n: size})
	require.NoError(t, err)
	wantSum := want.Sum(nil)

	path := filepath.Join(t.TempDir(), "big.bin")
	fh, err := os.Create(path)
	require.NoError(t, err)
	_, err = io.Copy(fh, &filesPatternReader{n: size})
	require.NoError(t, err)
	require.NoError(t, fh.Close())

	var gotSum atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			if p.FormName() == "file" {
				h := sha256.New()
				_, _ = io.Copy(h, p)
				gotSum.Store(h.Sum(nil))
			}
		}
		filesWriteJSON(w, http.StatusOK, filesFileJSON("file-big", "big.bin", size))
	}))
	defer srv.Close()
	c := filesTestClient(t, srv, 2)

	for _, src := range []struct {
		name string
		src  func() FileSource
	}{
		{"reader", func() FileSource { return FileSource{Reader: &filesPatternReader{n: size}, Filename: "big.bin"} }},
		{"path", func() FileSource { return FileSource{Path: path} }},
	} {
		t.Run(src.name, func(t *testing.T) {
			gotSum.Store([]byte(nil))
			s := src.src()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			f, err := UploadFile(t.Context(), c, s, nil)
			runtime.ReadMemStats(&after)
			require.NoError(t, err)
			assert.Equal(t, "file-big", f.Id)
			assert.Equal(t, wantSum, gotSum.Load(), "the server got every byte")
			allocated := after.TotalAlloc - before.TotalAlloc
			grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("50 MB upload from %s: %d KiB allocated in total, heap grew %d KiB", src.name, allocated>>10, grown>>10)
			assert.Less(t, allocated, uint64(budget), "allocations during the upload")
			assert.Less(t, grown, int64(budget), "heap growth during the upload")
		})
	}
}

// TestUploadFileRetryReplaysBody checks that a retried upload sends
// identical bytes, from a path and from a seekable reader (starting at its
// offset), also when the server answered the first attempt before reading
// it all; and that a plain reader is sent once.
func TestUploadFileRetryReplaysBody(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	path := filepath.Join(t.TempDir(), "doc.txt")
	require.NoError(t, os.WriteFile(path, content, 0o600))

	cases := []struct {
		name        string
		src         func() FileSource
		readFirst   int // bytes the server reads of attempt 1 before failing it; -1: all
		wantAttempt int
		wantErr     bool
	}{
		{"path", func() FileSource { return FileSource{Path: path} }, -1, 2, false},
		{"path, early answer", func() FileSource { return FileSource{Path: path} }, 1000, 2, false},
		{"seekable reader", func() FileSource {
			r := bytes.NewReader(append([]byte("prefix-not-sent"), content...))
			_, _ = r.Seek(int64(len("prefix-not-sent")), io.SeekStart)
			return FileSource{Reader: r, Filename: "doc.txt"}
		}, -1, 2, false},
		{"seekable reader, early answer", func() FileSource {
			return FileSource{Reader: bytes.NewReader(content), Filename: "doc.txt"}
		}, 4096, 2, false},
		{"plain reader is sent once", func() FileSource {
			return FileSource{Reader: filesOnlyReader{bytes.NewReader(content)}, Filename: "doc.txt"}
		}, -1, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies [][]byte
			var retryHeaders []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n := len(bodies) + 1
				mu.Unlock()
				var b []byte
				if n == 1 && tc.readFirst >= 0 {
					b = make([]byte, tc.readFirst)
					_, _ = io.ReadFull(r.Body, b)
				} else {
					b, _ = io.ReadAll(r.Body)
				}
				mu.Lock()
				bodies = append(bodies, b)
				retryHeaders = append(retryHeaders, r.Header.Get("X-Retry-Count"))
				mu.Unlock()
				if n == 1 {
					w.Header().Set("Retry-After-Ms", "1")
					filesWriteJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{"message": "busy"}})
					return
				}
				up, err := filesParseUpload(r.Header.Get("Content-Type"), bytes.NewReader(b))
				if err != nil || !bytes.Equal(up.content, content) {
					filesWriteJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "bad body"}})
					return
				}
				filesWriteJSON(w, http.StatusOK, filesFileJSON("file-r", up.filename, len(up.content)))
			}))
			defer srv.Close()
			c := filesTestClient(t, srv, 3)
			f, err := UploadFile(t.Context(), c, tc.src(), nil)
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, bodies, tc.wantAttempt)
			if tc.wantErr {
				var apiErr *assistants.APIError
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "file-r", f.Id)
			assert.Equal(t, []string{"0", "1"}, retryHeaders)
			if tc.readFirst < 0 {
				assert.Equal(t, bodies[0], bodies[1], "the retry replays identical bytes")
			} else {
				assert.Equal(t, bodies[0], bodies[1][:tc.readFirst], "the retry starts from the beginning")
			}
		})
	}
}

// filesBlockingReader blocks in Read until released, then reports EOF; it counts
// reads that start after it was released.
type filesBlockingReader struct {
	release chan struct{}
	started chan struct{}
	once    sync.Once
}

func (b *filesBlockingReader) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.started) })
	<-b.release
	return 0, io.EOF
}

// TestUploadFileCancel checks that cancelling ctx ends an upload whose
// source blocks, and that nothing is left running once the source returns.
func TestUploadFileCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		filesWriteJSON(w, http.StatusOK, filesFileJSON("file-1", "x", 1))
	}))
	c := filesTestClient(t, srv, 2)
	src := &filesBlockingReader{release: make(chan struct{}), started: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := UploadFile(ctx, c, FileSource{Reader: src, Filename: "x.txt"}, nil)
		done <- err
	}()
	<-src.started
	cancel()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
	close(src.release) // the transport's Read in progress returns
	srv.Close()
	srv.Client().CloseIdleConnections()
}

// TestUploadBodyStaleReaders checks that a reader of an earlier attempt, or
// any reader after the upload ended, no longer reads the source.
func TestUploadBodyStaleReaders(t *testing.T) {
	src := strings.NewReader("abcdefghij")
	b, err := newUploadBody(FileSource{Reader: src, Filename: "a.txt"}, &UploadOptions{Purpose: "assistants"})
	require.NoError(t, err)
	first := b.first(t.Context())
	buf := make([]byte, len(b.head)+3)
	_, err = io.ReadFull(first, buf)
	require.NoError(t, err)
	assert.Equal(t, "abc", string(buf[len(b.head):]))

	second, err := b.getBody()
	require.NoError(t, err)
	_, err = io.ReadAll(first)
	assert.ErrorIs(t, err, errUploadDone, "attempt 1 is stale once attempt 2 began")
	all, err := io.ReadAll(second)
	require.NoError(t, err)
	assert.Equal(t, string(b.head)+"abcdefghij"+string(b.tail), string(all))
	assert.Equal(t, int64(len(all)), b.size)

	third, err := b.getBody()
	require.NoError(t, err)
	b.close()
	_, err = io.ReadAll(third)
	assert.ErrorIs(t, err, errUploadDone, "nothing reads the source after the upload returned")
	_, err = b.getBody()
	assert.ErrorIs(t, err, errUploadDone)
}

// TestDownloadFile checks the streamed content and the errors.
func TestDownloadFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/files/file-1/content":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write([]byte("the bytes"))
		default:
			filesWriteJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{"message": "No such file", "type": "invalid_request_error"}})
		}
	}))
	defer srv.Close()
	c := filesTestClient(t, srv, 0)

	rc, err := DownloadFile(t.Context(), c, "file-1")
	require.NoError(t, err)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	assert.Equal(t, "the bytes", string(b))

	rc, err = DownloadFile(t.Context(), c, "file-missing")
	assert.Nil(t, rc)
	var apiErr *assistants.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	assert.Equal(t, "No such file", apiErr.Message)

	_, err = DownloadFile(t.Context(), c, "")
	assert.ErrorContains(t, err, "empty file ID")
	_, err = DownloadFile(t.Context(), nil, "file-1")
	assert.ErrorContains(t, err, "nil client")
}

// filesFakeVS is an in-memory VectorStoreBatchClient and VectorStoreFileClient
// for tests in a synctest bubble: uploads take uploadTime each; a batch
// stays in_progress for pollsToFinish polls; files whose name starts with
// "bad" fail to upload (400) and those starting with "broken" fail to
// process.
type filesFakeVS struct {
	uploadTime    time.Duration
	pollsToFinish int
	pollAfter     string // openai-poll-after-ms on batch and file replies
	listPageSize  int

	mu             sync.Mutex
	names          map[string]string // file ID -> name
	uploads        int
	inFlight, peak int
	batchFiles     []string
	polls          int
	pollTimes      []time.Time
	created        []gen.CreateVectorStoreFileBatchRequest
}

func newFilesFakeVS() *filesFakeVS {
	return &filesFakeVS{names: map[string]string{}, pollsToFinish: 2, listPageSize: 100}
}

func filesFakeResp(status int, hdr string) *http.Response {
	h := http.Header{"Content-Type": {"application/json"}}
	if hdr != "" {
		h.Set("openai-poll-after-ms", hdr)
	}
	return &http.Response{StatusCode: status, Status: strconv.Itoa(status), Header: h}
}

func (f *filesFakeVS) CreateFile(ctx context.Context, contentType string, body io.Reader, _ ...gen.RequestEditorFn) (*gen.OpenAIFile, error) {
	f.mu.Lock()
	f.inFlight++
	f.peak = max(f.peak, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	up, err := filesParseUpload(contentType, body)
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(f.uploadTime):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if strings.HasPrefix(up.filename, "bad") {
		return nil, assistants.NewAPIError(filesFakeResp(400, ""), []byte(`{"error":{"message":"unsupported file"}}`))
	}
	f.mu.Lock()
	f.uploads++
	id := "file-" + strings.TrimSuffix(up.filename, filepath.Ext(up.filename))
	f.names[id] = up.filename
	f.mu.Unlock()
	return &gen.OpenAIFile{Id: id, Filename: up.filename}, nil
}

func (f *filesFakeVS) batch(vsID string) *gen.VectorStoreFileBatchObject {
	b := &gen.VectorStoreFileBatchObject{Id: "vsfb_1", VectorStoreId: vsID, Status: gen.VectorStoreFileBatchObjectStatusInProgress}
	b.FileCounts.Total = len(f.batchFiles)
	if f.polls < f.pollsToFinish {
		b.FileCounts.InProgress = len(f.batchFiles)
		return b
	}
	b.Status = gen.VectorStoreFileBatchObjectStatusCompleted
	for _, id := range f.batchFiles {
		if strings.HasPrefix(f.names[id], "broken") {
			b.FileCounts.Failed++
		} else {
			b.FileCounts.Completed++
		}
	}
	return b
}

func (f *filesFakeVS) CreateVectorStoreFileBatch(ctx context.Context, vsID string, body gen.CreateVectorStoreFileBatchJSONRequestBody, eds ...gen.RequestEditorFn) (*gen.VectorStoreFileBatchObject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, body)
	f.batchFiles = append([]string(nil), *body.FileIds...)
	return f.batch(vsID), assistants.ApplyReplyHeader(ctx, filesFakeResp(200, f.pollAfter).Header, eds...)
}

func (f *filesFakeVS) GetVectorStoreFileBatch(ctx context.Context, vsID, batchID string, eds ...gen.RequestEditorFn) (*gen.VectorStoreFileBatchObject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	f.pollTimes = append(f.pollTimes, time.Now())
	return f.batch(vsID), assistants.ApplyReplyHeader(ctx, filesFakeResp(200, f.pollAfter).Header, eds...)
}

func (f *filesFakeVS) ListFilesInVectorStoreBatch(ctx context.Context, vsID, batchID string, params *gen.ListFilesInVectorStoreBatchParams, _ ...gen.RequestEditorFn) (*gen.ListVectorStoreFilesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if params == nil || params.Filter == nil || *params.Filter != gen.ListFilesInVectorStoreBatchParamsFilterFailed {
		return nil, assistants.NewAPIError(filesFakeResp(400, ""), []byte(`{"error":{"message":"want filter=failed"}}`))
	}
	var failed []gen.VectorStoreFileObject
	for _, id := range f.batchFiles {
		if strings.HasPrefix(f.names[id], "broken") {
			failed = append(failed, gen.VectorStoreFileObject{Id: id, VectorStoreId: vsID, Status: gen.VectorStoreFileObjectStatusFailed,
				LastError: &gen.VectorStoreFileLastError{Code: "unsupported_file", Message: "cannot parse " + f.names[id]}})
		}
	}
	from := 0
	if params.After != nil {
		for i, v := range failed {
			if v.Id == *params.After {
				from = i + 1
			}
		}
	}
	page := failed[from:min(from+f.listPageSize, len(failed))]
	l := &gen.ListVectorStoreFilesResponse{Data: page, HasMore: from+len(page) < len(failed)}
	if len(page) > 0 {
		l.FirstId, l.LastId = page[0].Id, page[len(page)-1].Id
	}
	return l, nil
}

func (f *filesFakeVS) CreateVectorStoreFile(ctx context.Context, vsID string, body gen.CreateVectorStoreFileJSONRequestBody, eds ...gen.RequestEditorFn) (*gen.VectorStoreFileObject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vsFile(vsID, body.FileId), assistants.ApplyReplyHeader(ctx, filesFakeResp(200, f.pollAfter).Header, eds...)
}

func (f *filesFakeVS) GetVectorStoreFile(ctx context.Context, vsID, fileID string, eds ...gen.RequestEditorFn) (*gen.VectorStoreFileObject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	f.pollTimes = append(f.pollTimes, time.Now())
	return f.vsFile(vsID, fileID), assistants.ApplyReplyHeader(ctx, filesFakeResp(200, f.pollAfter).Header, eds...)
}

func (f *filesFakeVS) vsFile(vsID, fileID string) *gen.VectorStoreFileObject {
	vf := &gen.VectorStoreFileObject{Id: fileID, VectorStoreId: vsID, Status: gen.VectorStoreFileObjectStatusInProgress}
	if f.polls >= f.pollsToFinish {
		vf.Status = gen.VectorStoreFileObjectStatusCompleted
		if strings.HasPrefix(fileID, "broken") {
			vf.Status = gen.VectorStoreFileObjectStatusFailed
			vf.LastError = &gen.VectorStoreFileLastError{Code: "invalid_file", Message: "bad content"}
		}
	}
	return vf
}

func filesSources(names ...string) []FileSource {
	var out []FileSource
	for _, n := range names {
		out = append(out, FileSource{Reader: strings.NewReader("content of " + n), Filename: n})
	}
	return out
}

// TestUploadAndPoll covers a batch with a file the store fails to process,
// a file that fails to upload, and the poll waits.
func TestUploadAndPoll(t *testing.T) {
	cases := []struct {
		name         string
		files        []string
		opts         *UploadAndPollOptions
		pollAfter    string
		wantIDs      []string
		wantFailed   map[int]string // index -> error text
		wantWait     time.Duration  // between two polls
		wantBatchLen int
	}{
		{name: "one file fails to process", files: []string{"a.txt", "broken.pdf", "c.md"}, pollAfter: "1500",
			wantIDs: []string{"file-a", "file-broken", "file-c"}, wantFailed: map[int]string{1: "unsupported_file"},
			wantWait: 1500 * time.Millisecond, wantBatchLen: 3},
		{name: "one file fails to upload", files: []string{"a.txt", "bad.exe", "c.md"},
			opts:    &UploadAndPollOptions{PollInterval: 2 * time.Second, FileIDs: []string{"file-old"}},
			wantIDs: []string{"file-a", "", "file-c"}, wantFailed: map[int]string{1: "unsupported file"},
			wantWait: 2 * time.Second, wantBatchLen: 3},
		{name: "default interval", files: []string{"a.txt"}, wantIDs: []string{"file-a"},
			wantWait: DefaultFilePollInterval, wantBatchLen: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFilesFakeVS()
				f.pollAfter = tc.pollAfter
				f.uploadTime = 100 * time.Millisecond
				res, err := UploadAndPoll(t.Context(), f, "vs_1", filesSources(tc.files...), tc.opts)
				require.NoError(t, err)
				require.NotNil(t, res.Batch)
				assert.Equal(t, gen.VectorStoreFileBatchObjectStatusCompleted, res.Batch.Status)
				assert.Equal(t, tc.wantIDs, res.FileIDs)
				assert.Len(t, f.batchFiles, tc.wantBatchLen)
				got := map[int]string{}
				for _, fe := range res.Failed {
					got[fe.Index] = fe.Err.Error()
					var vsErr *VectorStoreFileError
					if errors.As(fe, &vsErr) {
						assert.Equal(t, fe.FileID, vsErr.FileID)
					} else {
						assert.Empty(t, fe.FileID, "an upload failure has no file ID")
					}
				}
				require.Len(t, got, len(tc.wantFailed))
				for i, msg := range tc.wantFailed {
					assert.Contains(t, got[i], msg)
				}
				require.Len(t, f.pollTimes, 2)
				assert.Equal(t, tc.wantWait, f.pollTimes[1].Sub(f.pollTimes[0]), "wait between polls")
			})
		})
	}
}

// TestUploadAndPollFailedListing checks that failed files are found across
// several pages of the batch's failed files.
func TestUploadAndPollFailedListing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFilesFakeVS()
		f.listPageSize = 2
		names := []string{"broken1.txt", "ok.txt", "broken2.txt", "broken3.txt", "broken4.txt", "broken5.txt"}
		res, err := UploadAndPoll(t.Context(), f, "vs_1", filesSources(names...), nil)
		require.NoError(t, err)
		var idx []int
		for _, fe := range res.Failed {
			idx = append(idx, fe.Index)
		}
		assert.ElementsMatch(t, []int{0, 2, 3, 4, 5}, idx)
	})
}

// TestUploadAndPollConcurrency checks the bound on concurrent uploads.
func TestUploadAndPollConcurrency(t *testing.T) {
	for _, tc := range []struct {
		concurrency, want int
	}{{0, DefaultUploadConcurrency}, {3, 3}, {1, 1}, {50, 12}} {
		t.Run(strconv.Itoa(tc.concurrency), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFilesFakeVS()
				f.uploadTime = time.Second
				var names []string
				for i := range 12 {
					names = append(names, fmt.Sprintf("f%02d.txt", i))
				}
				start := time.Now()
				res, err := UploadAndPoll(t.Context(), f, "vs_1", filesSources(names...), &UploadAndPollOptions{Concurrency: tc.concurrency})
				require.NoError(t, err)
				assert.Empty(t, res.Failed)
				assert.Equal(t, tc.want, f.peak, "uploads at once")
				uploadRounds := (12 + tc.want - 1) / tc.want
				polls := 2 * DefaultFilePollInterval
				assert.Equal(t, time.Duration(uploadRounds)*time.Second+polls, time.Since(start))
			})
		})
	}
}

// TestUploadAndPollErrors covers the cases that end with an error.
func TestUploadAndPollErrors(t *testing.T) {
	t.Run("no file uploaded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFilesFakeVS()
			res, err := UploadAndPoll(t.Context(), f, "vs_1", filesSources("bad1.txt", "bad2.txt"), nil)
			require.ErrorContains(t, err, "no file uploaded")
			var apiErr *assistants.APIError
			assert.ErrorAs(t, err, &apiErr)
			assert.Nil(t, res.Batch)
			assert.Len(t, res.Failed, 2)
			assert.Empty(t, f.created, "no batch created")
		})
	})
	t.Run("cancelled while polling", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFilesFakeVS()
			f.pollsToFinish = 1000
			ctx, cancel := context.WithTimeout(t.Context(), 2750*time.Millisecond)
			defer cancel()
			res, err := UploadAndPoll(ctx, f, "vs_1", filesSources("a.txt"), nil)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.NotNil(t, res.Batch)
			assert.Equal(t, gen.VectorStoreFileBatchObjectStatusInProgress, res.Batch.Status)
			assert.Equal(t, 5, f.polls, "polls at 0.5s .. 2.5s")
		})
	})
	t.Run("cancelled while uploading", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFilesFakeVS()
			f.uploadTime = time.Hour
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			res, err := UploadAndPoll(ctx, f, "vs_1", filesSources("a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt", "g.txt"), nil)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Nil(t, res.Batch)
			assert.Empty(t, f.created)
		})
	})
	t.Run("bad arguments", func(t *testing.T) {
		f := newFilesFakeVS()
		_, err := UploadAndPoll(t.Context(), nil, "vs_1", filesSources("a"), nil)
		assert.ErrorContains(t, err, "nil client")
		_, err = UploadAndPoll(t.Context(), f, "", filesSources("a"), nil)
		assert.ErrorContains(t, err, "empty vector store ID")
		_, err = UploadAndPoll(t.Context(), f, "vs_1", nil, nil)
		assert.ErrorContains(t, err, "no files")
		assert.Zero(t, f.uploads)
	})
}

// TestCreateVectorStoreFileAndPoll covers the end states of one file.
func TestCreateVectorStoreFileAndPoll(t *testing.T) {
	cases := []struct {
		name      string
		fileID    string
		pollAfter string
		interval  time.Duration
		want      gen.VectorStoreFileObjectStatus
		wantErr   bool
		wantWait  time.Duration
	}{
		{"completed, server's wait", "file-1", "700", 0, gen.VectorStoreFileObjectStatusCompleted, false, 700 * time.Millisecond},
		{"completed, own interval", "file-1", "", 250 * time.Millisecond, gen.VectorStoreFileObjectStatusCompleted, false, 250 * time.Millisecond},
		{"failed", "broken-1", "", 0, gen.VectorStoreFileObjectStatusFailed, true, DefaultFilePollInterval},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFilesFakeVS()
				f.pollAfter = tc.pollAfter
				start := time.Now()
				vf, err := CreateVectorStoreFileAndPoll(t.Context(), f, "vs_1", tc.fileID, &VectorStoreFileOptions{PollInterval: tc.interval})
				require.NotNil(t, vf)
				assert.Equal(t, tc.want, vf.Status)
				assert.Equal(t, 2*tc.wantWait, time.Since(start))
				if tc.wantErr {
					var vsErr *VectorStoreFileError
					require.ErrorAs(t, err, &vsErr)
					assert.Equal(t, "invalid_file", vsErr.Code)
					assert.Equal(t, tc.fileID, vsErr.FileID)
					return
				}
				require.NoError(t, err)
			})
		})
	}
	_, err := CreateVectorStoreFileAndPoll(t.Context(), newFilesFakeVS(), "vs_1", "", nil)
	assert.ErrorContains(t, err, "empty")
}
