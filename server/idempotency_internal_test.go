package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIdemStoreIsBounded(t *testing.T) {
	st := newIdemStore(time.Hour, time.Now)
	st.max = 3
	var fp [32]byte
	for i := range 10 {
		e, first := st.claim(fmt.Sprint("k", i), fp)
		require.True(t, first)
		e.status = 200
		close(e.decided)
	}
	assert.Len(t, st.m, 3)
	assert.Equal(t, 3, st.order.Len())
	_, first := st.claim("k9", fp)
	assert.False(t, first, "the newest keys are kept")
	_, first = st.claim("k0", fp)
	assert.True(t, first, "the oldest were forgotten")
}
