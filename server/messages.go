package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/store"
)

// Limits on message fields.
const (
	maxMessageChars   = 256000
	maxContentParts   = 100
	maxAttachments    = 10
	maxImageURLLength = 8192
)

// ListMessages returns a page of a thread's messages, optionally only those
// a given run produced.
func (s *Server) ListMessages(ctx context.Context, req genserver.ListMessagesRequestObject) (genserver.ListMessagesResponseObject, error) {
	p := req.Params
	lp, err := newListParams(p.Limit, (*string)(p.Order), p.After, p.Before)
	if err != nil {
		return nil, err
	}
	if !validID(req.ThreadId) {
		return nil, errNotFound("thread", req.ThreadId)
	}
	runID := ""
	if p.RunId != nil {
		runID = *p.RunId
		if runID == "" {
			// An empty run id names no run (the store reads "" as "any").
			if _, err := s.getThreadObject(ctx, req.ThreadId); err != nil {
				return nil, err
			}
			return genserver.ListMessages200JSONResponse{Object: "list", Data: []gen.MessageObject{}}, nil
		}
	}
	pg, err := s.db.ListMessages(ctx, projectOf(ctx), req.ThreadId, runID, storeList(lp))
	if err != nil {
		return nil, storeErr(err, "thread", req.ThreadId)
	}
	data, err := decodeAll[store.Message, gen.MessageObject](pg.Items, func(m store.Message) []byte { return m.Data })
	if err != nil {
		return nil, err
	}
	first, last := firstLast(data, func(m gen.MessageObject) string { return m.Id })
	more := pg.HasMore
	return genserver.ListMessages200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
}

// CreateMessage adds a message to a thread. It is refused with a 400 while a
// run of the thread is active, like the API. The check for an active run and
// the write happen under one hold of the thread's mutex (threadlocks.go), and
// a run is created under the same mutex, so a message never lands on a
// locked thread.
func (s *Server) CreateMessage(ctx context.Context, req genserver.CreateMessageRequestObject) (genserver.CreateMessageResponseObject, error) {
	if !validID(req.ThreadId) {
		return nil, errNotFound("thread", req.ThreadId)
	}
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	defer s.threads.lock(req.ThreadId)()
	if _, err := s.getThreadObject(ctx, req.ThreadId); err != nil {
		return nil, err
	}
	if runID, active := s.eng.activeRun(ctx, req.ThreadId); active {
		return nil, errThreadLocked(req.ThreadId, runID)
	}
	m, err := s.buildMessage(ctx, req.ThreadId, *req.Body, "")
	if err != nil {
		return nil, err
	}
	// A new id, sorting after everything made before this write; a keyed
	// request's claim names it in the same write (claimedMessage).
	m.Id = newID(prefixMessage)
	s.hooks.messageChecked()
	sm, err := storeMessage(projectOf(ctx), m)
	if err != nil {
		return nil, err
	}
	if err := s.claimedMessage(ctx, sm); err != nil {
		if errors.Is(err, store.ErrClaimLost) {
			// The claim's lease lapsed and another request took the key:
			// that one makes the message.
			return nil, errIdemRetry()
		}
		if errors.Is(err, store.ErrThreadLocked) {
			// A run of another process took the thread.
			runID, _ := s.eng.activeRun(ctx, req.ThreadId)
			return nil, errThreadLocked(req.ThreadId, runID)
		}
		return nil, storeErr(err, "thread", req.ThreadId)
	}
	return genserver.CreateMessage200JSONResponse(m), nil
}

// storeMessage is the store's value of a message.
func storeMessage(project string, m gen.MessageObject) (store.Message, error) {
	data, err := encodeData(m)
	if err != nil {
		return store.Message{}, err
	}
	sm := store.Message{Project: project, ID: m.Id, ThreadID: m.ThreadId, CreatedAt: int64(m.CreatedAt), Data: data}
	if m.RunId != nil {
		sm.RunID = *m.RunId
	}
	return sm, nil
}

// errThreadLocked is the API's answer to a message added while a run is active.
func errThreadLocked(threadID, runID string) *apiError {
	return errBadRequest("", "Can't add messages to %s while a run %s is active.", threadID, runID)
}

// GetMessage returns one message of a thread.
func (s *Server) GetMessage(ctx context.Context, req genserver.GetMessageRequestObject) (genserver.GetMessageResponseObject, error) {
	m, err := s.lookupMessage(ctx, req.ThreadId, req.MessageId)
	if err != nil {
		return nil, err
	}
	return genserver.GetMessage200JSONResponse(m), nil
}

// ModifyMessage replaces a message's metadata.
func (s *Server) ModifyMessage(ctx context.Context, req genserver.ModifyMessageRequestObject) (genserver.ModifyMessageResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	if err := validateMetadata(req.Body.Metadata); err != nil {
		return nil, err
	}
	m, err := s.lookupMessage(ctx, req.ThreadId, req.MessageId)
	if err != nil {
		return nil, err
	}
	if req.Body.Metadata == nil {
		return genserver.ModifyMessage200JSONResponse(m), nil
	}
	_, err = s.db.UpdateMessage(ctx, projectOf(ctx), req.ThreadId, req.MessageId, func(sm *store.Message) error {
		var err error
		if m, err = decodeData[gen.MessageObject](sm.Data); err != nil {
			return err
		}
		m.Metadata = cloneMetadata(req.Body.Metadata)
		sm.Data, err = encodeData(m)
		return err
	})
	if err != nil {
		return nil, storeErr(err, "message", req.MessageId)
	}
	return genserver.ModifyMessage200JSONResponse(m), nil
}

// DeleteMessage removes a message from a thread.
func (s *Server) DeleteMessage(ctx context.Context, req genserver.DeleteMessageRequestObject) (genserver.DeleteMessageResponseObject, error) {
	if _, err := s.lookupMessage(ctx, req.ThreadId, req.MessageId); err != nil {
		return nil, err
	}
	if err := s.db.DeleteMessage(ctx, projectOf(ctx), req.ThreadId, req.MessageId); err != nil {
		return nil, storeErr(err, "message", req.MessageId)
	}
	return genserver.DeleteMessage200JSONResponse{Id: req.MessageId, Object: "thread.message.deleted", Deleted: true}, nil
}

// lookupMessage finds one message of a thread: a 404 names the thread
// when it does not exist, else the message.
func (s *Server) lookupMessage(ctx context.Context, threadID, msgID string) (gen.MessageObject, error) {
	if _, err := s.getThreadObject(ctx, threadID); err != nil {
		return gen.MessageObject{}, err
	}
	if !validID(msgID) {
		return gen.MessageObject{}, errNotFound("message", msgID)
	}
	sm, err := s.db.GetMessage(ctx, projectOf(ctx), threadID, msgID)
	if err != nil {
		return gen.MessageObject{}, storeErr(err, "message", msgID)
	}
	return decodeData[gen.MessageObject](sm.Data)
}

// threadMessages returns a thread's messages in creation order, oldest
// first, or a 404 for an unknown thread. (The run engine reads them for a
// model round.)
func (s *Server) threadMessages(ctx context.Context, threadID string) ([]gen.MessageObject, error) {
	if !validID(threadID) {
		return nil, errNotFound("thread", threadID)
	}
	ctx = context.WithoutCancel(ctx)
	var out []gen.MessageObject
	lp := store.ListParams{Limit: 100}
	for {
		pg, err := s.db.ListMessages(ctx, projectOf(ctx), threadID, "", lp)
		if err != nil {
			return nil, storeErr(err, "thread", threadID)
		}
		for _, sm := range pg.Items {
			m, err := decodeData[gen.MessageObject](sm.Data)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		if !pg.HasMore || len(pg.Items) == 0 {
			return out, nil
		}
		lp.After = pg.Items[len(pg.Items)-1].ID
	}
}

// buildMessage validates req and returns the message it describes for
// threadID (status completed, created now). It is not stored. prefix is put in front of parameter names in errors (e.g.
// "messages[2].").
func (s *Server) buildMessage(ctx context.Context, threadID string, req gen.CreateMessageRequest, prefix string) (gen.MessageObject, error) {
	var role gen.MessageObjectRole
	switch req.Role {
	case gen.CreateMessageRequestRoleUser:
		role = gen.MessageObjectRoleUser
	case gen.CreateMessageRequestRoleAssistant:
		role = gen.MessageObjectRoleAssistant
	default:
		return gen.MessageObject{}, errBadRequest(prefix+"role", "Invalid value for '%srole': expected one of 'user' or 'assistant'.", prefix)
	}
	if err := validateMetadataParam(prefix+"metadata", req.Metadata); err != nil {
		return gen.MessageObject{}, err
	}
	content, err := s.buildContent(ctx, req.Content, prefix+"content")
	if err != nil {
		return gen.MessageObject{}, err
	}
	attachments := []gen.MessageAttachment{}
	if req.Attachments != nil {
		if len(*req.Attachments) > maxAttachments {
			return gen.MessageObject{}, errBadRequest(prefix+"attachments", "Invalid '%sattachments': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", prefix, maxAttachments, len(*req.Attachments))
		}
		for i, a := range *req.Attachments {
			param := fmt.Sprintf("%sattachments[%d]", prefix, i)
			if a.FileId == nil || *a.FileId == "" {
				return gen.MessageObject{}, errBadRequest(param+".file_id", "Missing required parameter: '%s.file_id'.", param)
			}
			if !validID(*a.FileId) || !s.fileExists(ctx, *a.FileId) {
				return gen.MessageObject{}, errBadRequest(param+".file_id", "Invalid '%s.file_id': no file found with id '%s'.", param, truncateForMessage(*a.FileId))
			}
			if a.Tools != nil {
				for j, t := range *a.Tools {
					if k := t.Type; k != gen.MessageAttachmentToolTypeCodeInterpreter && k != gen.MessageAttachmentToolTypeFileSearch {
						return gen.MessageObject{}, errBadRequest(fmt.Sprintf("%s.tools[%d].type", param, j), "Invalid value for '%s.tools[%d].type': expected one of 'code_interpreter' or 'file_search'.", param, j)
					}
				}
			}
			c := a
			c.FileId = cloneStr(a.FileId)
			if a.Tools != nil {
				t := slices.Clone(*a.Tools)
				c.Tools = &t
			}
			attachments = append(attachments, c)
		}
	}
	return gen.MessageObject{
		Id:          newID(prefixMessage),
		Object:      "thread.message",
		CreatedAt:   s.now(),
		ThreadId:    threadID,
		Role:        role,
		Status:      gen.MessageObjectStatusCompleted,
		Content:     content,
		Attachments: attachments,
		Metadata:    emptyMetadata(req.Metadata),
	}, nil
}

// buildContent turns request content (a string or a list of text and
// image parts) into message content parts.
func (s *Server) buildContent(ctx context.Context, c gen.CreateMessageRequest_Content, param string) ([]gen.MessageContent, error) {
	if text, err := c.AsCreateMessageText(); err == nil {
		if err := checkText(param, text); err != nil {
			return nil, err
		}
		part, err := textContent(text)
		if err != nil {
			return nil, err
		}
		return []gen.MessageContent{part}, nil
	}
	parts, err := c.AsCreateMessageParts()
	if err != nil {
		return nil, errBadRequest(param, "Invalid '%s': expected a string or an array of content parts.", param)
	}
	if len(parts) == 0 {
		return nil, errBadRequest(param, "Invalid '%s': empty array. Expected an array with minimum length 1, but got an empty array instead.", param)
	}
	if len(parts) > maxContentParts {
		return nil, errBadRequest(param, "Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", param, maxContentParts, len(parts))
	}
	out := make([]gen.MessageContent, 0, len(parts))
	for i, p := range parts {
		pp := fmt.Sprintf("%s[%d]", param, i)
		kind, err := p.Discriminator()
		if err != nil {
			return nil, errBadRequest(pp, "Invalid '%s': expected a content part object.", pp)
		}
		var part gen.MessageContent
		switch kind {
		case "text":
			t, err := p.AsMessageRequestContentTextObject()
			if err != nil {
				return nil, errBadRequest(pp+".text", "Invalid '%s.text': expected a string.", pp)
			}
			if err := checkText(pp+".text", t.Text); err != nil {
				return nil, err
			}
			if part, err = textContent(t.Text); err != nil {
				return nil, err
			}
		case "image_file":
			f, err := p.AsMessageContentImageFileObject()
			if err != nil || f.ImageFile.FileId == "" {
				return nil, errBadRequest(pp+".image_file.file_id", "Invalid '%s.image_file.file_id': expected a file id.", pp)
			}
			if !validID(f.ImageFile.FileId) || !s.fileExists(ctx, f.ImageFile.FileId) {
				return nil, errBadRequest(pp+".image_file.file_id", "Invalid '%s.image_file.file_id': no file found with id '%s'.", pp, truncateForMessage(f.ImageFile.FileId))
			}
			if f.ImageFile.Detail != nil && !f.ImageFile.Detail.Valid() {
				return nil, errBadRequest(pp+".image_file.detail", "Invalid value for '%s.image_file.detail': expected one of 'auto', 'low' or 'high'.", pp)
			}
			part = gen.MessageContent{Type: gen.MessageContentTypeImageFile, ImageFile: f.ImageFile}
		case "image_url":
			u, err := p.AsMessageContentImageUrlObject()
			if err != nil || u.ImageUrl.Url == "" || len(u.ImageUrl.Url) > maxImageURLLength {
				return nil, errBadRequest(pp+".image_url.url", "Invalid '%s.image_url.url': expected a URL of at most %d characters.", pp, maxImageURLLength)
			}
			if u.ImageUrl.Detail != nil && !u.ImageUrl.Detail.Valid() {
				return nil, errBadRequest(pp+".image_url.detail", "Invalid value for '%s.image_url.detail': expected one of 'auto', 'low' or 'high'.", pp)
			}
			part = gen.MessageContent{Type: gen.MessageContentTypeImageUrl, ImageUrl: u.ImageUrl}
		default:
			return nil, errBadRequest(pp+".type", "Invalid value for '%s.type': expected one of 'text', 'image_file' or 'image_url'.", pp)
		}
		out = append(out, part)
	}
	return out, nil
}

func checkText(param, text string) error {
	if text == "" {
		return errBadRequest(param, "Invalid '%s': string too short. Expected a string with minimum length 1, but got an empty string instead.", param)
	}
	if !utf8.ValidString(text) {
		return errBadRequest(param, "Invalid '%s': the string is not valid UTF-8.", param)
	}
	if n := utf8.RuneCountInString(text); n > maxMessageChars {
		return errBadRequest(param, "Invalid '%s': string too long. Expected a string with maximum length %d, but got a string with length %d instead.", param, maxMessageChars, n)
	}
	return nil
}

// textContent is a text content part with no annotations.
func textContent(text string) (gen.MessageContent, error) {
	return gen.MessageContent{Type: gen.MessageContentTypeText,
		Text: gen.MessageContentText{Value: text, Annotations: []gen.MessageContentTextAnnotation{}}}, nil
}
