package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/assistants-go/assistants/server/store"
)

// Keyed uploads whose claimant died or lost its lease (see runIntent): a
// repeat answers with the file the key's claim names when that file was
// stored and the repeat uploads the same file, and otherwise uploads it
// under an id of its own (the claimant's file can no longer appear: its
// write checks that the claim is still its own, store.CreateFileClaimed).

// lapsedCreate is the handler of a request that claimed its key over a
// lapsed claim (replaced, as ClaimIdempotencyKey returns it) of the same
// request (the same fingerprint) that names an object it creates: a
// thread, message, assistant, vector store or file batch, or the run of a
// createRun or createThreadAndRun (namesCreated). When the object exists
// (its claimant made it and died before recording the answer, and the
// retry came after the claim's lease), it is the answer, as for a repeat
// that finds the claim pending (answerIntent: a run as JSON, or its
// stream reattached); when it cannot be read (an error other than its not
// existing), the request is answered 409 idempotency_key_in_flux, which
// its client retries; otherwise next does the work. The request holds the
// claim: serveFirst records the answer, and an answer it does not
// remember puts the lapsed claim back (intent.lapsed, see forgetShared),
// so that the object it names is still looked for by the next repeat.
func (s *Server) lapsedCreate(key string, replaced store.IdempotencyRecord, fp [32]byte, intent *runIntent, next http.Handler) http.Handler {
	if !namesCreated(replaced) || !bytes.Equal(replaced.Fingerprint, fp[:]) {
		return next
	}
	intent.lapsed = &replaced
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp := fp
		answered, unreadable := s.answerIntent(w, r, key, replaced, false, &fp)
		switch {
		case answered:
		case unreadable != nil:
			s.log.Warn("idempotency: what a lapsed claim names could not be read", append(idemLogAttrs(replaced.Key, w.Header().Get("X-Request-Id")), "err", unreadable.Error())...)
			writeAPIError(w, errIdemRetry())
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// namedUpload returns the first of ids that names a stored file (not
// expired), if any.
func (s *Server) namedUpload(ctx context.Context, ids []string) (store.File, bool) {
	for _, id := range ids {
		if !validID(id) {
			continue
		}
		f, err := s.db.GetFile(ctx, projectOf(ctx), id)
		if err == nil && !s.fileExpired(f) {
			return f, true
		}
	}
	return store.File{}, false
}

// lapsedUpload returns the file stored for the key of an upload that has
// just claimed it (intent), when the claim it took over (replaced, as
// ClaimIdempotencyKey returns it, or intent.Prev, as the probe that found
// it lapsed named it) names one that exists.
func (s *Server) lapsedUpload(ctx context.Context, intent *runIntent, replaced store.IdempotencyRecord) (store.File, bool) {
	if intent.Object != intentFile {
		return store.File{}, false
	}
	ids := append(recordIntent(replaced).files(), intent.Prev...)
	return s.namedUpload(ctx, ids)
}

// replayUpload is the handler of an upload that claimed its key over a
// lapsed claim whose file exists (f): the file is the answer when the
// request uploads the same file (sameUpload); another upload is a 409
// idempotency_key_reused. When the file was deleted meanwhile, next
// uploads it (before the request's body is read) or the client is told to
// retry (a 409 idempotency_key_in_flux: after it was read). The request
// holds the claim: serveFirst records the answer.
func (s *Server) replayUpload(key string, f store.File, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := s.sameUpload(r, f)
		switch {
		case err != nil:
			writeAPIError(w, err)
		case m == uploadGone:
			next.ServeHTTP(w, r)
		case m != uploadSame:
			writeAPIError(w, errKeyReused(key))
		default:
			writeUploadReplay(w, f)
		}
	})
}

// writeUploadReplay answers with f as createFile does (200, the file
// object), marked Idempotent-Replayed.
func writeUploadReplay(w http.ResponseWriter, f store.File) {
	b, _ := json.Marshal(fileObject(f)) // plain fields: cannot fail
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// answerUpload answers a repeat of an upload whose key's claim (rec, with
// the upload's intent in) is still pending, when a file the claim names
// exists: with that file when the repeat uploads the same file, recording
// it as the key's answer in place of the claim (a compare-and-set on the
// claim's lease as read: a claimant that renewed it meanwhile is alive and
// records its own answer); with a 409 idempotency_key_reused when the
// repeat uploads other bytes or a file of another name or type; and with a
// 409 idempotency_key_in_flux (the client retries) when only the purpose
// or expiry differ, which a claimant still at work may be storing again
// (fields sent after the file, see CreateFile). It reports false, to wait
// for the claim, when no file the claim names exists (or the one found
// was deleted before the repeat's body was read).
//
// The answer is recorded first, and the file is the reply only when it
// was: when the compare-and-set fails (the claimant renewed its lease: it
// is alive and records its own answer) or its outcome is unknown, the
// repeat gets a 409 idempotency_key_in_flux and its retry finds the
// recorded answer.
func (s *Server) answerUpload(w http.ResponseWriter, r *http.Request, key string, rec store.IdempotencyRecord, in *runIntent) bool {
	f, ok := s.namedUpload(r.Context(), in.files())
	if !ok {
		return false
	}
	tee := &hashingBody{ReadCloser: r.Body, h: requestHash(r)}
	r.Body = tee
	m, err := s.sameUpload(r, f)
	switch {
	case err != nil:
		writeAPIError(w, err)
		return true
	case m == uploadGone:
		r.Body = tee.ReadCloser // nothing read
		return false
	case m == uploadOther:
		writeAPIError(w, errKeyReused(key))
		return true
	case m == uploadSameFile:
		writeAPIError(w, errIdemRetry())
		return true
	}
	var fp [32]byte
	tee.h.Sum(fp[:0])
	header, _ := json.Marshal(http.Header{"Content-Type": {"application/json"}})
	body, _ := json.Marshal(fileObject(f))
	done := store.IdempotencyRecord{Key: rec.Key, Fingerprint: fp[:], State: store.IdemDone, Status: http.StatusOK,
		Header: header, Body: append(body, '\n'), ExpiresAt: s.opts.Now().Add(s.opts.IdempotencyTTL)}
	recorded, cerr := s.db.CompleteIdempotencyKey(context.WithoutCancel(r.Context()), done, rec.ExpiresAt)
	if cerr != nil {
		s.log.Warn("idempotency: the answer was not recorded in the store", append(idemLogAttrs(rec.Key, w.Header().Get("X-Request-Id")), "err", cerr.Error())...)
	}
	if !recorded {
		writeAPIError(w, errIdemRetry())
		return true
	}
	writeUploadReplay(w, f)
	return true
}

// How a request's upload compares with a stored file (sameUpload).
type uploadMatch int

const (
	uploadOther    uploadMatch = iota // another file, or not an upload
	uploadSameFile                    // the same file, with another purpose or expiry
	uploadSame                        // the same file, purpose and expiry
	uploadGone                        // the stored file is gone; nothing of the request was read
)

// sameUpload reads the whole multipart body of r (as CreateFile would, with
// its limits) and reports whether it uploads f: uploadSameFile when its
// file part has f's bytes, name and content type; uploadSame when its
// purpose and expiry are f's too. The stored bytes are read back to
// compare (streamed, as the request's). It reports uploadGone, having
// read nothing of r's body, when f was deleted before; f deleted while
// the bodies are compared is a 409 idempotency_key_in_flux (err: the
// client retries). err is otherwise the API error of a body that cannot
// be read.
func (s *Server) sameUpload(r *http.Request, f store.File) (m uploadMatch, err *apiError) {
	ctx := r.Context()
	rc, oerr := s.db.OpenFile(ctx, projectOf(ctx), f.ID)
	if errors.Is(oerr, store.ErrNotFound) {
		return uploadGone, nil
	}
	if oerr != nil {
		return uploadOther, errIdemRetry() // the store failed: the client retries
	}
	defer rc.Close()
	defer func() {
		// The rest of the body (the tee of the fingerprint reads it all).
		if _, cerr := io.Copy(io.Discard, r.Body); cerr != nil && err == nil {
			err = bodyReadError(cerr)
		}
	}()
	mr, merr := r.MultipartReader()
	if merr != nil {
		return uploadOther, nil // not an upload of f (validation answers other requests)
	}
	u := &upload{}
	var sum [32]byte
	var n int64
	for parts := 0; ; parts++ {
		part, perr := mr.NextPart()
		if errors.Is(perr, io.EOF) {
			break
		}
		if perr != nil {
			return uploadOther, uploadReadError(perr)
		}
		if parts >= maxFormParts {
			return uploadOther, nil
		}
		switch name := part.FormName(); name {
		case "file":
			if u.haveFile {
				return uploadOther, nil
			}
			u.haveFile, u.filename, u.contentType = true, part.FileName(), part.Header.Get("Content-Type")
			h := sha256.New()
			var cerr error
			if n, cerr = io.Copy(h, io.LimitReader(part, s.opts.MaxFileBytes+1)); cerr != nil {
				return uploadOther, uploadReadError(cerr)
			}
			h.Sum(sum[:0])
		case "purpose", "expires_after[anchor]", "expires_after[seconds]":
			v, rerr := io.ReadAll(io.LimitReader(part, maxFormFieldLen+1))
			if rerr != nil {
				return uploadOther, uploadReadError(rerr)
			}
			switch v := string(bytes.TrimSpace(v)); name {
			case "purpose":
				u.purpose, u.havePurpose = v, true
			case "expires_after[anchor]":
				u.anchor = v
			default:
				u.seconds = v
			}
		default:
			if _, derr := io.Copy(io.Discard, io.LimitReader(part, s.opts.MaxFileBytes+1)); derr != nil {
				return uploadOther, uploadReadError(derr)
			}
		}
		_ = part.Close()
	}
	if !u.haveFile || n != f.Bytes {
		return uploadOther, nil
	}
	g, cerr := s.checkUpload(ctx, u)
	if cerr != nil || g.Filename != f.Filename || g.ContentType != f.ContentType {
		return uploadOther, nil
	}
	h := sha256.New()
	if _, rerr := io.Copy(h, rc); rerr != nil {
		// Deleted meanwhile (or the store failed): the client retries.
		return uploadOther, errIdemRetry()
	}
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		return uploadOther, nil
	}
	expiry := func(f store.File) int64 {
		if f.ExpiresAt == 0 {
			return 0
		}
		return f.ExpiresAt - f.CreatedAt
	}
	if g.Purpose != f.Purpose || expiry(g) != expiry(f) {
		return uploadSameFile, nil
	}
	return uploadSame, nil
}
