package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// rewrite_query: with the chat backend, the query goes to the backend with
// the documented prompt and model, and search_query shows the rewrite,
// which is what is searched; without rewrite_query, or without a backend,
// the query stays; a failed or empty rewrite keeps the query and the
// search still answers.
func TestSearchRewriteQuery(t *testing.T) {
	tests := []struct {
		name     string
		backend  func(w http.ResponseWriter, r *http.Request) // nil: the scripted model
		rewrite  string                                       // the body's rewrite_query ("" for none)
		want     []string                                     // search_query
		wantFile string                                       // the first result's file name
		calls    int                                          // backend requests
	}{
		{"backend rewrites", textReply(20, 4, "whale ", "song"), "true", []string{"whale song"}, "whales.txt", 1},
		{"backend reply quoted, two lines", textReply(20, 4, "\"whale song\"\n", "(rewritten)"), "true", []string{"whale song"}, "whales.txt", 1},
		{"rewrite_query false", textReply(20, 4, "whale song"), "false", []string{"what do penguins eat"}, "penguins.md", 0},
		{"rewrite_query absent", textReply(20, 4, "whale song"), "", []string{"what do penguins eat"}, "penguins.md", 0},
		{"backend fails", statusReply(500, "boom"), "true", []string{"what do penguins eat"}, "penguins.md", 1},
		{"backend answers nothing", textReply(20, 0), "true", []string{"what do penguins eat"}, "penguins.md", 1},
		{"no backend", nil, "true", []string{"what do penguins eat"}, "penguins.md", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fake *fakeChat
			var srv *assistantstest.Server
			if tt.backend != nil {
				fake = newFakeChat(t, tt.backend)
				m := server.ChatBackend(server.ChatBackendOptions{BaseURL: fake.url(), APIKey: cbKey,
					ModelMap: map[string]string{"gpt-4o-mini": "qwen2.5"}, RateLimitRetries: -1})
				srv = assistantstest.NewServer(t, server.WithModel(m), server.WithStepDelay(0))
			} else {
				srv, _ = newTestServer(t)
			}
			ctx, c := t.Context(), srv.Client
			p := upload(t, ctx, c, "penguins.md", "Emperor penguins eat krill and fish.")
			w := upload(t, ctx, c, "whales.txt", "Humpback whales sing long songs.")
			vs, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{p.Id, w.Id}})
			require.NoError(t, err)
			require.NotNil(t, vs.JSON200, "body: %s", vs.Body)
			waitStore(t, ctx, c, vs.JSON200.Id)
			body := `{"query":"what do penguins eat"`
			if tt.rewrite != "" {
				body += `,"rewrite_query":` + tt.rewrite
			}
			r := searchStore(t, ctx, c, vs.JSON200.Id, body+`}`)
			require.NotNil(t, r.JSON200, "body: %s", r.Body)
			assert.Equal(t, tt.want, r.JSON200.SearchQuery)
			require.NotEmpty(t, r.JSON200.Data)
			assert.Equal(t, tt.wantFile, r.JSON200.Data[0].Filename, "the rewritten query is what is searched")
			if fake == nil {
				return
			}
			reqs := fake.requests()
			require.Len(t, reqs, tt.calls)
			if tt.calls == 0 {
				return
			}
			assert.Equal(t, "qwen2.5", reqs[0]["model"], "gpt-4o-mini through the model map")
			msgs := reqs[0]["messages"].([]any)
			require.Len(t, msgs, 2)
			assert.Equal(t, map[string]any{"role": "system", "content": server.RewriteQueryPrompt}, msgs[0])
			assert.Equal(t, map[string]any{"role": "user", "content": "what do penguins eat"}, msgs[1])
			assert.Equal(t, "Bearer "+cbKey, fake.auth[0])
		})
	}
}
