package server

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
)

// lookupCounter is the memory store counting its API key lookups.
type lookupCounter struct {
	store.Store
	n atomic.Int64
}

func (s *lookupCounter) GetAPIKeyByHash(ctx context.Context, hash []byte) (store.APIKey, error) {
	s.n.Add(1)
	return s.Store.GetAPIKeyByHash(ctx, hash)
}

// TestKeyCacheUnknownKeysDoNotEvict: more wrong keys than the cache holds
// do not evict a good key: it is still answered without a lookup.
func TestKeyCacheUnknownKeysDoNotEvict(t *testing.T) {
	ctx := t.Context()
	secret := []byte("key-cache-test-secret-0123456789abcdef")
	st := &lookupCounter{Store: memory.New()}
	now := time.Unix(1_700_000_000, 0)
	key, rec, err := NewAPIKey(secret, store.DefaultProject, now)
	require.NoError(t, err)
	require.NoError(t, st.CreateAPIKey(ctx, rec))
	c := newKeyCache(st, secret, time.Hour, func() time.Time { return now })

	p, err := c.resolve(ctx, key)
	require.NoError(t, err)
	require.Equal(t, rec.ID, p.keyID)
	for i := range keyCacheMax + 10 {
		_, err := c.resolve(ctx, KeyPrefix+"wrong-"+strconv.Itoa(i))
		require.ErrorIs(t, err, errKeyUnknown)
	}
	looked := st.n.Load()
	require.Equal(t, int64(1+keyCacheMax+10), looked)
	p, err = c.resolve(ctx, key)
	require.NoError(t, err)
	require.Equal(t, rec.ID, p.keyID)
	require.Equal(t, looked, st.n.Load(), "the good key was evicted by wrong ones")
	_, err = c.resolve(ctx, KeyPrefix+"wrong-"+strconv.Itoa(keyCacheMax+9))
	require.ErrorIs(t, err, errKeyUnknown)
	require.Equal(t, looked, st.n.Load(), "a recent wrong key is remembered too")
}
