// Package helpers does the things every Assistants program writes around the
// API calls: run tools, follow streams, page through lists and move files.
// Every function takes the narrow interface of the few client methods it
// calls (satisfied by the client assistants.New returns), so a test fake is
// a few lines.
//
// # Tools
//
// Func makes a typed tool from a Go function: its JSON Schema comes from the
// argument struct (json and jsonschema tags), and its handler receives the
// decoded arguments. A Registry holds the tools; Registry.Tools gives the
// definitions for an assistant or a run.
//
//	reg, err := helpers.NewRegistry(helpers.Func("get_weather", "Get the weather for a city.",
//		func(ctx context.Context, a struct{ City string `json:"city"` }) (string, error) { ... }))
//
// RunTools starts a run and answers its tool calls until it ends (polling);
// StreamRunTools does the same over the event stream, feeding an
// Accumulator. RunAnswer (after RunTools) and Accumulator.Answer (after
// StreamRunTools) return the run's assistant messages; Answer.Text joins
// their text.
//
// # Streams
//
// StreamRun, StreamThreadAndRun and StreamSubmitToolOutputs start a run with
// "stream": true and return a *Stream of typed events (StreamEvent: Run,
// Message, MessageDelta, ...). A MessageDelta's parts are decoded once, flat:
// read part.Text.Value. An Accumulator folds the events into the final run,
// messages and run steps, and calls OnTextDelta as text arrives. NewStream
// reads any event-stream body; SSEDecoder is the line-level decoder under it.
//
// # Lists
//
// Assistants, Messages, Runs, RunSteps, Files, VectorStores, VectorStoreFiles
// and VectorStoreBatchFiles are iterators (iter.Seq2) over every item of a
// list, one page in memory at a time. Without params they use the API's
// defaults: 20 items a page, newest first (order "desc"); set params.Order to
// "asc" for oldest first. Breaking out of the loop stops the requests.
//
//	for msg, err := range helpers.Messages(ctx, client, threadID, nil) { ... }
//
// # Files
//
// UploadFile streams a file (a path or a reader) as multipart form data and
// replays it on a retry when it can seek; DownloadFile returns a file's
// content. UploadFileAndPoll uploads one file into a vector store and waits
// until the store has processed it; UploadAndPoll does it for many files as
// one batch. AttachAssistantFile and AttachThreadFile give a file to the
// code_interpreter or file_search tool of an assistant or a thread.
package helpers
