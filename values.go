package assistants

import (
	"github.com/assistants-go/assistants/gen"
)

// Ptr returns a pointer to a copy of v, for the optional fields of the
// generated request types:
//
//	gen.CreateAssistantRequest{Model: "gpt-4o", Name: assistants.Ptr("docs")}
func Ptr[T any](v T) *T { return &v }

// The constructors below build the values of the API's unions (one JSON
// shape or another) in one expression. The generated From... methods that
// they call can fail only if encoding/json cannot marshal the variant, which
// never happens for these fixed shapes, so they return no error.

// UserMessage is a new user message whose content is text:
//
//	msg, err := client.CreateMessage(ctx, threadID, assistants.UserMessage("Hello"))
func UserMessage(text string) gen.CreateMessageRequest {
	return gen.CreateMessageRequest{Role: gen.CreateMessageRequestRoleUser, Content: TextContent(text)}
}

// UserMessageParts is a new user message made of parts (TextPart,
// ImageFilePart, ImageURLPart).
func UserMessageParts(parts ...gen.MessageRequestContent) gen.CreateMessageRequest {
	return gen.CreateMessageRequest{Role: gen.CreateMessageRequestRoleUser, Content: PartsContent(parts...)}
}

// TextContent is a message's content given as plain text.
func TextContent(text string) gen.CreateMessageRequest_Content {
	var c gen.CreateMessageRequest_Content
	_ = c.FromCreateMessageText(text)
	return c
}

// PartsContent is a message's content given as a list of parts.
func PartsContent(parts ...gen.MessageRequestContent) gen.CreateMessageRequest_Content {
	if parts == nil {
		parts = []gen.MessageRequestContent{}
	}
	var c gen.CreateMessageRequest_Content
	_ = c.FromCreateMessageParts(parts)
	return c
}

// TextPart is a text part of a new message.
func TextPart(text string) gen.MessageRequestContent {
	var p gen.MessageRequestContent
	_ = p.FromMessageRequestContentTextObject(gen.MessageRequestContentTextObject{
		Type: gen.MessageRequestContentTextObjectTypeText, Text: text})
	return p
}

// ImageFilePart is an image part of a new message that points at an
// uploaded file (purpose "vision"), with the API's default detail.
func ImageFilePart(fileID string) gen.MessageRequestContent {
	var p gen.MessageRequestContent
	_ = p.FromMessageContentImageFileObject(gen.MessageContentImageFileObject{
		Type: gen.MessageContentImageFileObjectTypeImageFile, ImageFile: gen.MessageContentImageFile{FileId: fileID}})
	return p
}

// ImageURLPart is an image part of a new message given by URL, with the
// API's default detail.
func ImageURLPart(url string) gen.MessageRequestContent {
	var p gen.MessageRequestContent
	_ = p.FromMessageContentImageUrlObject(gen.MessageContentImageUrlObject{
		Type: gen.MessageContentImageUrlObjectTypeImageUrl, ImageUrl: gen.MessageContentImageUrl{Url: url}})
	return p
}

// ToolChoiceAuto lets the model decide whether to call tools (the API's
// default). Use the result's address for a request's ToolChoice field.
func ToolChoiceAuto() gen.AssistantsApiToolChoiceOption {
	return toolChoiceMode(gen.ToolChoiceModeAuto)
}

// ToolChoiceNone makes the model answer without calling tools.
func ToolChoiceNone() gen.AssistantsApiToolChoiceOption {
	return toolChoiceMode(gen.ToolChoiceModeNone)
}

// ToolChoiceRequired makes the model call at least one tool.
func ToolChoiceRequired() gen.AssistantsApiToolChoiceOption {
	return toolChoiceMode(gen.ToolChoiceModeRequired)
}

func toolChoiceMode(m gen.ToolChoiceMode) gen.AssistantsApiToolChoiceOption {
	var c gen.AssistantsApiToolChoiceOption
	_ = c.FromToolChoiceMode(m)
	return c
}

// ToolChoiceFunction makes the model call the function tool name.
func ToolChoiceFunction(name string) gen.AssistantsApiToolChoiceOption {
	var n gen.AssistantsNamedToolChoice
	_ = n.FromAssistantsNamedToolChoiceFunction(gen.AssistantsNamedToolChoiceFunction{
		Type: gen.AssistantsNamedToolChoiceFunctionTypeFunction, Function: &gen.AssistantsNamedToolChoiceFunctionName{Name: name}})
	return namedToolChoice(n)
}

// ToolChoiceFileSearch makes the model use file_search.
func ToolChoiceFileSearch() gen.AssistantsApiToolChoiceOption {
	var n gen.AssistantsNamedToolChoice
	_ = n.FromAssistantsNamedToolChoiceFileSearch(gen.AssistantsNamedToolChoiceFileSearch{
		Type: gen.AssistantsNamedToolChoiceFileSearchTypeFileSearch})
	return namedToolChoice(n)
}

// ToolChoiceCodeInterpreter makes the model use code_interpreter.
func ToolChoiceCodeInterpreter() gen.AssistantsApiToolChoiceOption {
	var n gen.AssistantsNamedToolChoice
	_ = n.FromAssistantsNamedToolChoiceCodeInterpreter(gen.AssistantsNamedToolChoiceCodeInterpreter{
		Type: gen.AssistantsNamedToolChoiceCodeInterpreterTypeCodeInterpreter})
	return namedToolChoice(n)
}

func namedToolChoice(n gen.AssistantsNamedToolChoice) gen.AssistantsApiToolChoiceOption {
	var c gen.AssistantsApiToolChoiceOption
	_ = c.FromAssistantsNamedToolChoice(n)
	return c
}

// ResponseFormatAuto leaves the output format to the model (the API's
// default). Use the result's address for a request's ResponseFormat field.
func ResponseFormatAuto() gen.AssistantsApiResponseFormatOption {
	var f gen.AssistantsApiResponseFormatOption
	_ = f.FromResponseFormatMode(gen.ResponseFormatModeAuto)
	return f
}

// ResponseFormatText asks for plain text.
func ResponseFormatText() gen.AssistantsApiResponseFormatOption {
	var r gen.AssistantsApiResponseFormat
	_ = r.FromResponseFormatText(gen.ResponseFormatText{Type: gen.ResponseFormatTextTypeText})
	return responseFormat(r)
}

// ResponseFormatJSONObject asks for any valid JSON object.
func ResponseFormatJSONObject() gen.AssistantsApiResponseFormatOption {
	var r gen.AssistantsApiResponseFormat
	_ = r.FromResponseFormatJsonObject(gen.ResponseFormatJsonObject{Type: gen.ResponseFormatJsonObjectTypeJsonObject})
	return responseFormat(r)
}

// ResponseFormatJSONSchema asks for JSON that follows schema, under the
// format name name (letters, digits, underscores and dashes, up to 64).
// strict enforces the schema exactly.
func ResponseFormatJSONSchema(name string, schema map[string]any, strict bool) gen.AssistantsApiResponseFormatOption {
	s := gen.ResponseFormatJsonSchemaSchema(schema)
	var r gen.AssistantsApiResponseFormat
	_ = r.FromResponseFormatJsonSchema(gen.ResponseFormatJsonSchema{
		Type:       gen.ResponseFormatJsonSchemaTypeJsonSchema,
		JsonSchema: gen.ResponseFormatJsonSchemaOptions{Name: name, Schema: &s, Strict: &strict},
	})
	return responseFormat(r)
}

func responseFormat(r gen.AssistantsApiResponseFormat) gen.AssistantsApiResponseFormatOption {
	var f gen.AssistantsApiResponseFormatOption
	_ = f.FromAssistantsApiResponseFormat(r)
	return f
}
