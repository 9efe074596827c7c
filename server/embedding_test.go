package server_test

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/poller"
	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/retrieval/embed"
)

// wordVector embeds a text as counts of its lower-cased words hashed into
// dim numbers, L2-normalised: a stand-in for a real model that ranks texts
// sharing words together.
func wordVector(text string, dim int) []float64 {
	v := make([]float64, dim)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		h := fnv.New32a()
		_, _ = h.Write([]byte(w))
		v[h.Sum32()%uint32(dim)]++
	}
	var sum float64
	for _, x := range v {
		sum += x * x
	}
	if sum > 0 {
		for i := range v {
			v[i] /= math.Sqrt(sum)
		}
	}
	return v
}

// fakeEmbeddings is a fake OpenAI-compatible POST /v1/embeddings: it
// records each request's model, inputs and Authorization header and
// answers with wordVector of each input in its current dimension.
type fakeEmbeddings struct {
	*httptest.Server
	mu     sync.Mutex
	dim    int
	models []string
	inputs [][]string
	auth   []string
}

func newFakeEmbeddings(t *testing.T, dim int) *fakeEmbeddings {
	f := &fakeEmbeddings{dim: dim}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if err := json.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.models = append(f.models, req.Model)
		f.inputs = append(f.inputs, req.Input)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		dim := f.dim
		f.mu.Unlock()
		type item struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		}
		out := struct {
			Object string `json:"object"`
			Data   []item `json:"data"`
		}{Object: "list"}
		for i, in := range req.Input {
			out.Data = append(out.Data, item{Index: i, Embedding: wordVector(in, dim)})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeEmbeddings) url() string { return f.URL + "/v1" }

func (f *fakeEmbeddings) setDim(d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dim = d
}

// seen returns every input embedded so far, the models asked for and the
// Authorization headers sent.
func (f *fakeEmbeddings) seen() (inputs, models, auth []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.inputs {
		inputs = append(inputs, in...)
	}
	return inputs, append([]string(nil), f.models...), append([]string(nil), f.auth...)
}

// waitStore polls a vector store until none of its files is in progress.
func waitStore(t *testing.T, ctx context.Context, c *assistants.Client, id string) gen.VectorStoreObject {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := c.GetVectorStoreWithResponse(ctx, id)
		require.NoError(t, err)
		require.NotNil(t, r.JSON200, "body: %s", r.Body)
		if r.JSON200.FileCounts.InProgress == 0 {
			return *r.JSON200
		}
		require.True(t, time.Now().Before(deadline), "vector store %s still processing: %+v", id, r.JSON200.FileCounts)
		time.Sleep(5 * time.Millisecond)
	}
}

func searchStore(t *testing.T, ctx context.Context, c *assistants.Client, id, body string) *gen.SearchVectorStoreReply {
	t.Helper()
	r, err := c.SearchVectorStoreWithBodyWithResponse(ctx, id, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	return r
}

// With Options.Embedder set to an OpenAI-compatible endpoint, the chunks of
// ingested files, the search endpoint's queries and file_search's queries
// in a run are all embedded there (with the key, as a bearer token), and
// the results and citations come out right.
func TestEmbeddingsBackendEndToEnd(t *testing.T) {
	fake := newFakeEmbeddings(t, 16)
	const key = "sk-embed-test-key"
	e, err := embed.NewOpenAI(fake.url(), "fake-embed-1", func(o *embed.OpenAIOptions) { o.APIKey = key })
	require.NoError(t, err)
	srv, ctx := newTestServer(t, server.WithEmbedder(e))
	c := srv.Client
	penguinText := "Emperor penguins eat krill and fish. They breed in the Antarctic winter."
	penguins := upload(t, ctx, c, "penguins.md", penguinText)
	whales := upload(t, ctx, c, "whales.txt", "Blue whales are the largest animals. They sing across whole oceans.")
	vs, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{penguins.Id, whales.Id}})
	require.NoError(t, err)
	require.NotNil(t, vs.JSON200, "body: %s", vs.Body)
	store := waitStore(t, ctx, c, vs.JSON200.Id)
	assert.Equal(t, gen.VectorStoreFileCounts{Completed: 2, Total: 2}, store.FileCounts)

	inputs, models, auth := fake.seen()
	assert.Contains(t, inputs, penguinText, "the chunk was embedded by the endpoint")
	require.NotEmpty(t, models)
	for i := range models {
		assert.Equal(t, "fake-embed-1", models[i])
		assert.Equal(t, "Bearer "+key, auth[i])
	}
	// usage_bytes counts the endpoint's 16-number vectors (one chunk each).
	f, err := c.GetVectorStoreFileWithResponse(ctx, vs.JSON200.Id, penguins.Id)
	require.NoError(t, err)
	require.NotNil(t, f.JSON200, "body: %s", f.Body)
	assert.Equal(t, len(penguinText)+4*16, f.JSON200.UsageBytes)

	// Search: the query goes to the endpoint too.
	r := searchStore(t, ctx, c, vs.JSON200.Id, `{"query":"what do emperor penguins eat","ranking_options":{"ranker":"auto"}}`)
	require.NotNil(t, r.JSON200, "body: %s", r.Body)
	require.NotEmpty(t, r.JSON200.Data)
	assert.Equal(t, penguins.Id, r.JSON200.Data[0].FileId)
	inputs, _, _ = fake.seen()
	assert.Equal(t, "what do emperor penguins eat", inputs[len(inputs)-1])

	// file_search in a run.
	x := newRT(t, srv)
	a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fileSearchTool(0, 0)},
		ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{vs.JSON200.Id}}}})
	thread := x.thread("What do emperor penguins eat?")
	run, err := poller.CreateAndPoll(ctx, c, thread, gen.CreateRunRequest{AssistantId: a.Id}, poller.WithInterval(5*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, gen.RunObjectStatusCompleted, run.Status, "last_error: %+v", run.LastError)
	msgs := x.messages(thread)
	text, files := checkCitations(t, msgs[len(msgs)-1])
	assert.Equal(t, "Emperor penguins eat krill and fish. 【0:0†penguins.md】", text)
	assert.Equal(t, []string{penguins.Id}, files)
	inputs, _, _ = fake.seen()
	assert.Equal(t, "What do emperor penguins eat?", inputs[len(inputs)-1], "the run's search query was embedded by the endpoint")
}

// switchEmbedder is an embedder whose model and dimension a test changes.
type switchEmbedder struct {
	mu    sync.Mutex
	model string
	dim   int
}

func (s *switchEmbedder) set(model string, dim int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.model, s.dim = model, dim
}

func (s *switchEmbedder) Model() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model
}

func (s *switchEmbedder) Dimension() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dim
}

func (s *switchEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	d := s.Dimension()
	out := make([][]float32, len(texts))
	for i, t := range texts {
		for _, x := range wordVector(t, d) {
			out[i] = append(out[i], float32(x))
		}
	}
	return out, nil
}

// Changing the embedding model or dimension on a server that indexed
// chunks is refused: the search answers 409 embedding_model_changed (it
// never ranks the new model's query vector against the old chunks, even
// at the same dimension), a file added meanwhile fails with a last_error
// naming both models, the files already indexed are kept, and the file
// counts are right. Back on the first model, all works again.
func TestEmbeddingModelChangeRefused(t *testing.T) {
	tests := []struct {
		name    string
		builder func(t *testing.T) (e embed.Embedder, change, back func())
		want    []string // in the refusal's message
	}{
		{"same dimension, other model", func(t *testing.T) (embed.Embedder, func(), func()) {
			s := &switchEmbedder{model: "model-a", dim: 16}
			return s, func() { s.set("model-b", 16) }, func() { s.set("model-a", 16) }
		}, []string{`"model-a" (16 dimensions)`, `"model-b" (16 dimensions)`}},
		{"other dimension", func(t *testing.T) (embed.Embedder, func(), func()) {
			s := &switchEmbedder{model: "model-a", dim: 16}
			return s, func() { s.set("model-a", 32) }, func() { s.set("model-a", 16) }
		}, []string{`"model-a" (16 dimensions)`, `"model-a" (32 dimensions)`}},
		{"endpoint changes dimension", func(t *testing.T) (embed.Embedder, func(), func()) {
			fake := newFakeEmbeddings(t, 16)
			e, err := embed.NewOpenAI(fake.url(), "fake-embed-1")
			require.NoError(t, err)
			return e, func() { fake.setDim(24) }, func() { fake.setDim(16) }
		}, []string{`"fake-embed-1" (16 dimensions)`, "24 numbers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, change, back := tt.builder(t)
			srv, ctx := newTestServer(t, server.WithEmbedder(e))
			c := srv.Client
			first := upload(t, ctx, c, "first.txt", "Emperor penguins eat krill and fish.")
			second := upload(t, ctx, c, "second.txt", "Penguins also eat squid.")
			vs, err := c.CreateVectorStoreWithResponse(ctx, gen.CreateVectorStoreRequest{FileIds: &[]string{first.Id}})
			require.NoError(t, err)
			require.NotNil(t, vs.JSON200, "body: %s", vs.Body)
			id := vs.JSON200.Id
			waitStore(t, ctx, c, id)
			r := searchStore(t, ctx, c, id, `{"query":"penguins eat"}`)
			require.NotNil(t, r.JSON200, "body: %s", r.Body)
			require.Len(t, r.JSON200.Data, 1)

			change()
			r = searchStore(t, ctx, c, id, `{"query":"penguins eat"}`)
			e409 := apiError(t, http.StatusConflict, r.Body, r.StatusCode())
			require.NotNil(t, e409.Code)
			assert.Equal(t, "embedding_model_changed", *e409.Code)
			for _, w := range tt.want {
				assert.Contains(t, e409.Message, w)
			}

			// A run's file_search is refused too: the scripted model finds
			// nothing rather than citing a chunk ranked across models.
			x := newRT(t, srv)
			a := x.assistant(gen.CreateAssistantRequest{Tools: &[]gen.AssistantTool{fileSearchTool(0, 0)},
				ToolResources: &gen.ToolResourcesCreate{FileSearch: &gen.ToolResourcesFileSearchCreate{VectorStoreIds: &[]string{id}}}})
			thread := x.thread("What do penguins eat?")
			run, err := poller.CreateAndPoll(ctx, c, thread, gen.CreateRunRequest{AssistantId: a.Id}, poller.WithInterval(5*time.Millisecond))
			require.NoError(t, err)
			require.Equal(t, gen.RunObjectStatusCompleted, run.Status, "last_error: %+v", run.LastError)
			msgs := x.messages(thread)
			assert.Equal(t, "I found nothing about that in the files.", textOf(t, msgs[len(msgs)-1]))

			_, err = c.CreateVectorStoreFileWithResponse(ctx, id, gen.CreateVectorStoreFileRequest{FileId: second.Id})
			require.NoError(t, err)
			store := waitStore(t, ctx, c, id)
			assert.Equal(t, gen.VectorStoreFileCounts{Completed: 1, Failed: 1, Total: 2}, store.FileCounts)
			g, err := c.GetVectorStoreFileWithResponse(ctx, id, second.Id)
			require.NoError(t, err)
			require.NotNil(t, g.JSON200, "body: %s", g.Body)
			assert.Equal(t, gen.VectorStoreFileObjectStatusFailed, g.JSON200.Status)
			require.NotNil(t, g.JSON200.LastError)
			assert.Equal(t, gen.VectorStoreFileObjectLastErrorCodeServerError, g.JSON200.LastError.Code)
			assert.Contains(t, g.JSON200.LastError.Message, "The embedding model changed")
			for _, w := range tt.want {
				assert.Contains(t, g.JSON200.LastError.Message, w)
			}

			back()
			r = searchStore(t, ctx, c, id, `{"query":"penguins eat"}`)
			require.NotNil(t, r.JSON200, "body: %s", r.Body)
			require.Len(t, r.JSON200.Data, 1, "the first file is still indexed")
			assert.Equal(t, first.Id, r.JSON200.Data[0].FileId)
		})
	}
}
