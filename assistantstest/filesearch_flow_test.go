package assistantstest_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	"github.com/assistants-go/assistants/server"
)

// The file_search flow as a user's program writes it with the SDK (typed
// calls and helpers, no raw HTTP): a vector store filled with
// helpers.UploadAndPoll and helpers.UploadFileAndPoll, an assistant with
// file_search on it, a question, and the run driven by helpers.RunTools
// or helpers.StreamRunTools. The answer cites the right file: its
// file_citation annotation stands exactly on its marker and its file_id
// resolves (RetrieveFile) to the file's name; the run steps show the
// search with its results.
func TestFileSearchFlow(t *testing.T) {
	for _, mode := range []string{"RunTools", "StreamRunTools"} {
		t.Run(mode, func(t *testing.T) {
			srv := assistantstest.NewServer(t, server.WithStepDelay(0))
			ctx, client := t.Context(), srv.Client

			store, err := client.CreateVectorStore(ctx, gen.CreateVectorStoreRequest{Name: assistants.Ptr("handbook")})
			require.NoError(t, err)
			batch, err := helpers.UploadAndPoll(ctx, client, store.Id, []helpers.FileSource{
				{Reader: strings.NewReader("# Refunds\n\nRefunds are granted within 30 days of purchase. Send the receipt to the support desk."), Filename: "refunds.md"},
				{Reader: strings.NewReader("Parcels are shipped within five working days. Tracking numbers come by email."), Filename: "shipping.txt"},
				{Reader: strings.NewReader("%PDF-1.7 not really a PDF"), Filename: "scan.pdf"},
			}, nil)
			require.NoError(t, err)
			assert.Equal(t, gen.VectorStoreFileBatchObjectStatusCompleted, batch.Batch.Status)
			require.Len(t, batch.Failed, 1, "the broken PDF fails, the others are processed")
			assert.Equal(t, 2, batch.Failed[0].Index)
			assert.Contains(t, batch.Failed[0].Error(), "scan.pdf is not a valid PDF")
			vf, err := helpers.UploadFileAndPoll(ctx, client, store.Id, helpers.FileSource{
				Reader: strings.NewReader("The warranty covers manufacturing defects for two years."), Filename: "warranty.md"}, nil)
			require.NoError(t, err)
			assert.Equal(t, gen.VectorStoreFileObjectStatusCompleted, vf.Status)

			var fileSearch gen.AssistantTool
			require.NoError(t, fileSearch.FromAssistantToolsFileSearch(gen.AssistantToolsFileSearch{Type: "file_search"}))
			asst, err := client.CreateAssistant(ctx, gen.CreateAssistantRequest{
				Model:         "gpt-4o",
				Instructions:  assistants.Ptr("Answer from the handbook and cite it."),
				Tools:         &[]gen.AssistantTool{fileSearch},
				ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{store.Id}}},
			})
			require.NoError(t, err)
			thread, err := client.CreateThread(ctx, gen.CreateThreadRequest{Messages: &[]gen.CreateMessageRequest{
				assistants.UserMessage("Within how many days are refunds granted?"),
			}})
			require.NoError(t, err)

			var run *gen.RunObject
			var answer *helpers.Answer
			if mode == "RunTools" {
				run, err = helpers.RunTools(ctx, client, thread.Id, gen.CreateRunRequest{AssistantId: asst.Id}, nil)
				require.NoError(t, err)
				answer, err = helpers.RunAnswer(ctx, client, run)
				require.NoError(t, err)
			} else {
				var acc helpers.Accumulator
				run, err = helpers.StreamRunTools(ctx, client, thread.Id, gen.CreateRunRequest{AssistantId: asst.Id}, nil, &acc)
				require.NoError(t, err)
				answer = acc.Answer()
				steps := acc.RunSteps()
				require.NotEmpty(t, steps)
				assert.Equal(t, gen.RunStepObjectTypeToolCalls, steps[0].Type, "the stream showed the search step")
			}
			require.Equal(t, gen.RunObjectStatusCompleted, run.Status)
			assert.Nil(t, run.RequiredAction, "the server runs file_search itself")

			// The cited answer.
			require.Len(t, answer.Messages, 1)
			assert.Equal(t, "Refunds are granted within 30 days of purchase. 【0:0†refunds.md】", answer.Text())
			msg := answer.Messages[0]
			if mode == "StreamRunTools" {
				// The streamed message as the accumulator built it; the
				// stored one is what RunAnswer reads.
				got, err := helpers.RunAnswer(ctx, client, run)
				require.NoError(t, err)
				require.Len(t, got.Messages, 1)
				assert.Equal(t, answer.Text(), got.Text())
				msg = got.Messages[0]
			}
			tx := msg.Content[0]
			require.Equal(t, gen.MessageContentTypeText, tx.Type)
			require.Len(t, tx.Text.Annotations, 1)
			cit := tx.Text.Annotations[0]
			require.Equal(t, gen.MessageContentTextAnnotationTypeFileCitation, cit.Type)
			runes := []rune(tx.Text.Value)
			require.LessOrEqual(t, cit.EndIndex, len(runes))
			assert.Equal(t, cit.Text, string(runes[cit.StartIndex:cit.EndIndex]), "the annotation stands on its marker")
			assert.Equal(t, "【0:0†refunds.md】", cit.Text)
			assert.Equal(t, utf8.RuneCountInString(tx.Text.Value), cit.EndIndex)
			file, err := client.RetrieveFile(ctx, cit.FileCitation.FileId)
			require.NoError(t, err)
			assert.Equal(t, "refunds.md", file.Filename, "the citation resolves to the right file")

			// The run steps show the search, with its results on request.
			steps, err := client.ListRunSteps(ctx, thread.Id, run.Id, &gen.ListRunStepsParams{
				Order:   assistants.Ptr(gen.ListRunStepsParamsOrder("asc")),
				Include: &[]gen.ListRunStepsParamsInclude{"step_details.tool_calls[*].file_search.results[*].content"},
			})
			require.NoError(t, err)
			require.Len(t, steps.Data, 2)
			assert.Equal(t, gen.RunStepObjectTypeToolCalls, steps.Data[0].Type)
			assert.Equal(t, gen.RunStepObjectTypeMessageCreation, steps.Data[1].Type)
			details, err := steps.Data[0].StepDetails.AsRunStepDetailsToolCallsObject()
			require.NoError(t, err)
			require.Len(t, details.ToolCalls, 1)
			call, err := details.ToolCalls[0].AsRunStepDetailsToolCallsFileSearchObject()
			require.NoError(t, err)
			require.NotNil(t, call.FileSearch.Results)
			results := *call.FileSearch.Results
			require.NotEmpty(t, results)
			assert.Equal(t, "refunds.md", results[0].FileName)
			assert.Equal(t, cit.FileCitation.FileId, results[0].FileId, "the citation names the top result")
			require.NotNil(t, results[0].Content)
			assert.Contains(t, *(*results[0].Content)[0].Text, "Refunds are granted within 30 days")
		})
	}
}
