package assistants

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// TestClientRetriesServerRateLimit: against the embedded server with a
// per-key rate limit, a request over the limit gets 429 with retry-after-ms;
// this client waits exactly that long (its wait moves the server's clock,
// so no real time passes) and the retry succeeds.
func TestClientRetriesServerRateLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var waits []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		now = now.Add(d)
		return ctx.Err()
	}
	const key = "sk-client-retry-key-123"
	srv := server.New(server.WithAPIKeys(key), server.WithStepDelay(0), server.WithRateLimit(4, 1),
		func(o *server.Options) { o.Now = clock })
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	c, err := New(WithBaseURL(hs.URL+"/v1"), WithAPIKey(key), withSleep(sleep), noJitter)
	require.NoError(t, err)
	ctx := t.Context()
	a, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o"}) // takes the only token
	require.NoError(t, err)
	got, err := c.GetAssistant(ctx, a.Id) // 429 first, then retried after 250ms
	require.NoError(t, err)
	assert.Equal(t, a.Id, got.Id)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []time.Duration{250 * time.Millisecond}, waits, "one retry, after the server's retry-after-ms")
}
