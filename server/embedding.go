package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/assistants-go/assistants/server/retrieval/embed"
)

// The embedding space guard.
//
// Every vector the server's pipeline gets (a file's chunks, a search's
// queries) comes through spaceGuard. The server binds itself to the
// embedding space (model name and dimension) of the first vectors it gets;
// vectors of any other model or dimension are refused, never indexed and
// never compared with the index's:
//
//   - a vector store file being processed fails, with a last_error
//     (server_error) that names both spaces;
//   - POST /vector_stores/{id}/search answers 409 embedding_model_changed
//     with the same message;
//   - a file_search call in a run gets a tool output saying the search
//     failed and why.
//
// Refusing, not re-embedding, is the choice: the embedder is fixed for the
// life of the process (Options.Embedder, or the serve flags), so a change
// within it can only come from the endpoint itself (a model swapped
// behind the same name), an endpoint that has just shown it cannot be
// trusted to embed the whole corpus again consistently; and re-embedding
// every stored chunk behind one request would hold that request up for as
// long as the endpoint takes. Restarting the server with the original
// model is the way out.
//
// On SQLite and PostgreSQL the vectors are stored with their model and
// dimension, and the store's search index refuses vectors of another (see
// ingest.go): a server started with another model than the stored
// vectors' refuses every search (409 embedding_model_changed) and fails
// every new file, with a message naming both models, until it is started
// with the stored model or the vector stores' files are deleted (re-adding
// a file embeds it again).
//
// Errors of the embedder itself (an endpoint down, a 429 after the
// retries) become embedFailure: a file fails with a last_error saying the
// embedding failed and why; a search answers 502 embedding_failed.

// spaceGuard wraps the server's embedder and refuses vectors of a space
// other than the first one seen.
type spaceGuard struct {
	inner embed.Embedder

	mu    sync.Mutex
	model string // the bound space; dim 0: none yet
	dim   int
}

// embedSpaceError is a vector of another embedding space than the
// server's.
type embedSpaceError struct{ msg string }

func (e *embedSpaceError) Error() string { return e.msg }

// embedFailure is an error of the embedder itself.
type embedFailure struct{ err error }

func (e *embedFailure) Error() string { return e.err.Error() }
func (e *embedFailure) Unwrap() error { return e.err }

// Model returns the embedder's model name.
func (g *spaceGuard) Model() string { return g.inner.Model() }

// Dimension returns the embedder's dimension.
func (g *spaceGuard) Dimension() int { return g.inner.Dimension() }

// Embed embeds texts with the inner embedder and checks that every vector
// is of the server's embedding space (binding it on the first vectors).
func (g *spaceGuard) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	vecs, err := g.inner.Embed(ctx, texts)
	model := g.inner.Model()
	if err != nil {
		if errors.Is(err, embed.ErrDimension) {
			// The embedder's own check: the endpoint changed dimension.
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.dim == 0 {
				return nil, &embedFailure{err: err}
			}
			return nil, &embedSpaceError{msg: fmt.Sprintf(
				"The embedding model changed: this server's vectors come from %q (%d dimensions), and the embedding endpoint now answers with vectors of another dimension (%s). Vectors of two models are never compared: restart the server with the original model.",
				g.model, g.dim, err.Error())}
		}
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, &embedFailure{err: err}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, v := range vecs {
		if g.dim == 0 && len(v) > 0 {
			g.model, g.dim = model, len(v)
		}
		if len(v) != g.dim || model != g.model {
			return nil, &embedSpaceError{msg: fmt.Sprintf(
				"The embedding model changed: this server's vectors come from %q (%d dimensions), the embedder now gives %q (%d dimensions). Vectors of two models are never compared: restart the server with %q.",
				g.model, g.dim, model, len(v), g.model)}
		}
	}
	return vecs, nil
}

// embeddingAPIError maps an embedding error of a search to the reply:
// 409 embedding_model_changed, or 502 embedding_failed. Other errors
// are returned as they are (nil for nil).
func embeddingAPIError(err error) error {
	var se *embedSpaceError
	if errors.As(err, &se) {
		return &apiError{Status: http.StatusConflict, Type: "invalid_request_error", Code: "embedding_model_changed", Message: se.msg}
	}
	var ef *embedFailure
	if errors.As(err, &ef) {
		return &apiError{Status: http.StatusBadGateway, Type: "server_error", Code: "embedding_failed",
			Message: "The query could not be embedded: " + cutMessage(ef.err.Error(), 300)}
	}
	return err
}

// embeddingReason returns what a file's last_error says about an
// embedding error, or "" when err is not one.
func embeddingReason(err error) string {
	var se *embedSpaceError
	if errors.As(err, &se) {
		return se.msg
	}
	var ef *embedFailure
	if errors.As(err, &ef) {
		return "the embedding failed: " + cutMessage(ef.err.Error(), 300)
	}
	return ""
}

// cutMessage cuts s to at most n bytes, on a rune boundary.
func cutMessage(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}
