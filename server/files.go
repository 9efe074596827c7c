package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/store"
)

// Limits on uploads besides Options.MaxFileBytes.
const (
	maxFilenameLen  = 512
	maxFormFieldLen = 1024
	maxFormParts    = 16
)

// ListFiles returns a page of uploaded files, optionally of one purpose.
// Files past their expires_at are deleted on the way (see getFile).
func (s *Server) ListFiles(ctx context.Context, req genserver.ListFilesRequestObject) (genserver.ListFilesResponseObject, error) {
	p := req.Params
	lp, err := newListParamsRange(p.Limit, (*string)(p.Order), p.After, nil, 10000, 10000)
	if err != nil {
		return nil, err
	}
	purpose := ""
	if p.Purpose != nil {
		purpose = *p.Purpose
		if purpose == "" {
			// An empty purpose names no file (the store reads "" as "any").
			return genserver.ListFiles200JSONResponse{Object: "list", Data: []gen.OpenAIFile{}}, nil
		}
	}
	for {
		pg, err := s.db.ListFiles(ctx, projectOf(ctx), purpose, storeList(lp))
		if err != nil {
			return nil, storeErr(err, "file", "")
		}
		expired := false
		data := make([]gen.OpenAIFile, 0, len(pg.Items))
		for _, f := range pg.Items {
			if s.fileExpired(f) {
				expired = true
				if err := s.deleteFile(ctx, f.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, storeErr(err, "file", f.ID)
				}
				continue
			}
			data = append(data, fileObject(f))
		}
		if expired {
			continue // the page lost files: read it again
		}
		first, last := firstLast(data, func(f gen.OpenAIFile) string { return f.Id })
		return genserver.ListFiles200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: pg.HasMore}, nil
	}
}

// fileObject is the API object of a stored file.
func fileObject(f store.File) gen.OpenAIFile {
	o := gen.OpenAIFile{
		Id:        f.ID,
		Object:    "file",
		Bytes:     int(f.Bytes),
		CreatedAt: int(f.CreatedAt),
		Filename:  f.Filename,
		Purpose:   gen.OpenAIFilePurpose(f.Purpose),
		Status:    gen.OpenAIFileStatusProcessed,
	}
	if f.ExpiresAt != 0 {
		exp := int(f.ExpiresAt)
		o.ExpiresAt = &exp
	}
	return o
}

// upload is what CreateFile gathers from the multipart parts.
type upload struct {
	filename    string
	contentType string
	haveFile    bool
	purpose     string
	havePurpose bool
	anchor      string
	seconds     string
}

// CreateFile stores an uploaded file (multipart fields "file" and "purpose",
// optionally "expires_after[anchor]" and "expires_after[seconds]"). Its
// bytes are streamed into the store as they come, hidden; the fields sent
// after them are read before the write that makes the file visible, which
// stores them (see store.Store.CreateFile), so the file is stored once,
// with its fields, whatever their order, and never held whole in memory
// nor on disk. A file over Options.MaxFileBytes is a 400 naming "file".
func (s *Server) CreateFile(ctx context.Context, req genserver.CreateFileRequestObject) (genserver.CreateFileResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("file", "Missing required parameter: 'file'.")
	}
	u := &upload{}
	for n := 0; ; n++ {
		part, err := req.Body.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, uploadReadError(err)
		}
		if n >= maxFormParts {
			return nil, errBadRequest("", "Invalid multipart body: too many parts.")
		}
		if part.FormName() != "file" {
			if err := s.readUploadField(u, part); err != nil {
				return nil, err
			}
			_ = part.Close()
			continue
		}
		u.haveFile = true
		u.filename = part.FileName()
		u.contentType = part.Header.Get("Content-Type")
		// What can be checked before the bytes are read (the rest is
		// checked once the fields after them are).
		if u.havePurpose {
			if err := checkPurpose(u.purpose); err != nil {
				return nil, err
			}
		}
		f, err := s.uploadedFile(ctx, u)
		if err != nil {
			return nil, err
		}
		f.ID = createdID(ctx, intentFile, prefixFile) // a keyed upload's claim names it
		parts := n + 1
		stored, err := s.storeFile(ctx, f, part, func(f *store.File) error {
			_ = part.Close()
			// The parts after the file.
			for ; ; parts++ {
				part, err := req.Body.NextPart()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return uploadReadError(err)
				}
				if parts >= maxFormParts {
					return errBadRequest("", "Invalid multipart body: too many parts.")
				}
				if part.FormName() == "file" {
					return errBadRequest("file", "Invalid 'file': only one file can be uploaded per request.")
				}
				if err := s.readUploadField(u, part); err != nil {
					return err
				}
				_ = part.Close()
			}
			g, err := s.checkUpload(ctx, u)
			if err != nil {
				return err
			}
			*f = g
			return nil
		})
		if err != nil {
			return nil, err
		}
		return genserver.CreateFile200JSONResponse(fileObject(stored)), nil
	}
	return nil, errBadRequest("file", "Missing required parameter: 'file'.")
}

// readUploadField reads a part of an upload other than its file into u:
// its fields; unknown parts are drained and ignored, like the API does.
func (s *Server) readUploadField(u *upload, part *multipart.Part) error {
	switch name := part.FormName(); name {
	case "purpose", "expires_after[anchor]", "expires_after[seconds]":
		v, err := io.ReadAll(io.LimitReader(part, maxFormFieldLen+1))
		if err != nil {
			return uploadReadError(err)
		}
		if len(v) > maxFormFieldLen {
			return errBadRequest(name, "Invalid '%s': value too long.", name)
		}
		switch name {
		case "purpose":
			u.purpose, u.havePurpose = strings.TrimSpace(string(v)), true
		case "expires_after[anchor]":
			u.anchor = strings.TrimSpace(string(v))
		default:
			u.seconds = strings.TrimSpace(string(v))
		}
	default:
		if _, err := io.Copy(io.Discard, io.LimitReader(part, s.opts.MaxFileBytes+1)); err != nil {
			return uploadReadError(err)
		}
	}
	return nil
}

// checkUpload checks an upload's fields and returns the file to store.
func (s *Server) checkUpload(ctx context.Context, u *upload) (store.File, error) {
	if !u.havePurpose {
		return store.File{}, errBadRequest("purpose", "Missing required parameter: 'purpose'.")
	}
	if err := checkPurpose(u.purpose); err != nil {
		return store.File{}, err
	}
	f, err := s.uploadedFile(ctx, u)
	if err != nil {
		return store.File{}, err
	}
	f.Purpose = u.purpose
	now := f.CreatedAt
	if u.anchor != "" || u.seconds != "" {
		if u.anchor != string(gen.FileExpirationAfterAnchorCreatedAt) {
			return store.File{}, errBadRequest("expires_after[anchor]", "Invalid value for 'expires_after[anchor]': expected 'created_at'.")
		}
		secs, err := strconv.ParseInt(u.seconds, 10, 64)
		if err != nil || secs < 3600 || secs > 2592000 {
			return store.File{}, errBadRequest("expires_after[seconds]", "Invalid 'expires_after[seconds]': expected an integer between 3600 and 2592000.")
		}
		f.ExpiresAt = now + secs
	}
	return f, nil
}

// checkPurpose checks an upload's purpose.
func checkPurpose(purpose string) error {
	if !gen.CreateFileRequestPurpose(purpose).Valid() {
		return errBadRequest("purpose", "Invalid value for 'purpose': expected one of 'assistants', 'batch', 'fine-tune', 'vision', 'user_data' or 'evals'.")
	}
	return nil
}

// uploadedFile checks the name of an upload's file part and returns the
// file to store, without its purpose and expiry (see checkUpload), created
// now, under a new id.
func (s *Server) uploadedFile(ctx context.Context, u *upload) (store.File, error) {
	filename := u.filename
	if filename == "" {
		filename = "upload"
	}
	if len(filename) > maxFilenameLen || !utf8.ValidString(filename) {
		return store.File{}, errBadRequest("file", "Invalid 'file': the file name must be valid UTF-8 of at most %d bytes.", maxFilenameLen)
	}
	ct := u.contentType
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt == "" {
		ct = "application/octet-stream"
	}
	return store.File{Project: projectOf(ctx), ID: newID(prefixFile), Filename: filename, ContentType: ct, CreatedAt: int64(s.now())}, nil
}

// storeFile streams body into the store as f's bytes; finish sets f's
// fields once they are read (see store.Store.CreateFile). For a request
// that holds an Idempotency-Key claim (an upload's intent in ctx), the
// write that makes the file visible makes the claim name it, and fails
// when the claim is no longer the request's (its lease lapsed and another
// request took the key: that one answers), so a file stored for a lost
// claim never appears (store.CreateFileClaimed).
func (s *Server) storeFile(ctx context.Context, f store.File, body io.Reader, finish func(*store.File) error) (store.File, error) {
	var stored store.File
	var err error
	if in := intentFrom(ctx); in != nil && in.Object == intentFile && in.claimKey != "" {
		named := *in
		named.ID = f.ID
		var claimed []byte
		if claimed, err = json.Marshal(named); err != nil {
			return store.File{}, fmt.Errorf("upload: claim: %w", err)
		}
		if stored, err = s.db.CreateFileClaimed(ctx, f, body, s.opts.MaxFileBytes, finish, store.Claim{Key: in.claimKey, Body: in.claimBody, Named: claimed}); err == nil {
			in.claimBody = claimed
		}
	} else {
		stored, err = s.db.CreateFile(ctx, f, body, s.opts.MaxFileBytes, finish)
	}
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return store.File{}, ae // finish's
	case errors.Is(err, store.ErrClaimLost):
		return store.File{}, errIdemRetry()
	case errors.Is(err, store.ErrTooLarge):
		return store.File{}, errBadRequest("file", "Invalid 'file': the file is larger than the limit of %d bytes.", s.opts.MaxFileBytes)
	case err != nil:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || !isStoreError(err) {
			return store.File{}, uploadReadError(err)
		}
		return store.File{}, storeErr(err, "file", f.ID)
	}
	return stored, nil
}

// isStoreError reports whether err is one of the store's sentinels (not a
// failure to read the request).
func isStoreError(err error) bool {
	for _, e := range []error{store.ErrNotFound, store.ErrConflict, store.ErrClosed, store.ErrInvalid, store.ErrThreadLocked, store.ErrSchemaTooNew} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// uploadReadError maps a failure to read the multipart body to a 413 (over
// the body limit) or a 400.
func uploadReadError(err error) *apiError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge(mbe.Limit)
	}
	return errBadRequest("", "Invalid multipart body: %s.", firstLine(err.Error()))
}

// RetrieveFile returns a file's metadata.
func (s *Server) RetrieveFile(ctx context.Context, req genserver.RetrieveFileRequestObject) (genserver.RetrieveFileResponseObject, error) {
	f, err := s.getFile(ctx, req.FileId)
	if err != nil {
		return nil, err
	}
	return genserver.RetrieveFile200JSONResponse(fileObject(f)), nil
}

// DeleteFile deletes a file. It is also detached from every vector store
// that holds it (their file counts and usage change accordingly); batches
// keep their counts. Assistants and threads that name it keep the id.
func (s *Server) DeleteFile(ctx context.Context, req genserver.DeleteFileRequestObject) (genserver.DeleteFileResponseObject, error) {
	if _, err := s.getFile(ctx, req.FileId); err != nil { // an expired file is already gone: 404
		return nil, err
	}
	if err := s.deleteFile(ctx, req.FileId); err != nil {
		return nil, storeErr(err, "file", req.FileId)
	}
	return genserver.DeleteFile200JSONResponse{Id: req.FileId, Object: "file", Deleted: true}, nil
}

// DownloadFile returns the stored bytes of a file as
// application/octet-stream (the spec's content type), with a
// Content-Disposition naming the file. The bytes are streamed from the
// store.
func (s *Server) DownloadFile(ctx context.Context, req genserver.DownloadFileRequestObject) (genserver.DownloadFileResponseObject, error) {
	f, err := s.getFile(ctx, req.FileId)
	if err != nil {
		return nil, err
	}
	rc, err := s.db.OpenFile(ctx, projectOf(ctx), f.ID)
	if err != nil {
		return nil, storeErr(err, "file", f.ID)
	}
	return fileDownload{body: rc, size: f.Bytes, name: f.Filename}, nil
}

// fileDownload writes a file's bytes.
type fileDownload struct {
	body io.ReadCloser
	size int64
	name string
}

// VisitDownloadFileResponse implements gen.DownloadFileResponseObject.
func (d fileDownload) VisitDownloadFileResponse(w http.ResponseWriter) error {
	defer d.body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(d.size, 10))
	if cd := mime.FormatMediaType("attachment", map[string]string{"filename": d.name}); cd != "" {
		w.Header().Set("Content-Disposition", cd)
	}
	w.WriteHeader(http.StatusOK)
	_, err := io.Copy(w, d.body)
	return err
}

// getFile returns a stored file's metadata, or a 404. A file past its
// expires_at is deleted (as DeleteFile does) and is a 404.
func (s *Server) getFile(ctx context.Context, id string) (store.File, error) {
	if !validID(id) {
		return store.File{}, errNotFound("file", id)
	}
	f, err := s.db.GetFile(ctx, projectOf(ctx), id)
	if err != nil {
		return store.File{}, storeErr(err, "file", id)
	}
	if s.fileExpired(f) {
		if err := s.deleteFile(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.File{}, storeErr(err, "file", id)
		}
		return store.File{}, errNotFound("file", id)
	}
	return f, nil
}

// fileExists reports whether id names an uploaded file that has not
// expired. It takes no lock of the server (callers may hold a thread's mutex).
func (s *Server) fileExists(ctx context.Context, id string) bool {
	f, err := s.db.GetFile(ctx, projectOf(ctx), id)
	return err == nil && !s.fileExpired(f)
}

// readFile returns a stored file of the request's project, with its
// bytes (see readFileIn), for the model and vector stores. It takes no lock
// of the server (callers may hold a thread's mutex).
func (s *Server) readFile(ctx context.Context, id string) (store.File, []byte, error) {
	return s.readFileIn(ctx, projectOf(ctx), id)
}

// fileExpired reports whether f's expires_at has passed.
func (s *Server) fileExpired(f store.File) bool {
	return f.ExpiresAt != 0 && int64(s.now()) >= f.ExpiresAt
}

// deleteFile deletes a file in the store, which detaches it from its
// vector stores (their usage is counted again, and an in-memory index
// drops its chunks).
func (s *Server) deleteFile(ctx context.Context, id string) error {
	vsIDs, err := s.db.DeleteFile(ctx, projectOf(ctx), id)
	if err != nil {
		return err
	}
	for _, vs := range vsIDs {
		s.unindexFile(vs, id)
		s.settleUsage(ctx, projectOf(ctx), vs, true)
	}
	return nil
}
