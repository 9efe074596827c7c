package server

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
)

// Limits on uploads besides Options.MaxFileBytes.
const (
	maxFilenameLen  = 512
	maxFormFieldLen = 1024
	maxFormParts    = 16
)

// ListFiles returns a page of uploaded files, optionally of one purpose.
func (s *Server) ListFiles(ctx context.Context, req genserver.ListFilesRequestObject) (genserver.ListFilesResponseObject, error) {
	p := req.Params
	lp, err := newListParamsRange(p.Limit, (*string)(p.Order), p.After, nil, 10000, 10000)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.dropExpiredFilesLocked()
	recs := s.st.files.all()
	s.mu.Unlock()
	items := make([]gen.OpenAIFile, 0, len(recs))
	for _, f := range recs {
		if p.Purpose != nil && string(f.obj.Purpose) != *p.Purpose {
			continue
		}
		items = append(items, f.obj)
	}
	data, first, last, more := page(items, func(f gen.OpenAIFile) string { return f.Id }, lp)
	return genserver.ListFiles200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
}

// CreateFile stores an uploaded file (multipart fields "file" and "purpose",
// optionally "expires_after[anchor]" and "expires_after[seconds]") in
// memory. A file over Options.MaxFileBytes is a 400 naming "file".
func (s *Server) CreateFile(ctx context.Context, req genserver.CreateFileRequestObject) (genserver.CreateFileResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("file", "Missing required parameter: 'file'.")
	}
	var (
		data        []byte
		filename    string
		contentType string
		haveFile    bool
		purpose     string
		havePurpose bool
		anchor      string
		seconds     string
	)
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
		switch name := part.FormName(); name {
		case "file":
			if haveFile {
				return nil, errBadRequest("file", "Invalid 'file': only one file can be uploaded per request.")
			}
			haveFile = true
			filename = part.FileName()
			contentType = part.Header.Get("Content-Type")
			data, err = io.ReadAll(io.LimitReader(part, s.opts.MaxFileBytes+1))
			if err != nil {
				return nil, uploadReadError(err)
			}
			if int64(len(data)) > s.opts.MaxFileBytes {
				return nil, errBadRequest("file", "Invalid 'file': the file is larger than the limit of %d bytes.", s.opts.MaxFileBytes)
			}
		case "purpose", "expires_after[anchor]", "expires_after[seconds]":
			v, err := io.ReadAll(io.LimitReader(part, maxFormFieldLen+1))
			if err != nil {
				return nil, uploadReadError(err)
			}
			if len(v) > maxFormFieldLen {
				return nil, errBadRequest(name, "Invalid '%s': value too long.", name)
			}
			switch name {
			case "purpose":
				purpose, havePurpose = strings.TrimSpace(string(v)), true
			case "expires_after[anchor]":
				anchor = strings.TrimSpace(string(v))
			default:
				seconds = strings.TrimSpace(string(v))
			}
		default:
			// Unknown fields are drained and ignored, like the API does.
			if _, err := io.Copy(io.Discard, io.LimitReader(part, s.opts.MaxFileBytes+1)); err != nil {
				return nil, uploadReadError(err)
			}
		}
		_ = part.Close()
	}
	if !haveFile {
		return nil, errBadRequest("file", "Missing required parameter: 'file'.")
	}
	if !havePurpose {
		return nil, errBadRequest("purpose", "Missing required parameter: 'purpose'.")
	}
	if !gen.CreateFileRequestPurpose(purpose).Valid() {
		return nil, errBadRequest("purpose", "Invalid value for 'purpose': expected one of 'assistants', 'batch', 'fine-tune', 'vision', 'user_data' or 'evals'.")
	}
	if filename == "" {
		filename = "upload"
	}
	if len(filename) > maxFilenameLen || !utf8.ValidString(filename) {
		return nil, errBadRequest("file", "Invalid 'file': the file name must be valid UTF-8 of at most %d bytes.", maxFilenameLen)
	}
	now := s.now()
	f := gen.OpenAIFile{
		Id:        newID(prefixFile),
		Object:    "file",
		Bytes:     len(data),
		CreatedAt: now,
		Filename:  filename,
		Purpose:   gen.OpenAIFilePurpose(purpose),
		Status:    gen.OpenAIFileStatusProcessed,
	}
	if anchor != "" || seconds != "" {
		if anchor != string(gen.FileExpirationAfterAnchorCreatedAt) {
			return nil, errBadRequest("expires_after[anchor]", "Invalid value for 'expires_after[anchor]': expected 'created_at'.")
		}
		secs, err := strconv.ParseInt(seconds, 10, 64)
		if err != nil || secs < 3600 || secs > 2592000 {
			return nil, errBadRequest("expires_after[seconds]", "Invalid 'expires_after[seconds]': expected an integer between 3600 and 2592000.")
		}
		exp := now + int(secs)
		f.ExpiresAt = &exp
	}
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt == "" {
		contentType = "application/octet-stream"
	}
	s.mu.Lock()
	s.dropExpiredFilesLocked()
	s.st.files.put(f.Id, &fileRec{obj: f, data: data, contentType: contentType})
	s.mu.Unlock()
	return genserver.CreateFile200JSONResponse(f), nil
}

// uploadReadError maps a failure to read the multipart body to a 413 (over
// the body limit) or a 400.
func uploadReadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge(mbe.Limit)
	}
	return errBadRequest("", "Invalid multipart body: %s.", firstLine(err.Error()))
}

// RetrieveFile returns a file's metadata.
func (s *Server) RetrieveFile(ctx context.Context, req genserver.RetrieveFileRequestObject) (genserver.RetrieveFileResponseObject, error) {
	f, err := s.getFile(req.FileId)
	if err != nil {
		return nil, err
	}
	return genserver.RetrieveFile200JSONResponse(f.obj), nil
}

// DeleteFile deletes a file. It is also detached from every vector store
// that holds it (their file counts and usage change accordingly); batches
// keep their counts. Assistants and threads that name it keep the id.
func (s *Server) DeleteFile(ctx context.Context, req genserver.DeleteFileRequestObject) (genserver.DeleteFileResponseObject, error) {
	if !validID(req.FileId) {
		return nil, errNotFound("file", req.FileId)
	}
	s.mu.Lock()
	s.dropExpiredFilesLocked() // an expired file is already gone: 404
	ok := s.deleteFileLocked(req.FileId)
	s.mu.Unlock()
	if !ok {
		return nil, errNotFound("file", req.FileId)
	}
	return genserver.DeleteFile200JSONResponse{Id: req.FileId, Object: "file", Deleted: true}, nil
}

// DownloadFile returns the stored bytes of a file as
// application/octet-stream (the spec's content type), with a
// Content-Disposition naming the file.
func (s *Server) DownloadFile(ctx context.Context, req genserver.DownloadFileRequestObject) (genserver.DownloadFileResponseObject, error) {
	f, err := s.getFile(req.FileId)
	if err != nil {
		return nil, err
	}
	return fileDownload{data: f.data, name: f.obj.Filename}, nil
}

// fileDownload writes a file's bytes.
type fileDownload struct {
	data []byte
	name string
}

// VisitDownloadFileResponse implements gen.DownloadFileResponseObject.
func (d fileDownload) VisitDownloadFileResponse(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(d.data)))
	if cd := mime.FormatMediaType("attachment", map[string]string{"filename": d.name}); cd != "" {
		w.Header().Set("Content-Disposition", cd)
	}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(d.data)
	return err
}

// getFile returns a stored file (shared; do not modify), or a 404. A file
// past its expires_at is deleted (as DeleteFile does) and is a 404.
func (s *Server) getFile(id string) (*fileRec, error) {
	if !validID(id) {
		return nil, errNotFound("file", id)
	}
	s.mu.RLock()
	f, ok := s.st.files.get(id)
	s.mu.RUnlock()
	if !ok {
		return nil, errNotFound("file", id)
	}
	if s.fileExpired(f) {
		s.mu.Lock()
		s.deleteFileLocked(id)
		s.mu.Unlock()
		return nil, errNotFound("file", id)
	}
	return f, nil
}

// fileExpired reports whether f's expires_at has passed.
func (s *Server) fileExpired(f *fileRec) bool {
	return f.obj.ExpiresAt != nil && s.now() >= *f.obj.ExpiresAt
}

// dropExpiredFilesLocked deletes the files past their expires_at, as
// DeleteFile does. Listing, uploading, deleting and reading a file run it,
// so an expired file is never listed, read or downloaded. s.mu is held for
// writing.
func (s *Server) dropExpiredFilesLocked() {
	for _, f := range s.st.files.all() {
		if s.fileExpired(f) {
			s.deleteFileLocked(f.obj.Id)
		}
	}
}

// deleteFileLocked deletes a file and detaches it from every vector store
// that holds it. s.mu is held for writing.
func (s *Server) deleteFileLocked(id string) bool {
	ok := s.st.files.del(id)
	if ok {
		for _, vs := range s.st.vectorStores.all() {
			if vs.files.del(id) {
				s.unindexFile(vs.obj.Id, id)
				s.refreshVectorStoreLocked(vs)
			}
		}
	}
	return ok
}
