package helpers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// AttachTarget names the tool whose resources a file is attached to.
type AttachTarget string

// The tools a file can be attached to.
const (
	// AttachCodeInterpreter lists the file in tool_resources.code_interpreter.file_ids
	// (at most MaxCodeInterpreterFiles files).
	AttachCodeInterpreter AttachTarget = "code_interpreter"
	// AttachFileSearch adds the file to the first vector store in
	// tool_resources.file_search.vector_store_ids, creating that store
	// when there is none.
	AttachFileSearch AttachTarget = "file_search"
)

// MaxCodeInterpreterFiles is how many files the API lets an assistant's or
// a thread's code interpreter hold.
const MaxCodeInterpreterFiles = 20

// VectorStoreFilesClient is the part of *assistants.Client that the
// attach helpers use for file search.
type VectorStoreFilesClient interface {
	CreateVectorStore(ctx context.Context, body gen.CreateVectorStoreJSONRequestBody, reqEditors ...gen.RequestEditorFn) (*gen.VectorStoreObject, error)
	CreateVectorStoreFile(ctx context.Context, vectorStoreID string, body gen.CreateVectorStoreFileJSONRequestBody, reqEditors ...gen.RequestEditorFn) (*gen.VectorStoreFileObject, error)
	DeleteVectorStoreFile(ctx context.Context, vectorStoreID string, fileID string, reqEditors ...gen.RequestEditorFn) (*gen.DeleteVectorStoreFileResponse, error)
}

// AssistantFilesClient is the part of *assistants.Client that
// AttachAssistantFile and DetachAssistantFile use.
type AssistantFilesClient interface {
	VectorStoreFilesClient
	GetAssistant(ctx context.Context, assistantID string, reqEditors ...gen.RequestEditorFn) (*gen.AssistantObject, error)
	ModifyAssistant(ctx context.Context, assistantID string, body gen.ModifyAssistantJSONRequestBody, reqEditors ...gen.RequestEditorFn) (*gen.AssistantObject, error)
}

// ThreadFilesClient is the part of *assistants.Client that
// AttachThreadFile and DetachThreadFile use.
type ThreadFilesClient interface {
	VectorStoreFilesClient
	GetThread(ctx context.Context, threadID string, reqEditors ...gen.RequestEditorFn) (*gen.ThreadObject, error)
	ModifyThread(ctx context.Context, threadID string, body gen.ModifyThreadJSONRequestBody, reqEditors ...gen.RequestEditorFn) (*gen.ThreadObject, error)
}

// MessageGetter is the part of *assistants.Client that
// ListMessageFiles uses.
type MessageGetter interface {
	GetMessage(ctx context.Context, threadID string, messageID string, reqEditors ...gen.RequestEditorFn) (*gen.MessageObject, error)
}

// AttachAssistantFile gives the uploaded file fileID to the code interpreter
// or file search of assistant assistantID: the v2 equivalent of creating a
// v1 assistant file. It reads the assistant, then:
//
//   - AttachCodeInterpreter: adds fileID to code_interpreter.file_ids and
//     modifies the assistant (nothing when it is listed already; an error
//     when the list is full, MaxCodeInterpreterFiles).
//   - AttachFileSearch: adds the file to the first vector store of
//     file_search.vector_store_ids (POST /vector_stores/{id}/files), or when
//     there is none creates a vector store holding the file and sets it on
//     the assistant. The store processes the file in the background; use
//     CreateVectorStoreFileAndPoll or VectorStoreFiles to wait for it.
//
// The other tool's resources are kept. It does not enable the tool itself
// (the assistant's tools list). It returns the assistant as it is
// afterwards. This is a read-modify-write: a change made by someone else
// between the read and the write is overwritten.
func AttachAssistantFile(ctx context.Context, client AssistantFilesClient, assistantID, fileID string, target AttachTarget) (*gen.AssistantObject, error) {
	if client == nil {
		return nil, errors.New("helpers: attach assistant file: nil client")
	}
	return attachFile(ctx, client, "assistant", assistantID, fileID, target, assistantResources(client, assistantID))
}

// DetachAssistantFile takes file fileID away from the code interpreter or
// file search of assistant assistantID: the v2 equivalent of deleting a v1
// assistant file. For AttachCodeInterpreter it removes fileID from
// code_interpreter.file_ids; for AttachFileSearch it removes the file from
// every vector store in file_search.vector_store_ids that holds it. A file
// that is not attached is no error. The file itself and the vector stores
// are not deleted. It returns the assistant as it is afterwards; like
// AttachAssistantFile it is a read-modify-write.
func DetachAssistantFile(ctx context.Context, client AssistantFilesClient, assistantID, fileID string, target AttachTarget) (*gen.AssistantObject, error) {
	if client == nil {
		return nil, errors.New("helpers: detach assistant file: nil client")
	}
	return detachFile(ctx, client, "assistant", assistantID, fileID, target, assistantResources(client, assistantID))
}

// AttachThreadFile is AttachAssistantFile for thread threadID's
// tool_resources: the file is then available to every run on the thread.
func AttachThreadFile(ctx context.Context, client ThreadFilesClient, threadID, fileID string, target AttachTarget) (*gen.ThreadObject, error) {
	if client == nil {
		return nil, errors.New("helpers: attach thread file: nil client")
	}
	return attachFile(ctx, client, "thread", threadID, fileID, target, threadResources(client, threadID))
}

// DetachThreadFile is DetachAssistantFile for thread threadID's
// tool_resources.
func DetachThreadFile(ctx context.Context, client ThreadFilesClient, threadID, fileID string, target AttachTarget) (*gen.ThreadObject, error) {
	if client == nil {
		return nil, errors.New("helpers: detach thread file: nil client")
	}
	return detachFile(ctx, client, "thread", threadID, fileID, target, threadResources(client, threadID))
}

// MessageFile is one file a message carries as an attachment, and the tools
// it was given to ("code_interpreter", "file_search").
type MessageFile struct {
	FileID string
	Tools  []AttachTarget
}

// MessageFiles returns the files message m carries through its attachments,
// in order, each once (tools of repeated attachments merged): the v2
// equivalent of listing v1 message files. An attachment without a file ID
// is skipped; a tool whose type cannot be read is left out. A nil m or one
// without attachments gives nil.
func MessageFiles(m *gen.MessageObject) []MessageFile {
	if m == nil {
		return nil
	}
	var out []MessageFile
	for _, a := range m.Attachments {
		if a.FileId == nil || *a.FileId == "" {
			continue
		}
		i := slices.IndexFunc(out, func(f MessageFile) bool { return f.FileID == *a.FileId })
		if i < 0 {
			out = append(out, MessageFile{FileID: *a.FileId})
			i = len(out) - 1
		}
		if a.Tools == nil {
			continue
		}
		for _, t := range *a.Tools {
			d := t.Type
			if d == "" || slices.Contains(out[i].Tools, AttachTarget(d)) {
				continue
			}
			out[i].Tools = append(out[i].Tools, AttachTarget(d))
		}
	}
	return out
}

// ListMessageFiles reads message messageID of thread threadID and returns
// the files it carries (see MessageFiles). Errors: an empty ID, a failed
// request, a non-2xx reply as *assistants.APIError.
func ListMessageFiles(ctx context.Context, client MessageGetter, threadID, messageID string) ([]MessageFile, error) {
	switch {
	case client == nil:
		return nil, errors.New("helpers: message files: nil client")
	case threadID == "" || messageID == "":
		return nil, errors.New("helpers: message files: empty thread or message ID")
	}
	m, err := client.GetMessage(ctx, threadID, messageID)
	if err != nil {
		return nil, fmt.Errorf("helpers: message files: %w", err)
	}
	return MessageFiles(m), nil
}

// Attachment returns a message attachment giving file fileID to tools
// (none: both code interpreter and file search), for
// gen.CreateMessageRequest.Attachments. An unknown target is left out.
func Attachment(fileID string, tools ...AttachTarget) gen.MessageAttachment {
	if len(tools) == 0 {
		tools = []AttachTarget{AttachCodeInterpreter, AttachFileSearch}
	}
	var ts []gen.MessageAttachmentTool
	for _, t := range tools {
		switch t {
		case AttachCodeInterpreter:
			ts = append(ts, gen.MessageAttachmentTool{Type: gen.MessageAttachmentToolTypeCodeInterpreter})
		case AttachFileSearch:
			ts = append(ts, gen.MessageAttachmentTool{Type: gen.MessageAttachmentToolTypeFileSearch})
		}
	}
	return gen.MessageAttachment{FileId: &fileID, Tools: &ts}
}

// resources reads and writes the tool_resources of one assistant or thread;
// T is the object returned to the caller.
type resources[T any] struct {
	get func(ctx context.Context) (*T, *gen.ToolResources, error)
	set func(ctx context.Context, tr gen.ToolResources) (*T, error)
}

func assistantResources(c AssistantFilesClient, id string) resources[gen.AssistantObject] {
	return resources[gen.AssistantObject]{
		get: func(ctx context.Context) (*gen.AssistantObject, *gen.ToolResources, error) {
			a, err := c.GetAssistant(ctx, id)
			if err != nil {
				return nil, nil, err
			}
			return a, a.ToolResources, nil
		},
		set: func(ctx context.Context, tr gen.ToolResources) (*gen.AssistantObject, error) {
			return c.ModifyAssistant(ctx, id, gen.ModifyAssistantRequest{ToolResources: &tr})
		},
	}
}

func threadResources(c ThreadFilesClient, id string) resources[gen.ThreadObject] {
	return resources[gen.ThreadObject]{
		get: func(ctx context.Context) (*gen.ThreadObject, *gen.ToolResources, error) {
			t, err := c.GetThread(ctx, id)
			if err != nil {
				return nil, nil, err
			}
			return t, t.ToolResources, nil
		},
		set: func(ctx context.Context, tr gen.ToolResources) (*gen.ThreadObject, error) {
			return c.ModifyThread(ctx, id, gen.ModifyThreadRequest{ToolResources: &tr})
		},
	}
}

// copyResources returns a deep copy of tr (empty when nil).
func copyResources(tr *gen.ToolResources) gen.ToolResources {
	var out gen.ToolResources
	if tr == nil {
		return out
	}
	if ci := tr.CodeInterpreter; ci != nil {
		out.CodeInterpreter = &gen.ToolResourcesCodeInterpreter{FileIds: listCloneSlice(ci.FileIds)}
	}
	if fs := tr.FileSearch; fs != nil {
		out.FileSearch = &gen.ToolResourcesFileSearch{VectorStoreIds: listCloneSlice(fs.VectorStoreIds)}
	}
	return out
}

func codeInterpreterFiles(tr gen.ToolResources) []string {
	if tr.CodeInterpreter == nil || tr.CodeInterpreter.FileIds == nil {
		return nil
	}
	return *tr.CodeInterpreter.FileIds
}

func fileSearchStores(tr gen.ToolResources) []string {
	if tr.FileSearch == nil || tr.FileSearch.VectorStoreIds == nil {
		return nil
	}
	return *tr.FileSearch.VectorStoreIds
}

func checkAttachArgs(op, kind, id, fileID string, target AttachTarget) error {
	switch {
	case id == "":
		return fmt.Errorf("helpers: %s %s file: empty %s ID", op, kind, kind)
	case fileID == "":
		return fmt.Errorf("helpers: %s %s file: empty file ID", op, kind)
	case target != AttachCodeInterpreter && target != AttachFileSearch:
		return fmt.Errorf("helpers: %s %s file: unknown target %q (want %q or %q)", op, kind, target, AttachCodeInterpreter, AttachFileSearch)
	}
	return nil
}

func attachFile[T any](ctx context.Context, vs VectorStoreFilesClient, kind, id, fileID string, target AttachTarget, r resources[T]) (*T, error) {
	if err := checkAttachArgs("attach", kind, id, fileID, target); err != nil {
		return nil, err
	}
	wrap := func(err error) error {
		return fmt.Errorf("helpers: attach file %s to %s %s: %w", fileID, kind, id, err)
	}
	obj, cur, err := r.get(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	tr := copyResources(cur)
	switch target {
	case AttachCodeInterpreter:
		files := codeInterpreterFiles(tr)
		if slices.Contains(files, fileID) {
			return obj, nil
		}
		if len(files) >= MaxCodeInterpreterFiles {
			return nil, wrap(fmt.Errorf("code_interpreter already holds %d files, the most allowed", len(files)))
		}
		files = append(slices.Clone(files), fileID)
		tr.CodeInterpreter = &gen.ToolResourcesCodeInterpreter{FileIds: &files}
	case AttachFileSearch:
		if stores := fileSearchStores(tr); len(stores) > 0 {
			_, err := vs.CreateVectorStoreFile(ctx, stores[0],
				gen.CreateVectorStoreFileRequest{FileId: fileID})
			if err != nil {
				return nil, wrap(fmt.Errorf("add to vector store %s: %w", stores[0], err))
			}
			return obj, nil
		}
		name := kind + " " + id
		store, err := vs.CreateVectorStore(ctx,
			gen.CreateVectorStoreRequest{Name: &name, FileIds: &[]string{fileID}})
		if err != nil {
			return nil, wrap(fmt.Errorf("create vector store: %w", err))
		}
		tr.FileSearch = &gen.ToolResourcesFileSearch{VectorStoreIds: &[]string{store.Id}}
	}
	out, err := r.set(ctx, tr)
	if err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

func detachFile[T any](ctx context.Context, vs VectorStoreFilesClient, kind, id, fileID string, target AttachTarget, r resources[T]) (*T, error) {
	if err := checkAttachArgs("detach", kind, id, fileID, target); err != nil {
		return nil, err
	}
	wrap := func(err error) error {
		return fmt.Errorf("helpers: detach file %s from %s %s: %w", fileID, kind, id, err)
	}
	obj, cur, err := r.get(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	tr := copyResources(cur)
	switch target {
	case AttachCodeInterpreter:
		files := codeInterpreterFiles(tr)
		if !slices.Contains(files, fileID) {
			return obj, nil
		}
		kept := slices.DeleteFunc(slices.Clone(files), func(f string) bool { return f == fileID })
		tr.CodeInterpreter = &gen.ToolResourcesCodeInterpreter{FileIds: &kept}
		out, err := r.set(ctx, tr)
		if err != nil {
			return nil, wrap(err)
		}
		return out, nil
	default: // AttachFileSearch
		for _, store := range fileSearchStores(tr) {
			_, err := vs.DeleteVectorStoreFile(ctx, store, fileID)
			if err != nil && !assistants.IsNotFound(err) {
				return nil, wrap(fmt.Errorf("remove from vector store %s: %w", store, err))
			}
		}
		return obj, nil
	}
}
