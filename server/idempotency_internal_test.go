package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answer records a reply of n body bytes for e, as serveFirst does.
func answer(st *idemStore, e *idemEntry, n int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e.status = 200
	e.body = []byte(strings.Repeat("x", n))
	st.rememberLocked(e, entrySize(e))
	close(e.decided)
}

func TestIdemStoreIsBounded(t *testing.T) {
	st := newIdemStore(time.Hour, time.Now, 0)
	st.max = 3
	var fp [32]byte
	for i := range 10 {
		e, first := st.claim(fmt.Sprint("k", i), fp, false)
		require.True(t, first)
		answer(st, e, 10)
	}
	assert.Len(t, st.m, 3)
	assert.Equal(t, 3, st.order.Len())
	_, first := st.claim("k9", fp, false)
	assert.False(t, first, "the newest keys are kept")
	_, first = st.claim("k0", fp, false)
	assert.True(t, first, "the oldest were forgotten")
}

// TestIdemStoreSweepsExpired: expired entries are forgotten on the next
// keyed request, whatever its key, not only when their own key returns.
func TestIdemStoreSweepsExpired(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	st := newIdemStore(time.Minute, func() time.Time { return now }, 0)
	var fp [32]byte
	for i := range 5 {
		e, _ := st.claim(fmt.Sprint("old", i), fp, false)
		answer(st, e, 1000)
	}
	now = now.Add(30 * time.Second)
	e, _ := st.claim("young", fp, false)
	answer(st, e, 1000)
	require.Len(t, st.m, 6)

	now = now.Add(31 * time.Second) // the first five are past their TTL
	_, first := st.claim("other", fp, false)
	require.True(t, first)
	assert.Len(t, st.m, 2, "young and other remain")
	assert.Contains(t, st.m, "young")
	assert.Equal(t, 1, st.order.Len())
	assert.Equal(t, entrySize(e), st.bytes, "only young's bytes are counted")
}

// TestIdemStoreByteBudget: the remembered replies stay within the budget;
// the oldest are forgotten first.
func TestIdemStoreByteBudget(t *testing.T) {
	one := int64(idemEntryOverhead + len("k0") + 100_000)
	st := newIdemStore(time.Hour, time.Now, 3*one)
	var fp [32]byte
	for i := range 10 {
		e, _ := st.claim(fmt.Sprint("k", i), fp, false)
		answer(st, e, 100_000)
		assert.LessOrEqual(t, st.bytes, st.maxBytes)
	}
	assert.Equal(t, 3, st.order.Len())
	for _, k := range []string{"k7", "k8", "k9"} {
		assert.Contains(t, st.m, k)
	}
	assert.Equal(t, int64(DefaultIdempotencyMaxBytes), newIdemStore(time.Hour, time.Now, 0).maxBytes, "the default")
}
