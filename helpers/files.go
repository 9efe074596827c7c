package helpers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/internal/editors"
	"github.com/assistants-go/assistants/poller"
)

// DefaultUploadConcurrency is how many files UploadAndPoll uploads at once
// when UploadAndPollOptions.Concurrency is 0.
const DefaultUploadConcurrency = 5

// DefaultFilePollInterval is the wait between two polls of a vector store
// file or file batch when the reply carries no openai-poll-after-ms header
// and no interval is given.
const DefaultFilePollInterval = 500 * time.Millisecond

// maxPollAfter bounds the openai-poll-after-ms hint that is honoured; a
// longer hint falls back to the interval.
const maxPollAfter = 10 * time.Minute

// errUploadDone is what a stale request body returns once its upload has
// returned or a retry has started reading the source again.
var errUploadDone = errors.New("helpers: upload body no longer in use")

// FileSource is one file to upload: either a path (opened and read by the
// upload, and re-read on a retry) or a reader. Exactly one of Path and
// Reader must be set.
type FileSource struct {
	// Path is a file to upload. Its size is sent as the Content-Length and
	// the request is replayed from the file when the client retries.
	Path string
	// Reader is read to its end. When it is an io.ReadSeeker whose Seek
	// works, the upload starts at its current offset, sends a
	// Content-Length, and is replayed from that offset on a retry.
	// Otherwise the request is sent once with chunked encoding and is not
	// retried. The caller keeps ownership: Reader is not closed, and it is
	// not read after the upload returns (a Read already in progress in the
	// HTTP transport when ctx is cancelled ends when Reader returns; its
	// bytes are dropped).
	Reader io.Reader
	// Filename is the name the file is stored under. Default: the base name
	// of Path, or of Reader's Name() when it has one (as *os.File does);
	// required otherwise.
	Filename string
	// ContentType is the content type of the file part. Default: from the
	// extension of Filename (mime.TypeByExtension), else
	// application/octet-stream.
	ContentType string
}

// UploadOptions configures UploadFile. A nil *UploadOptions is the default.
type UploadOptions struct {
	// Purpose is what the file is for. Default: "assistants".
	Purpose gen.CreateFileRequestPurpose
	// ExpiresAfter, when set, makes the file expire; sent as the form
	// fields expires_after[anchor] and expires_after[seconds]. Default: no
	// expiry.
	ExpiresAfter *gen.FileExpirationAfter
	// RequestEditors are applied to the upload request. Default: none.
	RequestEditors []gen.RequestEditorFn
}

// FileUploader is the part of *assistants.Client that UploadFile uses: its
// typed CreateFile, which sends a body the caller encoded.
type FileUploader interface {
	CreateFile(ctx context.Context, contentType string, body io.Reader, reqEditors ...gen.RequestEditorFn) (*gen.OpenAIFile, error)
}

// FileDownloader is the part of *assistants.Client that DownloadFile uses:
// its typed DownloadFile, which returns the body of a 2xx reply and an
// *assistants.APIError otherwise.
type FileDownloader interface {
	DownloadFile(ctx context.Context, fileID string, reqEditors ...gen.RequestEditorFn) (io.ReadCloser, error)
}

// UploadFile uploads one file (POST /files) as multipart/form-data with the
// fields purpose (default "assistants"), optionally expires_after, and the
// file part carrying the file name and content type.
//
// The file is streamed: the body is the multipart head, the source and the
// multipart tail read in turn (through an io.Pipe fed by a goroutine for a
// reader that cannot seek), so memory use does not grow with the file's
// size. For a Path or a seekable Reader the request has a Content-Length and
// a GetBody, so the client's retries (and 307/308 redirects) replay it from
// the start; any other Reader is sent once, chunked, and a failed attempt is
// not retried. A file opened from Path is closed before UploadFile returns.
//
// It returns the stored file, or an error: a bad FileSource, a source that
// cannot be opened or read, a failed request, a non-2xx reply as
// *assistants.APIError (errors.As), or ctx's error.
func UploadFile(ctx context.Context, client FileUploader, src FileSource, opts *UploadOptions) (*gen.OpenAIFile, error) {
	if client == nil {
		return nil, errors.New("helpers: upload: nil client")
	}
	var o UploadOptions
	if opts != nil {
		o = *opts
	}
	if o.Purpose == "" {
		o.Purpose = gen.CreateFileRequestPurposeAssistants
	}
	body, err := newUploadBody(src, &o)
	if err != nil {
		return nil, err
	}
	defer body.close()
	eds := append([]gen.RequestEditorFn{body.edit}, o.RequestEditors...)
	f, err := client.CreateFile(ctx, body.contentType, body.first(ctx), eds...)
	if err != nil {
		// When ctx ends, the body's pipe is closed too, and the transport may
		// report that closed pipe before it notices ctx: name the cause.
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return nil, fmt.Errorf("helpers: upload %s: %w", body.filename, err)
	}
	return f, nil
}

// DownloadFile returns the content of file fileID
// (GET /files/{file_id}/content) as the reply body, streamed. The caller
// must close it. A non-2xx reply gives an *assistants.APIError (its body read
// and closed); an empty fileID, a failed request or ctx's error give an
// error and no reader.
func DownloadFile(ctx context.Context, client FileDownloader, fileID string) (io.ReadCloser, error) {
	switch {
	case client == nil:
		return nil, errors.New("helpers: download file: nil client")
	case fileID == "":
		return nil, errors.New("helpers: download file: empty file ID")
	}
	body, err := client.DownloadFile(ctx, fileID)
	if err != nil {
		return nil, fmt.Errorf("helpers: download file %s: %w", fileID, err)
	}
	return body, nil
}

// uploadBody is the multipart body of one upload: head, the source, tail.
// Each attempt of the request reads the source through its own
// sourceReader; starting a new attempt (GetBody) or ending the upload makes
// the readers of earlier attempts fail, so the source is never read by two
// attempts at once nor after UploadFile has returned.
type uploadBody struct {
	head, tail  []byte
	contentType string
	filename    string
	size        int64 // of the whole body; -1 when unknown

	mu     sync.Mutex // guards src reads and seeks, and gen
	src    io.Reader
	seeker io.Seeker // nil: not replayable
	start  int64
	gen    int
	closed atomic.Bool
	file   *os.File // opened from Path; closed by close

	pipe     *io.PipeReader // body of a non-replayable upload; nil otherwise
	stopPipe func() bool    // stops closing pipe when ctx ends
}

func newUploadBody(src FileSource, o *UploadOptions) (*uploadBody, error) {
	b := &uploadBody{size: -1}
	var srcSize int64 = -1
	switch {
	case src.Path != "" && src.Reader != nil:
		return nil, errors.New("helpers: upload: FileSource has both Path and Reader")
	case src.Path != "":
		f, err := os.Open(src.Path)
		if err != nil {
			return nil, fmt.Errorf("helpers: upload: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("helpers: upload: %w", err)
		}
		if !st.Mode().IsRegular() {
			_ = f.Close()
			return nil, fmt.Errorf("helpers: upload: %s is not a regular file", src.Path)
		}
		b.file, b.src, b.seeker, srcSize = f, f, f, st.Size()
		b.filename = filepath.Base(src.Path)
	case src.Reader != nil:
		b.src = src.Reader
		if s, ok := src.Reader.(io.Seeker); ok {
			if start, end, ok := seekBounds(s); ok {
				b.seeker, b.start, srcSize = s, start, end-start
			}
		}
		if n, ok := src.Reader.(interface{ Name() string }); ok && n.Name() != "" {
			b.filename = filepath.Base(n.Name())
		}
	default:
		return nil, errors.New("helpers: upload: FileSource has neither Path nor Reader")
	}
	if src.Filename != "" {
		b.filename = src.Filename
	}
	if b.filename == "" {
		b.close()
		return nil, errors.New("helpers: upload: FileSource needs a Filename when reading from an io.Reader")
	}
	ct := src.ContentType
	if ct == "" {
		ct = mime.TypeByExtension(filepath.Ext(b.filename))
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	if err := b.frame(o, ct); err != nil {
		b.close()
		return nil, err
	}
	if srcSize >= 0 {
		b.size = int64(len(b.head)) + srcSize + int64(len(b.tail))
	}
	return b, nil
}

// seekBounds returns the current offset and the end of s, leaving s at the
// current offset; ok is false when s cannot seek.
func seekBounds(s io.Seeker) (start, end int64, ok bool) {
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, 0, false
	}
	end, err = s.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, 0, false
	}
	if _, err := s.Seek(start, io.SeekStart); err != nil || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// frame writes the multipart head (fields and the file part's header) and
// tail (closing boundary) around where the file's bytes go.
func (b *uploadBody) frame(o *UploadOptions, fileContentType string) error {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fields := [][2]string{{"purpose", string(o.Purpose)}}
	if e := o.ExpiresAfter; e != nil {
		anchor := string(e.Anchor)
		if anchor == "" {
			anchor = "created_at"
		}
		fields = append(fields, [2]string{"expires_after[anchor]", anchor},
			[2]string{"expires_after[seconds]", strconv.FormatInt(e.Seconds, 10)})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return fmt.Errorf("helpers: upload: %w", err)
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", multipart.FileContentDisposition("file", b.filename))
	h.Set("Content-Type", fileContentType)
	if _, err := mw.CreatePart(h); err != nil {
		return fmt.Errorf("helpers: upload: %w", err)
	}
	b.head = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return fmt.Errorf("helpers: upload: %w", err)
	}
	b.tail = bytes.Clone(buf.Bytes())
	b.contentType = mw.FormDataContentType()
	return nil
}

// first returns the body of the first attempt.
//
// For a replayable source (a file or a seeker) that is the head, source and
// tail read in turn, with no goroutine. For any other reader it is the read
// end of a pipe fed by a goroutine: the HTTP transport, once ctx is
// cancelled, waits for its body Read to return, and a reader that blocks
// (a network stream, a pipe) would hold UploadFile until it returned. The
// pipe is closed when ctx ends or the upload returns, which ends the
// transport's Read at once; the goroutine ends as soon as the source's Read
// in progress returns.
func (b *uploadBody) first(ctx context.Context) io.Reader {
	if b.seeker != nil {
		return b.reader(0)
	}
	pr, pw := io.Pipe()
	b.pipe = pr
	b.stopPipe = context.AfterFunc(ctx, func() { _ = pr.CloseWithError(context.Cause(ctx)) })
	go func() {
		_, err := io.Copy(pw, b.reader(0))
		_ = pw.CloseWithError(err) // nil: EOF for the reader
	}()
	return pr
}

func (b *uploadBody) reader(gen int) io.Reader {
	return io.MultiReader(bytes.NewReader(b.head), &sourceReader{b: b, gen: gen}, bytes.NewReader(b.tail))
}

// edit is the request editor that sets the Content-Length (when known) and,
// for a replayable source, GetBody.
func (b *uploadBody) edit(_ context.Context, req *http.Request) error {
	if b.size >= 0 {
		req.ContentLength = b.size
	}
	if b.seeker != nil {
		req.GetBody = b.getBody
	} else {
		req.GetBody = nil
	}
	return nil
}

// getBody starts a new attempt: earlier attempts' readers stop working and
// the source is rewound to where the upload started.
func (b *uploadBody) getBody() (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, errUploadDone
	}
	b.gen++
	if _, err := b.seeker.Seek(b.start, io.SeekStart); err != nil {
		return nil, fmt.Errorf("helpers: upload: rewind for retry: %w", err)
	}
	return io.NopCloser(b.reader(b.gen)), nil
}

// close ends the upload: no reader reads the source any more, and a file
// opened from Path is closed. It does not wait for a Read in progress.
func (b *uploadBody) close() {
	b.closed.Store(true)
	if b.file != nil {
		_ = b.file.Close()
	}
	if b.pipe != nil {
		b.stopPipe()
		_ = b.pipe.CloseWithError(errUploadDone)
	}
}

// sourceReader reads the source for one attempt.
type sourceReader struct {
	b   *uploadBody
	gen int
}

func (r *sourceReader) Read(p []byte) (int, error) {
	b := r.b
	if b.closed.Load() {
		return 0, errUploadDone
	}
	if b.seeker == nil {
		// Never rewound, so there is nothing to guard; not holding the lock
		// lets close proceed while a slow Read is in progress.
		return b.src.Read(p)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.gen != b.gen || b.closed.Load() {
		return 0, errUploadDone
	}
	return b.src.Read(p)
}

// UploadAndPollOptions configures UploadAndPoll. A nil
// *UploadAndPollOptions is the default.
type UploadAndPollOptions struct {
	// Purpose of the uploaded files. Default: "assistants".
	Purpose gen.CreateFileRequestPurpose
	// Concurrency is how many uploads run at once. Default (0 or less):
	// DefaultUploadConcurrency (5).
	Concurrency int
	// FileIDs are already uploaded files to add to the batch too, after the
	// uploaded ones. Default: none.
	FileIDs []string
	// Attributes and ChunkingStrategy are sent with the batch for all its
	// files. Default: none (the server's auto chunking).
	Attributes       *gen.VectorStoreFileAttributes
	ChunkingStrategy *gen.ChunkingStrategyRequestParam
	// PollInterval is the wait between two polls of the batch when the last
	// reply has no openai-poll-after-ms header. Default (0 or less):
	// DefaultFilePollInterval (500ms).
	PollInterval time.Duration
}

// VectorStoreBatchClient is the part of *assistants.Client that
// UploadAndPoll uses (typed calls).
type VectorStoreBatchClient interface {
	FileUploader
	VectorStoreBatchFileLister
	CreateVectorStoreFileBatch(ctx context.Context, vectorStoreID string, body gen.CreateVectorStoreFileBatchJSONRequestBody, reqEditors ...gen.RequestEditorFn) (*gen.VectorStoreFileBatchObject, error)
	GetVectorStoreFileBatch(ctx context.Context, vectorStoreID string, batchID string, reqEditors ...gen.RequestEditorFn) (*gen.VectorStoreFileBatchObject, error)
}

// VectorStoreFileClient is the part of *assistants.Client that
// CreateVectorStoreFileAndPoll uses (typed calls).
type VectorStoreFileClient interface {
	CreateVectorStoreFile(ctx context.Context, vectorStoreID string, body gen.CreateVectorStoreFileJSONRequestBody, reqEditors ...gen.RequestEditorFn) (*gen.VectorStoreFileObject, error)
	GetVectorStoreFile(ctx context.Context, vectorStoreID string, fileID string, reqEditors ...gen.RequestEditorFn) (*gen.VectorStoreFileObject, error)
}

// BatchResult is what UploadAndPoll did.
type BatchResult struct {
	// Batch is the file batch in its last known state: completed, failed
	// or cancelled when UploadAndPoll returned no error. Nil when no batch
	// was created.
	Batch *gen.VectorStoreFileBatchObject
	// FileIDs holds the ID of each uploaded file, in the order of the files
	// given; "" for a file whose upload failed.
	FileIDs []string
	// Failed lists the files that did not make it: failed uploads (Index
	// set, FileID "") and files the vector store failed to process (listed
	// from the batch with filter=failed; Err is a *VectorStoreFileError).
	Failed []*FileError
}

// FileError is the error of one file of UploadAndPoll.
type FileError struct {
	// Index is the file's position in the files given to UploadAndPoll, or
	// -1 for a file not among them (from UploadAndPollOptions.FileIDs).
	Index int
	// FileID is the uploaded file's ID; "" when the upload failed.
	FileID string
	// Err is the upload's error or a *VectorStoreFileError.
	Err error
}

func (e *FileError) Error() string {
	name := e.FileID
	if name == "" {
		name = "#" + strconv.Itoa(e.Index)
	}
	return fmt.Sprintf("helpers: file %s: %v", name, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// VectorStoreFileError is a vector store's report that it failed to process
// a file (its status failed, with last_error).
type VectorStoreFileError struct {
	FileID  string
	Code    string // last_error.code, e.g. "unsupported_file"; "" when absent
	Message string // last_error.message; "" when absent
}

func (e *VectorStoreFileError) Error() string {
	msg := "processing failed"
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return "helpers: vector store file " + e.FileID + ": " + msg
}

// UploadAndPoll uploads files (at most Concurrency at once, default 5) with
// UploadFile, adds those that uploaded (and opts.FileIDs) to vector store
// vectorStoreID as one file batch, and polls the batch until it is
// completed, failed or cancelled, waiting as the server asks
// (openai-poll-after-ms) or opts.PollInterval (default 500ms) between polls.
//
// A file that fails to upload does not stop the others; it is reported in
// BatchResult.Failed, as are the files the vector store failed to process.
// The error is nil when the batch reached its end, whatever its status (see
// Batch.Status and Failed). It is non-nil, with the BatchResult so far, when
// arguments are bad, no file could be uploaded, the batch could not be
// created, a poll or the listing of failed files failed, or ctx ended (then
// the uploads started are abandoned and the batch, if created, goes on on
// the server). Uploaded files are never deleted.
func UploadAndPoll(ctx context.Context, client VectorStoreBatchClient, vectorStoreID string, files []FileSource, opts *UploadAndPollOptions) (*BatchResult, error) {
	var o UploadAndPollOptions
	if opts != nil {
		o = *opts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultUploadConcurrency
	}
	res := &BatchResult{FileIDs: make([]string, len(files))}
	switch {
	case client == nil:
		return res, errors.New("helpers: upload and poll: nil client")
	case vectorStoreID == "":
		return res, errors.New("helpers: upload and poll: empty vector store ID")
	case len(files) == 0 && len(o.FileIDs) == 0:
		return res, errors.New("helpers: upload and poll: no files")
	}

	upErrs := make([]error, len(files))
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i := range files {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f, err := UploadFile(ctx, client, files[i], &UploadOptions{Purpose: o.Purpose})
			if err != nil {
				upErrs[i] = err
				return
			}
			res.FileIDs[i] = f.Id
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("helpers: upload and poll: %w", err)
	}

	ids := make([]string, 0, len(files)+len(o.FileIDs))
	index := make(map[string]int, len(files)+len(o.FileIDs))
	var failedUploads []error
	for i, id := range res.FileIDs {
		if upErrs[i] != nil {
			res.Failed = append(res.Failed, &FileError{Index: i, Err: upErrs[i]})
			failedUploads = append(failedUploads, res.Failed[len(res.Failed)-1])
			continue
		}
		ids = append(ids, id)
		index[id] = i
	}
	for _, id := range o.FileIDs {
		if _, ok := index[id]; !ok {
			ids = append(ids, id)
			index[id] = -1
		}
	}
	if len(ids) == 0 {
		return res, fmt.Errorf("helpers: upload and poll: no file uploaded: %w", errors.Join(failedUploads...))
	}

	body := gen.CreateVectorStoreFileBatchRequest{FileIds: &ids, Attributes: o.Attributes, ChunkingStrategy: o.ChunkingStrategy}
	var h http.Header
	hinted := editors.WithReplyHeader(nil, &h)
	batch, err := client.CreateVectorStoreFileBatch(ctx, vectorStoreID, body, hinted...)
	if err != nil {
		return res, fmt.Errorf("helpers: upload and poll: create file batch: %w", err)
	}
	res.Batch = batch
	hint := pollAfter(h)
	for batch.Status == gen.VectorStoreFileBatchObjectStatusInProgress {
		if err := waitPoll(ctx, hint, o.PollInterval); err != nil {
			return res, fmt.Errorf("helpers: upload and poll: batch %s: %w", batch.Id, err)
		}
		h = nil
		b, err := client.GetVectorStoreFileBatch(ctx, vectorStoreID, batch.Id, hinted...)
		if err != nil {
			return res, fmt.Errorf("helpers: upload and poll: poll batch %s: %w", batch.Id, err)
		}
		batch, res.Batch, hint = b, b, pollAfter(h)
	}

	if batch.FileCounts.Failed == 0 && batch.Status != gen.VectorStoreFileBatchObjectStatusFailed {
		return res, nil
	}
	filter, limit := gen.ListFilesInVectorStoreBatchParamsFilterFailed, 100
	for vf, err := range VectorStoreBatchFiles(ctx, client, vectorStoreID, batch.Id,
		&gen.ListFilesInVectorStoreBatchParams{Filter: &filter, Limit: &limit}) {
		if err != nil {
			return res, fmt.Errorf("helpers: upload and poll: %w", err)
		}
		i, ok := index[vf.Id]
		if !ok {
			i = -1
		}
		res.Failed = append(res.Failed, &FileError{Index: i, FileID: vf.Id, Err: vectorStoreFileError(&vf)})
	}
	return res, nil
}

// VectorStoreFileOptions configures CreateVectorStoreFileAndPoll. A nil
// *VectorStoreFileOptions is the default.
type VectorStoreFileOptions struct {
	// Attributes and ChunkingStrategy are sent with the file. Default: none
	// (the server's auto chunking).
	Attributes       *gen.VectorStoreFileAttributes
	ChunkingStrategy *gen.ChunkingStrategyRequestParam
	// PollInterval is the wait between two polls when the last reply has
	// no openai-poll-after-ms header. Default (0 or less):
	// DefaultFilePollInterval (500ms).
	PollInterval time.Duration
}

// CreateVectorStoreFileAndPoll adds the uploaded file fileID to vector store
// vectorStoreID and polls it until it is no longer in_progress, waiting as
// the server asks (openai-poll-after-ms) or opts.PollInterval (default
// 500ms) between polls.
//
// It returns the file in its final state: completed or cancelled with a nil
// error, failed with a *VectorStoreFileError (errors.As) next to it. Other
// errors (bad arguments, a failed request, a non-2xx reply as
// *assistants.APIError, ctx's error) come with the last known state, or nil
// when the file was not added.
func CreateVectorStoreFileAndPoll(ctx context.Context, client VectorStoreFileClient, vectorStoreID, fileID string, opts *VectorStoreFileOptions) (*gen.VectorStoreFileObject, error) {
	var o VectorStoreFileOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case client == nil:
		return nil, errors.New("helpers: vector store file: nil client")
	case vectorStoreID == "" || fileID == "":
		return nil, errors.New("helpers: vector store file: empty vector store or file ID")
	}
	body := gen.CreateVectorStoreFileRequest{FileId: fileID, Attributes: o.Attributes, ChunkingStrategy: o.ChunkingStrategy}
	var h http.Header
	hinted := editors.WithReplyHeader(nil, &h)
	vf, err := client.CreateVectorStoreFile(ctx, vectorStoreID, body, hinted...)
	if err != nil {
		return nil, fmt.Errorf("helpers: vector store file %s: %w", fileID, err)
	}
	hint := pollAfter(h)
	for vf.Status == gen.VectorStoreFileObjectStatusInProgress {
		if err := waitPoll(ctx, hint, o.PollInterval); err != nil {
			return vf, fmt.Errorf("helpers: vector store file %s: %w", fileID, err)
		}
		h = nil
		next, err := client.GetVectorStoreFile(ctx, vectorStoreID, fileID, hinted...)
		if err != nil {
			return vf, fmt.Errorf("helpers: vector store file %s: poll: %w", fileID, err)
		}
		vf, hint = next, pollAfter(h)
	}
	if vf.Status == gen.VectorStoreFileObjectStatusFailed {
		return vf, vectorStoreFileError(vf)
	}
	return vf, nil
}

func vectorStoreFileError(vf *gen.VectorStoreFileObject) *VectorStoreFileError {
	e := &VectorStoreFileError{FileID: vf.Id}
	if le := vf.LastError; le != nil {
		e.Code, e.Message = string(le.Code), le.Message
	}
	return e
}

// pollAfter is the openai-poll-after-ms hint of a reply, 0 when absent or
// above maxPollAfter.
func pollAfter(h http.Header) time.Duration {
	if d := poller.PollAfter(h); d <= maxPollAfter {
		return d
	}
	return 0
}

// waitPoll waits hint when positive, else interval (DefaultFilePollInterval
// when not positive), or until ctx ends.
func waitPoll(ctx context.Context, hint, interval time.Duration) error {
	d := hint
	if d <= 0 {
		d = interval
	}
	if d <= 0 {
		d = DefaultFilePollInterval
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// UploadFileAndPollOptions configures UploadFileAndPoll. A nil
// *UploadFileAndPollOptions is the default.
type UploadFileAndPollOptions struct {
	// Purpose of the uploaded file. Default: "assistants".
	Purpose gen.CreateFileRequestPurpose
	// VectorStoreFileOptions are the attributes, chunking strategy and poll
	// interval, as for CreateVectorStoreFileAndPoll. Default: none, and
	// DefaultFilePollInterval.
	VectorStoreFileOptions
}

// VectorStoreUploadClient is the part of *assistants.Client that
// UploadFileAndPoll uses.
type VectorStoreUploadClient interface {
	FileUploader
	VectorStoreFileClient
}

// UploadFileAndPoll uploads one file (UploadFile), adds it to vector store
// vectorStoreID and waits until the store has processed it
// (CreateVectorStoreFileAndPoll): the one-file counterpart of UploadAndPoll.
//
//	vf, err := helpers.UploadFileAndPoll(ctx, client, store.Id, helpers.FileSource{Path: "faq.md"}, nil)
//
// It returns the vector store file in its final state: completed or
// cancelled with a nil error, failed with a *VectorStoreFileError next to
// it. A failed upload returns nil and its error; a later error comes with
// the last known state as CreateVectorStoreFileAndPoll documents. The
// uploaded file is never deleted.
func UploadFileAndPoll(ctx context.Context, client VectorStoreUploadClient, vectorStoreID string, src FileSource, opts *UploadFileAndPollOptions) (*gen.VectorStoreFileObject, error) {
	var o UploadFileAndPollOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case client == nil:
		return nil, errors.New("helpers: upload into vector store: nil client")
	case vectorStoreID == "":
		return nil, errors.New("helpers: upload into vector store: empty vector store ID")
	}
	f, err := UploadFile(ctx, client, src, &UploadOptions{Purpose: o.Purpose})
	if err != nil {
		return nil, err
	}
	return CreateVectorStoreFileAndPoll(ctx, client, vectorStoreID, f.Id, &o.VectorStoreFileOptions)
}
