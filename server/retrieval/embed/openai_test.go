package embed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeEmbeddings is an OpenAI-compatible /embeddings endpoint: the vector
// of an input is [len(input), first byte, 1], its replies list the data in
// reverse order (clients must use "index"), and the first fail429 requests
// are answered 429 with the Retry-After header retryAfter.
type fakeEmbeddings struct {
	t          *testing.T
	key        string
	fail429    int
	retryAfter string
	status     int    // when not 0, every reply has this status
	body       string // with status: the reply body
	reply      func(inputs []string) any

	mu       sync.Mutex
	requests [][]string
	auth     []string
}

func (f *fakeEmbeddings) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var req embeddingsRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req.Input)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	n := len(f.requests)
	f.mu.Unlock()
	assert.Equal(f.t, "float", req.EncodingFormat)
	if f.status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
		return
	}
	if n <= f.fail429 {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`))
		return
	}
	var out any
	if f.reply != nil {
		out = f.reply(req.Input)
	} else {
		type item struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		}
		var data []item
		for i := len(req.Input) - 1; i >= 0; i-- {
			in := req.Input[i]
			data = append(data, item{"embedding", i, []float64{float64(len(in)), float64(in[0]), 1}})
		}
		out = map[string]any{"object": "list", "data": data, "model": req.Model}
	}
	_ = json.NewEncoder(w).Encode(out)
}

// recordSleep is an injected clock: it records the waits and returns at once.
type recordSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *recordSleep) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func newClient(t *testing.T, f *fakeEmbeddings, opts ...func(*OpenAIOptions)) (*OpenAI, *recordSleep) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	rs := &recordSleep{}
	all := append([]func(*OpenAIOptions){func(o *OpenAIOptions) { o.Sleep = rs.sleep; o.HTTPClient = srv.Client() }}, opts...)
	c, err := NewOpenAI(srv.URL+"/v1/", "text-embedding-3-small", all...)
	require.NoError(t, err)
	return c, rs
}

func TestOpenAIBatchesAndOrder(t *testing.T) {
	tests := []struct {
		name        string
		n           int
		maxInputs   int
		maxTokens   int
		wantBatches []int
	}{
		{"one batch", 5, 2048, 300000, []int{5}},
		{"by input count", 7, 3, 300000, []int{3, 3, 1}},
		{"by tokens", 6, 2048, 8, []int{2, 2, 2}}, // each input is 4 tokens
		{"empty", 0, 2048, 300000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEmbeddings{t: t, key: "sk-test"}
			c, _ := newClient(t, f, func(o *OpenAIOptions) {
				o.MaxBatchInputs, o.MaxBatchTokens, o.APIKey = tt.maxInputs, tt.maxTokens, "sk-test"
			})
			var texts []string
			for i := range tt.n {
				texts = append(texts, fmt.Sprintf("%c alpha beta%s", 'a'+i, strings.Repeat("!", i)))
			}
			vecs, err := c.Embed(context.Background(), texts)
			require.NoError(t, err)
			require.Len(t, vecs, tt.n)
			for i, v := range vecs {
				assert.Equal(t, []float32{float32(len(texts[i])), float32(texts[i][0]), 1}, v, "vector %d in input order", i)
			}
			var sizes []int
			for _, r := range f.requests {
				sizes = append(sizes, len(r))
			}
			assert.Equal(t, tt.wantBatches, sizes)
			for _, a := range f.auth {
				assert.Equal(t, "Bearer sk-test", a)
			}
			if tt.n > 0 {
				assert.Equal(t, 3, c.Dimension(), "learnt from the reply")
			}
		})
	}
}

func TestOpenAIRetries429(t *testing.T) {
	tests := []struct {
		name       string
		fail       int
		retryAfter string
		maxRetries int
		wantErr    string
		wantWaits  []time.Duration
	}{
		{"retry-after seconds", 2, "3", 4, "", []time.Duration{3 * time.Second, 3 * time.Second}},
		{"fractional", 1, "0.25", 4, "", []time.Duration{250 * time.Millisecond}},
		{"backoff without header", 3, "", 4, "", []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}},
		{"retries used up", 10, "1", 2, "giving up after 3 attempts", []time.Duration{time.Second, time.Second}},
		{"wait over the bound", 1, "120", 4, "asks to wait 2m0s, over the limit of 30s", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEmbeddings{t: t, fail429: tt.fail, retryAfter: tt.retryAfter}
			c, rs := newClient(t, f, func(o *OpenAIOptions) { o.MaxRetries = tt.maxRetries })
			vecs, err := c.Embed(context.Background(), []string{"hello"})
			assert.Equal(t, tt.wantWaits, rs.waits)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Len(t, vecs, 1)
				assert.Len(t, f.requests, tt.fail+1)
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
			assert.ErrorIs(t, err, ErrRateLimited)
			var ae *APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, "rate_limit_exceeded", ae.Code)
		})
	}
}

func TestOpenAIRetryStopsWithContext(t *testing.T) {
	f := &fakeEmbeddings{t: t, fail429: 10, retryAfter: "1"}
	ctx, cancel := context.WithCancel(context.Background())
	c, _ := newClient(t, f, func(o *OpenAIOptions) {
		o.Sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	})
	_, err := c.Embed(ctx, []string{"hello"})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Len(t, f.requests, 1)
}

func TestOpenAIErrorsNeverShowTheKey(t *testing.T) {
	const key = "sk-secret-123456"
	f := &fakeEmbeddings{t: t, status: http.StatusUnauthorized,
		body: `{"error":{"message":"Incorrect API key provided: sk-secret-123456.","type":"invalid_request_error","code":"invalid_api_key"}}`}
	c, rs := newClient(t, f, func(o *OpenAIOptions) { o.APIKey = key })
	_, err := c.Embed(context.Background(), []string{"hello"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), key)
	assert.Contains(t, err.Error(), "status 401: Incorrect API key provided: [redacted].")
	assert.Empty(t, rs.waits, "a 401 is not retried")
	assert.Equal(t, "Bearer "+key, f.auth[0])
	assert.NotContains(t, fmt.Sprintf("%+v %#v", c, c), key, "the key is not printed with the client either")
}

func TestOpenAIServerErrorsAreRetried(t *testing.T) {
	f := &fakeEmbeddings{t: t, status: http.StatusBadGateway, body: `<html>bad gateway</html>`}
	c, rs := newClient(t, f, func(o *OpenAIOptions) { o.MaxRetries = 1 })
	_, err := c.Embed(context.Background(), []string{"hello"})
	assert.ErrorContains(t, err, "status 502: Bad Gateway")
	assert.Len(t, rs.waits, 1)
	assert.Len(t, f.requests, 2)
	assert.False(t, errors.Is(err, ErrRateLimited))
}

func TestOpenAIBadReplies(t *testing.T) {
	vec := func(idx int, v ...float64) map[string]any { return map[string]any{"index": idx, "embedding": v} }
	tests := []struct {
		name    string
		reply   any
		wantErr string
		wantIs  error
	}{
		{"not json", "just a string", "not an embeddings list", nil},
		{"too few", map[string]any{"data": []any{vec(0, 1, 2)}}, "has 1 embeddings for 2 inputs", nil},
		{"repeated index", map[string]any{"data": []any{vec(0, 1, 2), vec(0, 1, 2)}}, "bad or repeated index 0", nil},
		{"index out of range", map[string]any{"data": []any{vec(0, 1, 2), vec(5, 1, 2)}}, "bad or repeated index 5", nil},
		{"dimensions differ", map[string]any{"data": []any{vec(0, 1, 2), vec(1, 1, 2, 3)}}, "has 3 numbers, expected 2", ErrDimension},
		{"empty vector", map[string]any{"data": []any{vec(0), vec(1)}}, "is empty", nil},
		{"out of float32 range", map[string]any{"data": []any{vec(0, 1e300, 1), vec(1, 1, 2)}}, "out of range", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEmbeddings{t: t, reply: func([]string) any { return tt.reply }}
			c, _ := newClient(t, f)
			_, err := c.Embed(context.Background(), []string{"one", "two"})
			assert.ErrorContains(t, err, tt.wantErr)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
		})
	}
}

func TestOpenAIDimensionIsKept(t *testing.T) {
	dim := 3
	f := &fakeEmbeddings{t: t, reply: func(in []string) any {
		var data []any
		for i := range in {
			data = append(data, map[string]any{"index": i, "embedding": make([]float64, dim)})
		}
		return map[string]any{"data": data}
	}}
	c, _ := newClient(t, f)
	_, err := c.Embed(context.Background(), []string{"a"})
	require.NoError(t, err)
	dim = 4 // the model behind the URL changed
	_, err = c.Embed(context.Background(), []string{"a"})
	assert.ErrorIs(t, err, ErrDimension)
	assert.Equal(t, 3, c.Dimension())
}

func TestOpenAIInputChecks(t *testing.T) {
	f := &fakeEmbeddings{t: t}
	c, _ := newClient(t, f, func(o *OpenAIOptions) { o.MaxInputTokens = 5 })
	_, err := c.Embed(context.Background(), []string{"fine", " "})
	assert.ErrorContains(t, err, "input 1 is empty")
	_, err = c.Embed(context.Background(), []string{"fine", strings.Repeat("word ", 10)})
	assert.ErrorContains(t, err, "tokens, over the limit of 5")
	assert.Empty(t, f.requests, "nothing is sent for a bad input")
}

func TestNewOpenAIChecks(t *testing.T) {
	_, err := NewOpenAI("ftp://x", "m")
	assert.ErrorContains(t, err, "not an http(s) URL")
	_, err = NewOpenAI("http://x", "")
	assert.ErrorContains(t, err, "no embedding model")
	_, err = NewOpenAI("http://x", "m", func(o *OpenAIOptions) { o.MaxBatchInputs = 0 })
	assert.ErrorContains(t, err, "batch limits")
}

func TestRetryAfterHeader(t *testing.T) {
	tests := map[string]struct {
		h    http.Header
		want time.Duration
	}{
		"none":      {http.Header{}, 0},
		"seconds":   {http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		"ms":        {http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"2"}}, 1500 * time.Millisecond},
		"garbage":   {http.Header{"Retry-After": {"soon"}}, 0},
		"negative":  {http.Header{"Retry-After": {"-3"}}, 0},
		"past date": {http.Header{"Retry-After": {"Wed, 21 Oct 2015 07:28:00 GMT"}}, 0},
	}
	for name, tt := range tests {
		assert.Equal(t, tt.want, retryAfter(tt.h), name)
	}
}
