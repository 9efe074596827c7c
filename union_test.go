package assistants_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
)

// recorder is a fake API that records request bodies by path and answers each
// path with a canned JSON body.
type recorder struct {
	mu      sync.Mutex
	bodies  map[string][]byte
	replies map[string]string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies[req.URL.Path] = b
	reply, ok := r.replies[req.URL.Path]
	r.mu.Unlock()
	if !ok {
		reply = `{}`
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, reply)
}

func (r *recorder) body(t *testing.T, path string) map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.bodies[path], &m), "body of %s", path)
	return m
}

func newRecorder(t *testing.T, replies map[string]string) (*recorder, *assistants.Client) {
	t.Helper()
	rec := &recorder{bodies: map[string][]byte{}, replies: replies}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c, err := assistants.New(assistants.WithBaseURL(srv.URL+"/v1"), assistants.WithAPIKey("sk-test"), assistants.WithMaxRetries(0))
	require.NoError(t, err)
	return rec, c
}

// field walks a decoded JSON value: strings index objects, ints index arrays.
func field(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// TestUnionsOnTheWire builds every request-side union with the generated From*
// constructors, without setting any tag by hand, and checks that the tags on
// the wire are the API's values, not Go type names.
func TestUnionsOnTheWire(t *testing.T) {
	ctx := context.Background()
	rec, c := newRecorder(t, nil)

	// Tools and response format.
	var code, search, fn gen.AssistantTool
	require.NoError(t, code.FromAssistantToolsCode(gen.AssistantToolsCode{}))
	require.NoError(t, search.FromAssistantToolsFileSearch(gen.AssistantToolsFileSearch{}))
	require.NoError(t, fn.FromAssistantToolsFunction(gen.AssistantToolsFunction{Function: gen.FunctionObject{Name: "get_weather"}}))
	var rf gen.AssistantsApiResponseFormat
	require.NoError(t, rf.FromResponseFormatJsonSchema(gen.ResponseFormatJsonSchema{JsonSchema: gen.ResponseFormatJsonSchemaOptions{Name: "answer"}}))
	var rfo gen.AssistantsApiResponseFormatOption
	require.NoError(t, rfo.FromAssistantsApiResponseFormat(rf))
	_, err := c.CreateAssistantWithResponse(ctx, gen.CreateAssistantRequest{Model: "gpt-4o", Tools: &[]gen.AssistantTool{code, search, fn}, ResponseFormat: &rfo})
	require.NoError(t, err)
	body := rec.body(t, "/v1/assistants")
	assert.Equal(t, "gpt-4o", body["model"])
	assert.Equal(t, "code_interpreter", field(body, "tools", 0, "type"))
	assert.Equal(t, "file_search", field(body, "tools", 1, "type"))
	assert.Equal(t, "function", field(body, "tools", 2, "type"))
	assert.Equal(t, "get_weather", field(body, "tools", 2, "function", "name"))
	assert.Equal(t, "json_schema", field(body, "response_format", "type"))

	// Message content parts and attachment tools.
	var text, file, url gen.MessageRequestContent
	require.NoError(t, text.FromMessageRequestContentTextObject(gen.MessageRequestContentTextObject{Text: "hi"}))
	require.NoError(t, file.FromMessageContentImageFileObject(gen.MessageContentImageFileObject{ImageFile: gen.MessageContentImageFile{FileId: "file-1"}}))
	require.NoError(t, url.FromMessageContentImageUrlObject(gen.MessageContentImageUrlObject{ImageUrl: gen.MessageContentImageUrl{Url: "https://example.com/a.png"}}))
	var content gen.CreateMessageRequest_Content
	require.NoError(t, content.FromCreateMessageParts([]gen.MessageRequestContent{text, file, url}))
	fileID := "file-2"
	tools := []gen.MessageAttachmentTool{{Type: gen.MessageAttachmentToolTypeCodeInterpreter}, {Type: gen.MessageAttachmentToolTypeFileSearch}}
	_, err = c.CreateMessageWithResponse(ctx, "thread_1", gen.CreateMessageRequest{
		Role: gen.CreateMessageRequestRoleUser, Content: content,
		Attachments: &[]gen.MessageAttachment{{FileId: &fileID, Tools: &tools}},
	})
	require.NoError(t, err)
	body = rec.body(t, "/v1/threads/thread_1/messages")
	assert.Equal(t, "text", field(body, "content", 0, "type"))
	assert.Equal(t, "image_file", field(body, "content", 1, "type"))
	assert.Equal(t, "image_url", field(body, "content", 2, "type"))
	assert.Equal(t, "code_interpreter", field(body, "attachments", 0, "tools", 0, "type"))
	assert.Equal(t, "file_search", field(body, "attachments", 0, "tools", 1, "type"))

	// Named tool choice.
	var named gen.AssistantsNamedToolChoice
	require.NoError(t, named.FromAssistantsNamedToolChoiceFunction(gen.AssistantsNamedToolChoiceFunction{Function: &gen.AssistantsNamedToolChoiceFunctionName{Name: "get_weather"}}))
	var choice gen.AssistantsApiToolChoiceOption
	require.NoError(t, choice.FromAssistantsNamedToolChoice(named))
	_, err = c.CreateRunWithResponse(ctx, "thread_1", nil, gen.CreateRunRequest{AssistantId: "asst_1", ToolChoice: &choice})
	require.NoError(t, err)
	body = rec.body(t, "/v1/threads/thread_1/runs")
	assert.Equal(t, "function", field(body, "tool_choice", "type"))

	// Chunking strategy.
	var chunking gen.ChunkingStrategyRequestParam
	require.NoError(t, chunking.FromStaticChunkingStrategyRequestParam(gen.StaticChunkingStrategyRequestParam{Static: gen.StaticChunkingStrategy{MaxChunkSizeTokens: 800, ChunkOverlapTokens: 400}}))
	_, err = c.CreateVectorStoreFileWithResponse(ctx, "vs_1", gen.CreateVectorStoreFileRequest{FileId: "file-1", ChunkingStrategy: &chunking})
	require.NoError(t, err)
	body = rec.body(t, "/v1/vector_stores/vs_1/files")
	assert.Equal(t, "static", field(body, "chunking_strategy", "type"))
	assert.EqualValues(t, 800, field(body, "chunking_strategy", "static", "max_chunk_size_tokens"))

	// Search filters: comparison operators share one schema, so their tag is the operator.
	var value gen.ComparisonFilterValue
	require.NoError(t, value.FromComparisonFilterString("eu"))
	var eq, and gen.VectorStoreSearchFilter
	require.NoError(t, eq.FromComparisonFilter(gen.ComparisonFilter{Type: gen.ComparisonFilterTypeEq, Key: "region", Value: value}))
	require.NoError(t, and.FromCompoundFilter(gen.CompoundFilter{Type: gen.CompoundFilterTypeAnd, Filters: []gen.VectorStoreSearchFilter{eq}}))
	var query gen.VectorStoreSearchQuery
	require.NoError(t, query.FromVectorStoreSearchQueryText("weather"))
	_, err = c.SearchVectorStoreWithResponse(ctx, "vs_1", gen.VectorStoreSearchRequest{Query: query, Filters: &and})
	require.NoError(t, err)
	body = rec.body(t, "/v1/vector_stores/vs_1/search")
	assert.Equal(t, "and", field(body, "filters", "type"))
	assert.Equal(t, "eq", field(body, "filters", "filters", 0, "type"))
	assert.Equal(t, "weather", body["query"])
}

const messageFixture = `{"id":"msg_1","object":"thread.message","created_at":1700000000,"thread_id":"thread_1",
"status":"completed","incomplete_details":null,"completed_at":1700000001,"incomplete_at":null,"role":"assistant",
"assistant_id":"asst_1","run_id":"run_1","attachments":[],"metadata":{},
"content":[
 {"type":"text","text":{"value":"See [1] and [2]","annotations":[
   {"type":"file_citation","text":"[1]","file_citation":{"file_id":"file-1"},"start_index":4,"end_index":7},
   {"type":"file_path","text":"[2]","file_path":{"file_id":"file-2"},"start_index":12,"end_index":15}]}},
 {"type":"image_file","image_file":{"file_id":"file-3","detail":"high"}},
 {"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}},
 {"type":"refusal","refusal":"no"}]}`

const stepFixture = `{"id":"step_1","object":"thread.run.step","created_at":1700000000,"assistant_id":"asst_1","thread_id":"thread_1",
"run_id":"run_1","type":"tool_calls","status":"completed","cancelled_at":null,"completed_at":1700000002,"expired_at":null,
"failed_at":null,"last_error":null,"metadata":{},"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},
"step_details":{"type":"tool_calls","tool_calls":[
 {"id":"call_1","type":"code_interpreter","code_interpreter":{"input":"print(1)","outputs":[
   {"type":"logs","logs":"1"},{"type":"image","image":{"file_id":"file-4"}}]}},
 {"id":"call_2","type":"file_search","file_search":{}},
 {"id":"call_3","type":"function","function":{"name":"get_weather","arguments":"{}","output":"sunny"}}]}}`

const messageStepFixture = `{"id":"step_2","object":"thread.run.step","created_at":1700000000,"assistant_id":"asst_1","thread_id":"thread_1",
"run_id":"run_1","type":"message_creation","status":"completed","cancelled_at":null,"completed_at":1700000002,"expired_at":null,
"failed_at":null,"last_error":null,"metadata":{},"usage":null,
"step_details":{"type":"message_creation","message_creation":{"message_id":"msg_1"}}}`

// TestUnionsDecode decodes every response-side union through the generated
// client, checks each member's tag and content, and that encoding the decoded
// value gives back the same JSON.
func TestUnionsDecode(t *testing.T) {
	ctx := context.Background()
	_, c := newRecorder(t, map[string]string{
		"/v1/threads/thread_1/messages/msg_1":          messageFixture,
		"/v1/threads/thread_1/runs/run_1/steps/step_1": stepFixture,
		"/v1/threads/thread_1/runs/run_1/steps/step_2": messageStepFixture,
	})

	msg, err := assistants.Result[gen.MessageObject](c.GetMessageWithResponse(ctx, "thread_1", "msg_1"))
	require.NoError(t, err)
	require.Len(t, msg.Content, 4)
	// Message content parts and their annotations are flat objects: Type
	// names the field that holds the part.
	var tags []gen.MessageContentType
	for _, part := range msg.Content {
		tags = append(tags, part.Type)
	}
	assert.Equal(t, []gen.MessageContentType{gen.MessageContentTypeText, gen.MessageContentTypeImageFile,
		gen.MessageContentTypeImageUrl, gen.MessageContentTypeRefusal}, tags)
	txt := msg.Content[0].Text
	assert.Equal(t, "See [1] and [2]", txt.Value)
	require.Len(t, txt.Annotations, 2)
	cite := txt.Annotations[0]
	assert.Equal(t, gen.MessageContentTextAnnotationTypeFileCitation, cite.Type)
	assert.Equal(t, "file-1", cite.FileCitation.FileId)
	assert.Zero(t, cite.FilePath)
	assert.Equal(t, gen.MessageContentTextAnnotationTypeFilePath, txt.Annotations[1].Type)
	assert.Equal(t, "file-2", txt.Annotations[1].FilePath.FileId)
	assert.Equal(t, "file-3", msg.Content[1].ImageFile.FileId)
	assert.Zero(t, msg.Content[1].Text)
	assert.Equal(t, "https://example.com/a.png", msg.Content[2].ImageUrl.Url)
	require.NotNil(t, msg.Content[3].Refusal)
	assert.Equal(t, "no", *msg.Content[3].Refusal)
	roundTrip(t, messageFixture, msg)

	step, err := assistants.Result[gen.RunStepObject](c.GetRunStepWithResponse(ctx, "thread_1", "run_1", "step_1", nil))
	require.NoError(t, err)
	d, err := step.StepDetails.Discriminator()
	require.NoError(t, err)
	assert.Equal(t, "tool_calls", d)
	calls, err := step.StepDetails.AsRunStepDetailsToolCallsObject()
	require.NoError(t, err)
	require.Len(t, calls.ToolCalls, 3)
	var callTags []string
	for _, call := range calls.ToolCalls {
		d, err := call.Discriminator()
		require.NoError(t, err)
		callTags = append(callTags, d)
	}
	assert.Equal(t, []string{"code_interpreter", "file_search", "function"}, callTags)
	ci, err := calls.ToolCalls[0].AsRunStepDetailsToolCallsCodeObject()
	require.NoError(t, err)
	require.Len(t, ci.CodeInterpreter.Outputs, 2)
	d0, _ := ci.CodeInterpreter.Outputs[0].Discriminator()
	d1, _ := ci.CodeInterpreter.Outputs[1].Discriminator()
	assert.Equal(t, []string{"logs", "image"}, []string{d0, d1})
	fnCall, err := calls.ToolCalls[2].AsRunStepDetailsToolCallsFunctionObject()
	require.NoError(t, err)
	assert.Equal(t, "get_weather", fnCall.Function.Name)
	roundTrip(t, stepFixture, step)

	step2, err := assistants.Result[gen.RunStepObject](c.GetRunStepWithResponse(ctx, "thread_1", "run_1", "step_2", nil))
	require.NoError(t, err)
	mc, err := step2.StepDetails.AsRunStepDetailsMessageCreationObject()
	require.NoError(t, err)
	assert.Equal(t, "msg_1", mc.MessageCreation.MessageId)
	roundTrip(t, messageStepFixture, step2)
}

func roundTrip(t *testing.T, fixture string, v any) {
	t.Helper()
	out, err := json.Marshal(v)
	require.NoError(t, err)
	assert.JSONEq(t, fixture, string(out))
}
