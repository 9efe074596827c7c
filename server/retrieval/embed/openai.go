package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/assistants-go/assistants/server/retrieval/tokenize"
)

// OpenAI embeds texts with an OpenAI-compatible POST {BaseURL}/embeddings
// endpoint, in batches that respect the endpoint's limits on inputs and
// tokens per request. It retries 429 and 5xx replies a bounded number of
// times, waiting as Retry-After says (within MaxRetryWait). The API key
// comes from the caller only; it is sent in the Authorization header and
// never appears in an error.
type OpenAI struct {
	url   string
	model string
	o     OpenAIOptions // with APIKey cleared
	// key returns the API key: a func, so that printing the client with
	// fmt never shows it.
	key func() string

	mu  sync.Mutex
	dim int
}

// OpenAIOptions configure NewOpenAI.
type OpenAIOptions struct {
	// APIKey is sent as "Authorization: Bearer <key>". Default: empty, no
	// Authorization header (for local servers that need none).
	APIKey string
	// Dimensions, when above 0, is sent as "dimensions" (the
	// text-embedding-3 models shorten their vectors to it) and every
	// vector must have that length. Default 0: the model's own length,
	// learnt from the first reply and required of every later one.
	Dimensions int
	// MaxBatchInputs bounds the texts of one request. Default 2048, the
	// OpenAI endpoint's limit.
	MaxBatchInputs int
	// MaxBatchTokens bounds the summed tokens of one request. Default
	// 300000, the OpenAI endpoint's limit.
	MaxBatchTokens int
	// MaxInputTokens bounds one text; a longer text is an error (chunks
	// are at most 4096 tokens). Default 8191, the context of OpenAI's
	// embedding models.
	MaxInputTokens int
	// MaxRetries is how many times a request answered 429 or 5xx (or cut
	// off by the network) is sent again. Default 4.
	MaxRetries int
	// MaxRetryWait bounds the wait before a retry. A reply whose
	// Retry-After asks for longer ends the call at once with the error
	// (wrapping ErrRateLimited for a 429), so that the caller can
	// reschedule. Default 30s. Without Retry-After the waits are 0.5s, 1s,
	// 2s... up to MaxRetryWait.
	MaxRetryWait time.Duration
	// HTTPClient sends the requests. Default: a client with a 2 minute
	// timeout per request.
	HTTPClient *http.Client
	// Tokenizer counts tokens for batching. Default: cl100k_base, the
	// encoding of OpenAI's embedding models.
	Tokenizer *tokenize.Tokenizer
	// Sleep waits d or until ctx ends (then returns its error). Default:
	// a timer. Tests inject their own clock here.
	Sleep func(ctx context.Context, d time.Duration) error
}

// ErrRateLimited is wrapped by the error of a call that stopped on 429
// replies (retries used up, or a Retry-After beyond MaxRetryWait).
var ErrRateLimited = errors.New("embed: rate limited")

// APIError is a reply other than 200 from the embeddings endpoint. Its
// text never contains the API key.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Type, Code and Message come from the reply's "error" object when it
	// has one; Message is cut to 300 bytes.
	Type, Code, Message string
	// RetryAfter is what the reply's Retry-After asked for (0 if none).
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("embeddings endpoint: status %d: %s", e.StatusCode, msg)
}

// Unwrap makes a 429 match ErrRateLimited.
func (e *APIError) Unwrap() error {
	if e.StatusCode == http.StatusTooManyRequests {
		return ErrRateLimited
	}
	return nil
}

// NewOpenAI returns an embedder calling baseURL + "/embeddings" (baseURL
// like "https://api.openai.com/v1") with model.
func NewOpenAI(baseURL, model string, opts ...func(*OpenAIOptions)) (*OpenAI, error) {
	o := OpenAIOptions{
		MaxBatchInputs: 2048,
		MaxBatchTokens: 300_000,
		MaxInputTokens: 8191,
		MaxRetries:     4,
		MaxRetryWait:   30 * time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	if baseURL == "" || !(strings.HasPrefix(baseURL, "http://") || strings.HasPrefix(baseURL, "https://")) {
		return nil, fmt.Errorf("embed: base URL %q is not an http(s) URL", baseURL)
	}
	if model == "" {
		return nil, errors.New("embed: no embedding model given")
	}
	if o.MaxBatchInputs < 1 || o.MaxBatchTokens < 1 || o.MaxInputTokens < 1 || o.MaxRetries < 0 || o.MaxRetryWait < 0 || o.Dimensions < 0 {
		return nil, errors.New("embed: batch limits must be positive and retries, waits and dimensions not negative")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	if o.Tokenizer == nil {
		t, err := tokenize.New(tokenize.Cl100kBase)
		if err != nil {
			return nil, err
		}
		o.Tokenizer = t
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	k := o.APIKey
	o.APIKey = ""
	return &OpenAI{url: strings.TrimRight(baseURL, "/") + "/embeddings", model: model, o: o, dim: o.Dimensions,
		key: func() string { return k }}, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Model returns the model name given to NewOpenAI.
func (c *OpenAI) Model() string { return c.model }

// Dimension returns OpenAIOptions.Dimensions, or the length learnt from
// the first reply (0 before it).
func (c *OpenAI) Dimension() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dim
}

// Embed embeds texts in as few requests as the limits allow, one after
// the other. An empty text, or one over MaxInputTokens, fails the call
// before any request is sent.
func (c *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	type batch struct{ from, to int }
	var batches []batch
	start, tokens := 0, 0
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			return nil, fmt.Errorf("embed: input %d is empty", i)
		}
		n := c.o.Tokenizer.Count(t)
		if n > c.o.MaxInputTokens {
			return nil, fmt.Errorf("embed: input %d has %d tokens, over the limit of %d", i, n, c.o.MaxInputTokens)
		}
		if i > start && (i-start >= c.o.MaxBatchInputs || tokens+n > c.o.MaxBatchTokens) {
			batches = append(batches, batch{start, i})
			start, tokens = i, 0
		}
		tokens += n
	}
	if len(texts) > start {
		batches = append(batches, batch{start, len(texts)})
	}
	out := make([][]float32, 0, len(texts))
	for _, b := range batches {
		vecs, err := c.embedBatch(ctx, texts[b.from:b.to])
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}

type embeddingsRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
	Dimensions     int      `json:"dimensions,omitempty"`
}

type embeddingsReply struct {
	Data []struct {
		Index     *int      `json:"index"`
		Embedding []float64 `json:"embedding"`
	} `json:"data"`
}

// maxReplyBytes bounds a reply: 2048 vectors of 3072 numbers in JSON fit.
const maxReplyBytes = 256 << 20

func (c *OpenAI) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(embeddingsRequest{Model: c.model, Input: texts, EncodingFormat: "float", Dimensions: c.o.Dimensions})
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	backoff := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		vecs, retryAfter, err := c.send(ctx, body, len(texts))
		if err == nil {
			return vecs, nil
		}
		var ae *APIError
		transient := errors.As(err, &ae) && (ae.StatusCode == http.StatusTooManyRequests || ae.StatusCode >= 500) ||
			errors.Is(err, errTransport)
		if !transient || ctx.Err() != nil {
			return nil, err
		}
		if attempt >= c.o.MaxRetries {
			return nil, fmt.Errorf("embed: giving up after %d attempts: %w", attempt+1, err)
		}
		wait := retryAfter
		if wait == 0 {
			wait = min(backoff, c.o.MaxRetryWait)
			backoff *= 2
		}
		if wait > c.o.MaxRetryWait {
			return nil, fmt.Errorf("embed: the endpoint asks to wait %s, over the limit of %s: %w", wait, c.o.MaxRetryWait, err)
		}
		if err := c.o.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("embed: %w", err)
		}
	}
}

var errTransport = errors.New("embed: request failed")

// send makes one request. It returns the vectors, or the wait the reply's
// Retry-After asks for and the error.
func (c *OpenAI) send(ctx context.Context, body []byte, n int) ([][]float32, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("embed: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if k := c.key(); k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("embed: %w", ctx.Err())
		}
		// The error quotes the URL, never the header.
		return nil, 0, fmt.Errorf("%w: %s", errTransport, c.redact(err.Error()))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: reading the reply: %s", errTransport, c.redact(err.Error()))
	}
	if resp.StatusCode != http.StatusOK {
		ae := &APIError{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header)}
		var e struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
				Code    any    `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil {
			ae.Message = cut(c.redact(e.Error.Message), 300)
			ae.Type = cut(c.redact(e.Error.Type), 100)
			if e.Error.Code != nil {
				ae.Code = cut(c.redact(fmt.Sprint(e.Error.Code)), 100)
			}
		}
		return nil, ae.RetryAfter, ae
	}
	if len(raw) > maxReplyBytes {
		return nil, 0, fmt.Errorf("embed: the reply is over %d bytes", maxReplyBytes)
	}
	var r embeddingsReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, 0, fmt.Errorf("embed: the reply is not an embeddings list: %s", cut(err.Error(), 200))
	}
	vecs, err := c.check(r, n)
	return vecs, 0, err
}

// check puts the reply's vectors in input order and checks their number,
// indices, length and values.
func (c *OpenAI) check(r embeddingsReply, n int) ([][]float32, error) {
	if len(r.Data) != n {
		return nil, fmt.Errorf("embed: the reply has %d embeddings for %d inputs", len(r.Data), n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dim := c.dim
	out := make([][]float32, n)
	for i, d := range r.Data {
		idx := i
		if d.Index != nil {
			idx = *d.Index
		}
		if idx < 0 || idx >= n || out[idx] != nil {
			return nil, fmt.Errorf("embed: the reply's embedding %d has a bad or repeated index %d", i, idx)
		}
		if len(d.Embedding) == 0 {
			return nil, fmt.Errorf("embed: the reply's embedding %d is empty", idx)
		}
		if dim == 0 {
			dim = len(d.Embedding)
		}
		if len(d.Embedding) != dim {
			return nil, fmt.Errorf("%w: embedding %d has %d numbers, expected %d", ErrDimension, idx, len(d.Embedding), dim)
		}
		v := make([]float32, dim)
		for j, x := range d.Embedding {
			if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > math.MaxFloat32 {
				return nil, fmt.Errorf("embed: embedding %d holds a number out of range", idx)
			}
			v[j] = float32(x)
		}
		out[idx] = v
	}
	c.dim = dim
	return out, nil
}

func (c *OpenAI) redact(s string) string {
	k := c.key()
	if k == "" {
		return s
	}
	return strings.ReplaceAll(s, k, "[redacted]")
}

// retryAfter reads Retry-After (seconds or an HTTP date) or OpenAI's
// retry-after-ms; 0 when absent or unreadable.
func retryAfter(h http.Header) time.Duration {
	if ms := h.Get("Retry-After-Ms"); ms != "" {
		if v, err := strconv.ParseFloat(ms, 64); err == nil && v > 0 && v < 1e9 {
			return time.Duration(v * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && s < 1e6 {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
