package main

import (
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/retrieval/embed"
)

// Environment variables that configure the model backend when the flags are
// not given (serve) and for `assistants demo` / `make demo`.
const (
	envBackendURL    = "ASSISTANTS_BACKEND_URL"     // --backend-url
	envBackendKeyEnv = "ASSISTANTS_BACKEND_KEY_ENV" // --backend-key-env
	envModelMap      = "ASSISTANTS_MODEL_MAP"       // --model-map
	envDropTools     = "ASSISTANTS_DROP_UNSUPPORTED_TOOLS"

	envEmbeddingURL    = "ASSISTANTS_EMBEDDING_URL"     // --embedding-url
	envEmbeddingModel  = "ASSISTANTS_EMBEDDING_MODEL"   // --embedding-model
	envEmbeddingKeyEnv = "ASSISTANTS_EMBEDDING_KEY_ENV" // --embedding-key-env
)

// backendFlags are the flags that put a Chat Completions backend behind the
// embedded server. With no --backend-url (and no ASSISTANTS_BACKEND_URL) the
// scripted model stays the default.
type backendFlags struct {
	url      string
	keyEnv   string
	modelMap string
	drop     bool
	timeout  time.Duration

	// The embeddings endpoint (see embedder).
	embURL    string
	embModel  string
	embKeyEnv string
	embDims   int
}

// addBackendFlags registers the backend flags on fs; their defaults come from
// the environment (getenv).
func addBackendFlags(fs *flag.FlagSet, getenv func(string) string) *backendFlags {
	b := &backendFlags{}
	fs.StringVar(&b.url, "backend-url", getenv(envBackendURL), "Chat Completions backend base URL, e.g. https://api.openai.com/v1 (default: scripted model; env "+envBackendURL+")")
	fs.StringVar(&b.keyEnv, "backend-key-env", getenv(envBackendKeyEnv), "name of the environment variable holding the backend API key (env "+envBackendKeyEnv+")")
	fs.StringVar(&b.modelMap, "model-map", getenv(envModelMap), "model name mapping, e.g. gpt-4o=llama3.1,gpt-4o-mini=qwen2.5 (env "+envModelMap+")")
	fs.BoolVar(&b.drop, "drop-unsupported-tools", getenv(envDropTools) == "1" || getenv(envDropTools) == "true", "drop code_interpreter tools instead of failing the run (file_search is served)")
	fs.DurationVar(&b.timeout, "backend-timeout", 2*time.Minute, "timeout of one backend request")
	fs.StringVar(&b.embURL, "embedding-url", getenv(envEmbeddingURL), "OpenAI-compatible embeddings base URL; requests go to {url}/embeddings (default: --backend-url; used only with --embedding-model; env "+envEmbeddingURL+")")
	fs.StringVar(&b.embModel, "embedding-model", getenv(envEmbeddingModel), "embedding model for vector store files and searches, e.g. text-embedding-3-small (default: the built-in lexical embedder, offline; env "+envEmbeddingModel+")")
	fs.StringVar(&b.embKeyEnv, "embedding-key-env", getenv(envEmbeddingKeyEnv), "name of the environment variable holding the embeddings API key (default: --backend-key-env when the embeddings URL is the backend's, else no key; env "+envEmbeddingKeyEnv+")")
	fs.IntVar(&b.embDims, "embedding-dimensions", 0, "ask the embedding model for vectors of this length (text-embedding-3 models; default 0: the model's own)")
	return b
}

// embedder builds the embedder of vector store files and searches, or
// returns nil (the server's built-in lexical embedder) when no
// --embedding-model is set. The URL defaults to --backend-url. The key
// is read only from the environment: the variable named by
// --embedding-key-env, or, when the embeddings go to the backend's own
// URL, the one named by --backend-key-env (a backend key is never sent to
// another host). It never appears in errors or logs.
func (b *backendFlags) embedder(getenv func(string) string) (embed.Embedder, error) {
	if b.embModel == "" {
		switch {
		case b.embURL != "":
			return nil, fmt.Errorf("--embedding-url %q: set --embedding-model too", b.embURL)
		case b.embKeyEnv != "":
			return nil, fmt.Errorf("--embedding-key-env %s: set --embedding-model too", b.embKeyEnv)
		case b.embDims != 0:
			return nil, fmt.Errorf("--embedding-dimensions %d: set --embedding-model too", b.embDims)
		}
		return nil, nil
	}
	u := b.embURL
	if u == "" {
		u = b.url
	}
	if u == "" {
		return nil, fmt.Errorf("--embedding-model %q: set --embedding-url (or --backend-url) too", b.embModel)
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return nil, fmt.Errorf("--embedding-url %q: want an http:// or https:// URL", u)
	}
	if b.embDims < 0 {
		return nil, fmt.Errorf("--embedding-dimensions %d: cannot be negative", b.embDims)
	}
	keyEnv, flagName := b.embKeyEnv, "--embedding-key-env"
	if keyEnv == "" && strings.TrimRight(u, "/") == strings.TrimRight(b.url, "/") {
		keyEnv, flagName = b.keyEnv, "--backend-key-env"
	}
	key := ""
	if keyEnv != "" {
		if key = getenv(keyEnv); key == "" {
			return nil, fmt.Errorf("%s %s: the variable is empty", flagName, keyEnv)
		}
	}
	e, err := embed.NewOpenAI(u, b.embModel, func(o *embed.OpenAIOptions) {
		o.APIKey = key
		o.Dimensions = b.embDims
	})
	if err != nil {
		return nil, fmt.Errorf("--embedding-url/--embedding-model: %w", err)
	}
	return e, nil
}

// model builds the backend model, or returns nil when no backend URL is set.
// The API key is read only from the environment variable named by
// --backend-key-env; it never appears in errors or logs.
func (b *backendFlags) model(getenv func(string) string, log *slog.Logger) (*server.ChatModel, error) {
	if b.url == "" {
		return nil, nil
	}
	if !strings.HasPrefix(b.url, "http://") && !strings.HasPrefix(b.url, "https://") {
		return nil, fmt.Errorf("--backend-url %q: want an http:// or https:// URL", b.url)
	}
	o := server.ChatBackendOptions{BaseURL: b.url, DropUnsupportedTools: b.drop, Timeout: b.timeout, Logger: log}
	if b.keyEnv != "" {
		o.APIKey = getenv(b.keyEnv)
		if o.APIKey == "" {
			return nil, fmt.Errorf("--backend-key-env %s: the variable is empty", b.keyEnv)
		}
	}
	mm, err := parseModelMap(b.modelMap)
	if err != nil {
		return nil, err
	}
	o.ModelMap = mm
	return server.ChatBackend(o), nil
}

// parseModelMap parses "a=b,c=d".
func parseModelMap(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("--model-map: %q is not name=backend-name", pair)
		}
		m[from] = to
	}
	return m, nil
}

// bindBackend lets the backend read the server's files (for image_file
// parts). m may be nil.
func bindBackend(m *server.ChatModel, srv *server.Server) {
	if m != nil {
		m.UseFiles(srv)
	}
}
