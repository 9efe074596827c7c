package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
	"github.com/assistants-go/assistants/server/store"
)

// Limits on assistant fields, as the API documents them.
const (
	maxTools           = 128
	maxNameLen         = 256
	maxDescriptionLen  = 512
	maxInstructionsLen = 256000
	maxCodeFiles       = 20
	maxVectorStoreIDs  = 1
)

// ListAssistants returns a page of assistants.
func (s *Server) ListAssistants(ctx context.Context, req genserver.ListAssistantsRequestObject) (genserver.ListAssistantsResponseObject, error) {
	p := req.Params
	lp, err := newListParams(p.Limit, (*string)(p.Order), p.After, p.Before)
	if err != nil {
		return nil, err
	}
	pg, err := s.db.ListAssistants(ctx, projectOf(ctx), storeList(lp))
	if err != nil {
		return nil, storeErr(err, "assistant", "")
	}
	data, err := decodeAll[store.Assistant, gen.AssistantObject](pg.Items, func(a store.Assistant) []byte { return a.Data })
	if err != nil {
		return nil, err
	}
	first, last := firstLast(data, func(a gen.AssistantObject) string { return a.Id })
	more := pg.HasMore
	return genserver.ListAssistants200JSONResponse{Object: "list", Data: data, FirstId: first, LastId: last, HasMore: more}, nil
}

// CreateAssistant validates and stores a new assistant.
func (s *Server) CreateAssistant(ctx context.Context, req genserver.CreateAssistantRequestObject) (genserver.CreateAssistantResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	if strings.TrimSpace(b.Model) == "" {
		return nil, errBadRequest("model", "Missing required parameter: 'model'.")
	}
	if err := validateAssistantFields(b.Name, b.Description, b.Instructions, b.Tools, b.Temperature, b.TopP, b.Metadata); err != nil {
		return nil, err
	}
	tr, made, err := s.createToolResources(ctx, b.ToolResources)
	if err != nil {
		return nil, err
	}
	a := gen.AssistantObject{
		Id:             createdID(ctx, intentAssistant, prefixAssistant), // the Idempotency-Key claim's, if any (idemshared.go)
		Object:         "assistant",
		CreatedAt:      s.now(),
		Model:          b.Model,
		Name:           cloneStr(b.Name),
		Description:    cloneStr(b.Description),
		Instructions:   cloneStr(b.Instructions),
		Metadata:       emptyMetadata(b.Metadata),
		Tools:          cloneTools(b.Tools),
		ToolResources:  tr,
		Temperature:    b.Temperature,
		TopP:           b.TopP,
		ResponseFormat: b.ResponseFormat,
	}
	if a.ToolResources == nil {
		a.ToolResources = &gen.ToolResources{}
	}
	if a.Temperature == nil {
		a.Temperature = ptrOf(float32(1))
	}
	if a.TopP == nil {
		a.TopP = ptrOf(float32(1))
	}
	if a.ResponseFormat == nil {
		var auto gen.AssistantsApiResponseFormatOption
		if err := auto.FromResponseFormatMode("auto"); err == nil {
			a.ResponseFormat = &auto
		}
	}
	data, err := encodeData(a)
	if err != nil {
		made.undo(ctx)
		return nil, err
	}
	sa := store.Assistant{Project: projectOf(ctx), ID: a.Id, CreatedAt: int64(a.CreatedAt), Data: data}
	err = made.write(ctx, func() error {
		if c := claimFence(ctx, intentAssistant, a.Id); c != nil {
			return s.db.CreateAssistantClaimed(ctx, sa, *c)
		}
		return s.db.CreateAssistant(ctx, sa)
	})
	if err != nil {
		return nil, storeErr(err, "assistant", a.Id)
	}
	return genserver.CreateAssistant200JSONResponse(a), nil
}

// GetAssistant returns one assistant.
func (s *Server) GetAssistant(ctx context.Context, req genserver.GetAssistantRequestObject) (genserver.GetAssistantResponseObject, error) {
	a, err := s.getAssistant(ctx, req.AssistantId)
	if err != nil {
		return nil, err
	}
	return genserver.GetAssistant200JSONResponse(a), nil
}

// ModifyAssistant changes the fields sent and keeps the others.
func (s *Server) ModifyAssistant(ctx context.Context, req genserver.ModifyAssistantRequestObject) (genserver.ModifyAssistantResponseObject, error) {
	if !validID(req.AssistantId) {
		return nil, errNotFound("assistant", req.AssistantId)
	}
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	if b.Model != nil && strings.TrimSpace(*b.Model) == "" {
		return nil, errBadRequest("model", "Invalid 'model': expected a non-empty string.")
	}
	if err := validateAssistantFields(b.Name, b.Description, b.Instructions, b.Tools, b.Temperature, b.TopP, b.Metadata); err != nil {
		return nil, err
	}
	if _, err := s.getAssistant(ctx, req.AssistantId); err != nil {
		return nil, err
	}
	if b.ToolResources != nil {
		if err := s.checkToolResources(ctx, b.ToolResources); err != nil {
			return nil, err
		}
	}
	var a gen.AssistantObject
	_, err := s.db.UpdateAssistant(ctx, projectOf(ctx), req.AssistantId, func(st *store.Assistant) error {
		var err error
		if a, err = decodeData[gen.AssistantObject](st.Data); err != nil {
			return err
		}
		modifyAssistant(&a, b)
		st.Data, err = encodeData(a)
		return err
	})
	if err != nil {
		return nil, storeErr(err, "assistant", req.AssistantId)
	}
	return genserver.ModifyAssistant200JSONResponse(a), nil
}

// modifyAssistant applies the fields of a modify request to a.
func modifyAssistant(a *gen.AssistantObject, b *gen.ModifyAssistantRequest) {
	if b.ToolResources != nil {
		a.ToolResources = cloneToolResources(b.ToolResources)
	}
	if b.Model != nil {
		a.Model = *b.Model
	}
	if b.Name != nil {
		a.Name = cloneStr(b.Name)
	}
	if b.Description != nil {
		a.Description = cloneStr(b.Description)
	}
	if b.Instructions != nil {
		a.Instructions = cloneStr(b.Instructions)
	}
	if b.Metadata != nil {
		a.Metadata = cloneMetadata(b.Metadata)
	}
	if b.Tools != nil {
		a.Tools = cloneTools(b.Tools)
	}
	if b.Temperature != nil {
		a.Temperature = b.Temperature
	}
	if b.TopP != nil {
		a.TopP = b.TopP
	}
	if b.ResponseFormat != nil {
		a.ResponseFormat = b.ResponseFormat
	}
}

// DeleteAssistant removes an assistant. Runs that used it keep their copy.
func (s *Server) DeleteAssistant(ctx context.Context, req genserver.DeleteAssistantRequestObject) (genserver.DeleteAssistantResponseObject, error) {
	if !validID(req.AssistantId) {
		return nil, errNotFound("assistant", req.AssistantId)
	}
	if err := s.db.DeleteAssistant(ctx, projectOf(ctx), req.AssistantId); err != nil {
		return nil, storeErr(err, "assistant", req.AssistantId)
	}
	return genserver.DeleteAssistant200JSONResponse{Id: req.AssistantId, Object: "assistant.deleted", Deleted: true}, nil
}

// getAssistant returns a copy of a stored assistant, or a 404.
func (s *Server) getAssistant(ctx context.Context, id string) (gen.AssistantObject, error) {
	if !validID(id) {
		return gen.AssistantObject{}, errNotFound("assistant", id)
	}
	a, err := s.db.GetAssistant(ctx, projectOf(ctx), id)
	if err != nil {
		return gen.AssistantObject{}, storeErr(err, "assistant", id)
	}
	return decodeData[gen.AssistantObject](a.Data)
}

// validateAssistantFields checks the limits shared by create and modify.
func validateAssistantFields(name, desc, instr *string, tools *[]gen.AssistantTool, temp, topP *float32, md *gen.Metadata) error {
	if name != nil && len([]rune(*name)) > maxNameLen {
		return errBadRequest("name", "Invalid 'name': string too long. Expected a string with maximum length %d.", maxNameLen)
	}
	if desc != nil && len([]rune(*desc)) > maxDescriptionLen {
		return errBadRequest("description", "Invalid 'description': string too long. Expected a string with maximum length %d.", maxDescriptionLen)
	}
	if instr != nil && len(*instr) > maxInstructionsLen {
		return errBadRequest("instructions", "Invalid 'instructions': string too long. Expected a string with maximum length %d.", maxInstructionsLen)
	}
	if tools != nil {
		if err := validateTools("tools", *tools); err != nil {
			return err
		}
	}
	if temp != nil && (*temp < 0 || *temp > 2) {
		return errBadRequest("temperature", "Invalid 'temperature': expected a number between 0 and 2.")
	}
	if topP != nil && (*topP < 0 || *topP > 1) {
		return errBadRequest("top_p", "Invalid 'top_p': expected a number between 0 and 1.")
	}
	return validateMetadata(md)
}

// validateTools checks the tool list: at most 128 tools, known types,
// function tools with a name.
func validateTools(param string, tools []gen.AssistantTool) error {
	if len(tools) > maxTools {
		return errBadRequest(param, "Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", param, maxTools, len(tools))
	}
	names := map[string]bool{}
	for i, t := range tools {
		kind, err := t.Discriminator()
		if err != nil {
			return errBadRequest(fmt.Sprintf("%s[%d]", param, i), "Invalid '%s[%d]': expected a tool object.", param, i)
		}
		switch kind {
		case "code_interpreter", "file_search":
		case "function":
			f, err := t.AsAssistantToolsFunction()
			if err != nil {
				return errBadRequest(fmt.Sprintf("%s[%d].function", param, i), "Invalid '%s[%d].function': %v", param, i, err)
			}
			n := f.Function.Name
			if n == "" || len(n) > 64 || !validFunctionName(n) {
				return errBadRequest(fmt.Sprintf("%s[%d].function.name", param, i), "Invalid '%s[%d].function.name': expected 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes.", param, i)
			}
			if names[n] {
				return errBadRequest(fmt.Sprintf("%s[%d].function.name", param, i), "Invalid '%s[%d].function.name': duplicate function name '%s'.", param, i, n)
			}
			names[n] = true
		default:
			return errBadRequest(fmt.Sprintf("%s[%d].type", param, i), "Invalid value for '%s[%d].type': expected one of 'code_interpreter', 'file_search' or 'function'.", param, i)
		}
	}
	return nil
}

func validFunctionName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// createToolResources turns creation-time tool resources into stored
// ones: it checks that files and vector stores exist, and builds the vector
// store asked for with file_search.vector_stores (whose files may be
// processed before it returns: it must not run with a thread's mutex held).
//
// The vector stores it made are returned as a madeStores (nil when it made
// none): the caller writes the object that references them through
// madeStores.write, and calls madeStores.undo when it fails before that
// write, so that a create that fails leaves no vector store behind. When
// createToolResources fails, it has deleted those it made itself.
func (s *Server) createToolResources(ctx context.Context, tr *gen.ToolResourcesCreate) (*gen.ToolResources, *madeStores, error) {
	if tr == nil {
		return nil, nil, nil
	}
	out := &gen.ToolResources{}
	if ci := tr.CodeInterpreter; ci != nil {
		if err := s.checkFileIDs(ctx, "tool_resources.code_interpreter.file_ids", ci.FileIds, maxCodeFiles); err != nil {
			return nil, nil, err
		}
		out.CodeInterpreter = &gen.ToolResourcesCodeInterpreter{FileIds: cloneStrings(ci.FileIds)}
	}
	if fs := tr.FileSearch; fs != nil {
		ids := []string{}
		if fs.VectorStoreIds != nil {
			ids = slices.Clone(*fs.VectorStoreIds)
		}
		var stores []gen.ToolResourcesVectorStoreCreate
		if fs.VectorStores != nil {
			stores = *fs.VectorStores
		}
		if len(ids) > 0 && len(stores) > 0 {
			return nil, nil, errBadRequest("tool_resources.file_search", "Invalid 'tool_resources.file_search': give either 'vector_store_ids' or 'vector_stores', not both.")
		}
		if len(stores) > maxVectorStoreIDs {
			return nil, nil, errBadRequest("tool_resources.file_search.vector_stores", "Invalid 'tool_resources.file_search.vector_stores': expected at most %d vector store.", maxVectorStoreIDs)
		}
		if err := s.checkVectorStoreIDs(ctx, "tool_resources.file_search.vector_store_ids", &ids); err != nil {
			return nil, nil, err
		}
		for i, vs := range stores {
			param := fmt.Sprintf("tool_resources.file_search.vector_stores[%d]", i)
			if err := validateMetadataParam(param+".metadata", vs.Metadata); err != nil {
				return nil, nil, err
			}
			if vs.FileIds != nil {
				if err := checkFileIDFormat(param+".file_ids", *vs.FileIds, maxBatchFiles); err != nil {
					return nil, nil, err
				}
			}
			if _, err := chunkingFromRequest(param+".chunking_strategy", vs.ChunkingStrategy); err != nil {
				return nil, nil, err
			}
		}
		var made *madeStores
		for _, vs := range stores {
			var fileIDs []string
			if vs.FileIds != nil {
				fileIDs = *vs.FileIds
			}
			cs, _ := chunkingFromRequest("", vs.ChunkingStrategy)
			v, err := s.createVectorStore(ctx, projectOf(ctx), vectorStoreSpec{metadata: vs.Metadata, fileIDs: fileIDs, chunking: cs})
			if err != nil {
				if v.Id != "" {
					// Perhaps stored (the write's outcome is unknown, or
					// reading it back failed): nothing will reference it.
					made = made.add(s, projectOf(ctx), v.Id)
				}
				made.undo(ctx)
				return nil, nil, err
			}
			made = made.add(s, projectOf(ctx), v.Id)
			ids = append(ids, v.Id)
		}
		out.FileSearch = &gen.ToolResourcesFileSearch{VectorStoreIds: &ids}
		return out, made, nil
	}
	return out, nil, nil
}

// checkToolResources checks stored-shape tool resources (modify
// requests): limits and that every file and vector store exists.
func (s *Server) checkToolResources(ctx context.Context, tr *gen.ToolResources) error {
	if ci := tr.CodeInterpreter; ci != nil {
		if err := s.checkFileIDs(ctx, "tool_resources.code_interpreter.file_ids", ci.FileIds, maxCodeFiles); err != nil {
			return err
		}
	}
	if fs := tr.FileSearch; fs != nil {
		if err := s.checkVectorStoreIDs(ctx, "tool_resources.file_search.vector_store_ids", fs.VectorStoreIds); err != nil {
			return err
		}
	}
	return nil
}

// checkFileIDs checks that at most limit file ids are given and that
// each names an uploaded file.
func (s *Server) checkFileIDs(ctx context.Context, param string, ids *[]string, limit int) error {
	if ids == nil {
		return nil
	}
	if len(*ids) > limit {
		return errBadRequest(param, "Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", param, limit, len(*ids))
	}
	for i, id := range *ids {
		if !validID(id) || !s.fileExists(ctx, id) {
			return errBadRequest(fmt.Sprintf("%s[%d]", param, i), "Invalid '%s[%d]': no file found with id '%s'.", param, i, truncateForMessage(id))
		}
	}
	return nil
}

// checkVectorStoreIDs checks that at most one vector store id is
// given and that it exists.
func (s *Server) checkVectorStoreIDs(ctx context.Context, param string, ids *[]string) error {
	if ids == nil {
		return nil
	}
	if len(*ids) > maxVectorStoreIDs {
		return errBadRequest(param, "Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", param, maxVectorStoreIDs, len(*ids))
	}
	for i, id := range *ids {
		ok, err := s.vectorStoreExists(ctx, projectOf(ctx), id)
		if err != nil {
			return err
		}
		if !ok {
			return errBadRequest(fmt.Sprintf("%s[%d]", param, i), "Invalid '%s[%d]': no vector store found with id '%s'.", param, i, truncateForMessage(id))
		}
	}
	return nil
}

func cloneStr(p *string) *string {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneTools(p *[]gen.AssistantTool) []gen.AssistantTool {
	if p == nil {
		return []gen.AssistantTool{}
	}
	out := slices.Clone(*p)
	if out == nil {
		out = []gen.AssistantTool{}
	}
	return out
}

func ptrOf[T any](v T) *T { return &v }
