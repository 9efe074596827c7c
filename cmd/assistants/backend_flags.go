package main

import (
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/assistants-go/assistants/server"
)

// Environment variables that configure the model backend when the flags are
// not given (serve) and for `assistants demo` / `make demo`.
const (
	envBackendURL    = "ASSISTANTS_BACKEND_URL"     // --backend-url
	envBackendKeyEnv = "ASSISTANTS_BACKEND_KEY_ENV" // --backend-key-env
	envModelMap      = "ASSISTANTS_MODEL_MAP"       // --model-map
	envDropTools     = "ASSISTANTS_DROP_UNSUPPORTED_TOOLS"
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
	return b
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
