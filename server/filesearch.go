package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/retrieval/cite"
	"github.com/assistants-go/assistants/server/store"
)

// file_search inside runs.
//
// When a run's tools include file_search and the assistant or the thread
// has vector stores, each model round gets ModelInput.FileSearch, and the
// model searches by calling FileSearchToolName. The server runs those
// calls itself (no requires_action): each round of them becomes a
// completed tool_calls step with one file_search call per search, carrying
// the ranking options and the results (their content is shown only to
// listRunSteps and getRunStep with
// include[]=step_details.tool_calls[*].file_search.results[*].content;
// stream events carry the call without results, unless createRun had that
// include[]). The results become the
// calls' tool outputs and the model is asked again. A run may search at
// most maxFileSearchCalls times; then the tool is no longer offered.
//
// Files attached to the thread's messages for file_search are added to
// the thread's vector store when a run starts a round: the thread's first
// vector store, or a new one that expires 7 days after its last activity,
// which then becomes the thread's. They are processed before the search.
// Expired vector stores are not searched (a search keeps a store active).
//
// The answer's citation markers 【m:n†filename】 (or any form cite.Resolve
// reads) become file_citation annotations of the message, citing result n
// of the run's latest file_search output; start_index and end_index count
// characters (code points) of the final text.

const (
	// maxFileSearchCalls bounds the searches of one run.
	maxFileSearchCalls = 8
	// defaultFileSearchResults is the tool's max_num_results default.
	defaultFileSearchResults = 20
	// threadStoreDays is the expiry of a thread vector store made from
	// message attachments.
	threadStoreDays = 7
	// includeResultContent is the include[] value that shows the results
	// of file_search calls in run steps.
	includeResultContent = "step_details.tool_calls[*].file_search.results[*].content"
)

// fileSearchTool returns the run's file_search tool for a round, or nil
// when the run does not have it, has nothing to search, or searched
// maxFileSearchCalls times already.
func (s *Server) fileSearchTool(ctx context.Context, in *ModelInput) *FileSearch {
	var tool *gen.AssistantToolsFileSearch
	for _, t := range in.Run.Tools {
		if k, _ := t.Discriminator(); k == "file_search" {
			if fs, err := t.AsAssistantToolsFileSearch(); err == nil {
				tool = &fs
			}
			break
		}
	}
	if tool == nil {
		return nil
	}
	n := 0
	for _, o := range in.ToolOutputs {
		if o.Call.Name == FileSearchToolName {
			n++
		}
	}
	if n >= maxFileSearchCalls {
		return nil
	}
	out := &FileSearch{MaxNumResults: defaultFileSearchResults, Ranker: string(gen.FileSearchRankerAuto)}
	if o := tool.FileSearch; o != nil {
		if o.MaxNumResults != nil && *o.MaxNumResults > 0 {
			out.MaxNumResults = min(*o.MaxNumResults, maxSearchResults)
		}
		if ro := o.RankingOptions; ro != nil {
			if ro.Ranker != nil {
				out.Ranker = string(*ro.Ranker)
			}
			out.ScoreThreshold = float64(ro.ScoreThreshold)
		}
	}
	var ids []string
	if tr := in.Assistant.ToolResources; tr != nil && tr.FileSearch != nil && tr.FileSearch.VectorStoreIds != nil {
		ids = append(ids, *tr.FileSearch.VectorStoreIds...)
	}
	ctx = context.WithoutCancel(ctx) // the round's context carries the run's project
	project := projectOf(ctx)
	if th, err := s.attachThreadFiles(ctx, project, in.Run.ThreadId); err == nil {
		if tr := th.ToolResources; tr != nil && tr.FileSearch != nil && tr.FileSearch.VectorStoreIds != nil {
			ids = append(ids, *tr.FileSearch.VectorStoreIds...)
		}
	}
	for _, id := range ids {
		if slices.Contains(out.VectorStoreIDs, id) {
			continue
		}
		v, err := s.getVectorStore(ctx, project, id)
		if err == nil && v.Status != gen.VectorStoreObjectStatusExpired {
			out.VectorStoreIDs = append(out.VectorStoreIDs, id)
		}
	}
	if len(out.VectorStoreIDs) == 0 {
		return nil
	}
	return out
}

// attachThreadFiles adds the files attached to the thread's messages for
// file_search to the thread's vector store (creating it, with a 7-day
// expiry, when the thread has none) and processes them at once (the
// search comes next; their jobs then find nothing to do). It returns the
// thread as it is then.
func (s *Server) attachThreadFiles(ctx context.Context, project, threadID string) (gen.ThreadObject, error) {
	th, err := s.getThreadObject(ctx, threadID)
	if err != nil {
		return th, err
	}
	msgs, err := s.threadMessages(ctx, threadID)
	if err != nil {
		return th, err
	}
	var fileIDs []string
	for _, m := range msgs {
		for _, a := range m.Attachments {
			if a.FileId == nil || a.Tools == nil || slices.Contains(fileIDs, *a.FileId) {
				continue
			}
			for _, t := range *a.Tools {
				if t.Type == gen.MessageAttachmentToolTypeFileSearch {
					fileIDs = append(fileIDs, *a.FileId)
					break
				}
			}
		}
	}
	if len(fileIDs) == 0 {
		return th, nil
	}
	vsID := ""
	if tr := th.ToolResources; tr != nil && tr.FileSearch != nil && tr.FileSearch.VectorStoreIds != nil {
		for _, id := range *tr.FileSearch.VectorStoreIds {
			if ok, err := s.vectorStoreExists(ctx, project, id); err != nil {
				return th, err
			} else if ok {
				vsID = id
				break
			}
		}
	}
	if vsID == "" {
		v, err := s.createVectorStore(ctx, project, vectorStoreSpec{name: ptrOf("thread attachments"),
			expires: &gen.VectorStoreExpirationAfter{Anchor: "last_active_at", Days: threadStoreDays}})
		if err != nil {
			return th, err
		}
		vsID = v.Id
		// The thread may be gone meanwhile (deleted with its run): then
		// the store made for it is deleted too (madeStores).
		made := (*madeStores)(nil).add(s, project, vsID)
		err = made.write(ctx, func() error {
			_, err := s.db.UpdateThread(ctx, project, threadID, func(st *store.Thread) error {
				obj, err := decodeData[gen.ThreadObject](st.Data)
				if err != nil {
					return err
				}
				tr := cloneToolResources(obj.ToolResources)
				if tr == nil {
					tr = &gen.ToolResources{}
				}
				tr.FileSearch = &gen.ToolResourcesFileSearch{VectorStoreIds: &[]string{vsID}}
				obj.ToolResources = tr
				th = obj
				st.Data, err = encodeData(obj)
				return err
			})
			return err
		})
		if err != nil {
			return th, storeErr(err, "thread", threadID)
		}
	}
	var added []store.VectorStoreFile
	for _, id := range fileIDs {
		_, err := s.db.GetVectorStoreFile(ctx, project, vsID, id)
		if err == nil {
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return th, storeErr(err, "vector_store", vsID)
		}
		f, job, err := s.newVSFile(project, vsID, id, nil, nil)
		if err != nil {
			return th, err
		}
		if err := s.db.PutVectorStoreFile(ctx, f, s.durable([]store.Job{job})...); err != nil {
			return th, storeErr(err, "vector_store", vsID)
		}
		added = append(added, f)
	}
	for _, f := range added { // now: the search comes next
		if a, ok := attachOf(f); ok {
			if err := s.ingestOne(ctx, ingestArgs{Project: project, VectorStoreID: vsID, FileID: f.FileID, Attach: a}); err != nil {
				return th, err
			}
		}
	}
	return th, nil
}

// fileSearchArgs reads the queries of a file_search call's arguments:
// {"query": "..."} or {"queries": ["...", ...]}.
func fileSearchArgs(args string) []string {
	var a struct {
		Query   string   `json:"query"`
		Queries []string `json:"queries"`
	}
	_ = json.Unmarshal([]byte(args), &a)
	var qs []string
	for _, q := range append([]string{a.Query}, a.Queries...) {
		q = strings.TrimSpace(q)
		if q != "" && len(q) <= maxQueryLen && len(qs) < maxQueries {
			qs = append(qs, q)
		}
	}
	return qs
}

// fileSearchCall is one file_search call of a round, run.
type fileSearchCall struct {
	call    ToolCall
	queries []string
	results []FileSearchResult
	content [][]string // each result's chunks
	output  string
}

// searches reports whether a model round called file_search on a run
// that has the tool: runFileSearch takes those calls.
func searches(in *ModelInput, out *ModelOutput) bool {
	return in.FileSearch != nil && slices.ContainsFunc(out.ToolCalls, func(c ToolCall) bool { return c.Name == FileSearchToolName })
}

// runFileSearch runs the file_search calls of a model round itself: they
// become a completed tool_calls step and tool outputs of the run. It
// returns the round's other calls (for the client), and whether it ran
// searches (then the model must be asked again). Nothing is searched when
// the run has no file_search tool (the calls are left for checkCalls to
// refuse), when the round already went over the run's token limits (the
// calls are dropped and the round ends the run as incomplete), or when
// the run stopped meanwhile.
func (e *engine) runFileSearch(ctx context.Context, a roundArgs, in *ModelInput, out *ModelOutput) ([]ToolCall, bool, error) {
	if !searches(in, out) {
		return out.ToolCalls, false, nil
	}
	var rest []ToolCall
	for _, c := range out.ToolCalls {
		if c.Name != FileSearchToolName {
			rest = append(rest, c)
		}
	}
	used := in.Used
	used.PromptTokens += out.Usage.PromptTokens
	used.CompletionTokens += out.Usage.CompletionTokens
	if out.Truncated || (in.Run.MaxPromptTokens != nil && used.PromptTokens > *in.Run.MaxPromptTokens) ||
		(in.Run.MaxCompletionTokens != nil && used.CompletionTokens > *in.Run.MaxCompletionTokens) {
		return rest, false, nil
	}
	var calls []fileSearchCall
	for _, c := range out.ToolCalls {
		if c.Name != FileSearchToolName {
			continue
		}
		if c.ID == "" {
			c.ID = newID(prefixToolCall)
		}
		if strings.TrimSpace(c.Arguments) == "" {
			c.Arguments = "{}"
		}
		calls = append(calls, fileSearchCall{call: c})
	}
	fs := in.FileSearch
	ranking := &gen.RunStepDetailsToolCallsFileSearchRankingOptionsObject{
		Ranker: gen.FileSearchRanker(fs.Ranker), ScoreThreshold: float32(fs.ScoreThreshold)}

	var st gen.RunStepObject
	_, _, err := e.update(ctx, a.ThreadID, a.RunID, func(lr *liveRun) error {
		if !inRound(lr, a) || ctx.Err() != nil {
			return errRunStale
		}
		st = e.newStepLocked(lr, gen.RunStepObjectTypeToolCalls, fileSearchDetails(calls, ranking, false))
		return nil
	})
	if err != nil {
		return rest, false, err
	}

	for i := range calls {
		calls[i].run(ctx, e.s, fs)
	}

	_, _, err = e.update(ctx, a.ThreadID, a.RunID, func(lr *liveRun) error {
		if !inRound(lr, a) || ctx.Err() != nil {
			return errRunStale
		}
		now := e.s.now()
		if full, ok := lr.step(st.Id); ok {
			full.Status = gen.RunStepObjectStatusCompleted
			full.CompletedAt = &now
			full.Usage = stepUsage(out.Usage)
			full.StepDetails = fileSearchDetails(calls, ranking, lr.st.IncludeResults)
			lr.publish("thread.run.step.completed", full)
			full.StepDetails = fileSearchDetails(calls, ranking, true)
			lr.putStep(full)
		}
		for _, c := range calls {
			if c.output == "" {
				c.output = fileSearchOutput(len(lr.st.Outputs), c.queries, c.results)
			}
			lr.st.Outputs = append(lr.st.Outputs, ToolOutput{Call: c.call, Output: c.output, Round: lr.st.Round, Results: c.results})
		}
		lr.st.Used = used
		return nil
	})
	if err != nil {
		return rest, false, err
	}
	return rest, true, nil
}

// run searches the vector stores for the call's queries. A call without a
// query, or a failed search, gets an output that says so, and no results.
func (c *fileSearchCall) run(ctx context.Context, s *Server, fs *FileSearch) {
	c.queries = fileSearchArgs(c.call.Arguments)
	if len(c.queries) == 0 {
		c.output = `file_search needs a query: {"query": "..."}.`
		return
	}
	spec := searchSpec{queries: c.queries, ranker: fs.Ranker, threshold: fs.ScoreThreshold, limit: fs.MaxNumResults}
	project := projectOf(ctx) // the run's (jobs.go)
	for _, id := range fs.VectorStoreIDs {
		s.touchVectorStore(ctx, project, id)
		if err := s.addStore(ctx, &spec, project, id); err != nil {
			s.log.Warn("file_search failed", "err", err.Error())
			c.output = "The search failed."
			return
		}
	}
	hits, err := s.searchFiles(ctx, spec)
	if err != nil {
		s.log.Warn("file_search failed", "err", err.Error())
		c.output = "The search failed."
		if why := embeddingReason(err); why != "" {
			c.output = "The search failed: " + why
		}
		return
	}
	for _, h := range hits {
		c.results = append(c.results, FileSearchResult{FileID: h.fileID, Filename: h.filename, Score: h.score, Text: strings.Join(h.chunks, "\n\n")})
		c.content = append(c.content, h.chunks)
	}
}

// fileSearchOutput writes the tool output of a file_search call whose
// output is the m-th of the run: each result with its citation marker.
func fileSearchOutput(m int, queries []string, results []FileSearchResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "file_search results for %q. Cite a result with its marker, e.g. %s.\n", strings.Join(queries, "; "), cite.Marker(m, 0, "file"))
	if len(results) == 0 {
		b.WriteString("No results found.\n")
	}
	for n, r := range results {
		fmt.Fprintf(&b, "\n%s (score %.3f)\n%s\n", cite.Marker(m, n, r.Filename), r.Score, r.Text)
	}
	return b.String()
}

// fileSearchDetails returns the step details of file_search calls: the
// ranking options, and the results (with their content) when withResults.
func fileSearchDetails(calls []fileSearchCall, ranking *gen.RunStepDetailsToolCallsFileSearchRankingOptionsObject, withResults bool) gen.RunStepDetails {
	out := make([]gen.RunStepDetailsToolCall, 0, len(calls))
	for _, c := range calls {
		fsd := gen.RunStepDetailsFileSearch{RankingOptions: ranking}
		if withResults {
			res := make([]gen.RunStepDetailsToolCallsFileSearchResultObject, 0, len(c.results))
			for i, r := range c.results {
				content := make([]gen.RunStepDetailsFileSearchResultContent, 0, len(c.content[i]))
				for _, t := range c.content[i] {
					typ := gen.RunStepDetailsToolCallsFileSearchResultObjectContentType("text")
					content = append(content, gen.RunStepDetailsFileSearchResultContent{Type: &typ, Text: ptrOf(t)})
				}
				res = append(res, gen.RunStepDetailsToolCallsFileSearchResultObject{FileId: r.FileID, FileName: r.Filename, Score: float32(r.Score), Content: &content})
			}
			fsd.Results = &res
		}
		var tc gen.RunStepDetailsToolCall
		_ = tc.FromRunStepDetailsToolCallsFileSearchObject(gen.RunStepDetailsToolCallsFileSearchObject{Id: c.call.ID, Type: "file_search", FileSearch: fsd})
		out = append(out, tc)
	}
	return toolCallsDetails(out)
}

// stepView returns a step as listRunSteps and getRunStep show it: the
// results of file_search calls only with include, and then with content.
func stepView(st gen.RunStepObject, include bool) gen.RunStepObject {
	if include || st.Type != gen.RunStepObjectTypeToolCalls {
		return st
	}
	d, err := st.StepDetails.AsRunStepDetailsToolCallsObject()
	if err != nil {
		return st
	}
	changed := false
	calls := slices.Clone(d.ToolCalls)
	for i, c := range calls {
		if k, _ := c.Discriminator(); k != "file_search" {
			continue
		}
		fs, err := c.AsRunStepDetailsToolCallsFileSearchObject()
		if err != nil || fs.FileSearch.Results == nil {
			continue
		}
		fs.FileSearch.Results = nil
		var tc gen.RunStepDetailsToolCall
		if tc.FromRunStepDetailsToolCallsFileSearchObject(fs) == nil {
			calls[i] = tc
			changed = true
		}
	}
	if changed {
		st.StepDetails = toolCallsDetails(calls)
	}
	return st
}

// includeParam checks a steps request's include[] values: it reports
// whether file_search results are asked for.
func includeParam[T ~string](include *[]T) (bool, error) {
	if include == nil {
		return false, nil
	}
	want := false
	for _, v := range *include {
		if string(v) != includeResultContent {
			return false, errBadRequest("include[]", "Invalid value for 'include[]': expected '%s'.", includeResultContent)
		}
		want = true
	}
	return want, nil
}

// answerPart returns the message content of a round's answer: the text
// with its citation markers resolved against the run's latest file_search
// output (see cite.Resolve), and their file_citation annotations. Without
// file_search outputs the text stays as it is.
func answerPart(in *ModelInput, text string) gen.MessageContent {
	m := -1
	for i, o := range in.ToolOutputs {
		if o.Call.Name == FileSearchToolName {
			m = i
		}
	}
	if m < 0 {
		return textPart(text)
	}
	sources := make([]cite.Source, len(in.ToolOutputs[m].Results))
	for n, r := range in.ToolOutputs[m].Results {
		sources[n] = cite.Source{FileID: r.FileID, Filename: r.Filename}
	}
	resolved, anns := cite.Resolve(text, m, sources)
	out := make([]gen.MessageContentTextAnnotation, 0, len(anns))
	for _, a := range anns {
		out = append(out, gen.MessageContentTextAnnotation{
			Type: gen.MessageContentTextAnnotationTypeFileCitation, Text: a.Text, StartIndex: a.StartIndex, EndIndex: a.EndIndex,
			FileCitation: gen.MessageContentFileCitation{FileId: a.FileID},
		})
	}
	return gen.MessageContent{Type: gen.MessageContentTypeText,
		Text: gen.MessageContentText{Value: resolved, Annotations: out}}
}
