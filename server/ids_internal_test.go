package server

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIDsSortByCreation: ids of one generator strictly increase as byte
// strings, whatever the clock does, and keep the prefix + 32 characters
// form.
func TestIDsSortByCreation(t *testing.T) {
	base := time.Date(2026, 8, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		clock []time.Duration // offset from base for each id
	}{
		{"clock moves on", []time.Duration{0, time.Millisecond, time.Second, time.Hour}},
		{"clock stands still", []time.Duration{0, 0, 0, 0, 0}},
		{"clock steps back", []time.Duration{time.Hour, time.Hour, 0, -time.Hour, time.Millisecond}},
		{"sub-millisecond steps", []time.Duration{0, time.Microsecond, 2 * time.Microsecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			g := &idGen{now: func() time.Time { d := tc.clock[i]; i++; return base.Add(d) }}
			prev := ""
			for range tc.clock {
				id := g.next(prefixMessage)
				require.True(t, strings.HasPrefix(id, prefixMessage))
				require.Len(t, id, len(prefixMessage)+32)
				require.True(t, validID(id), id)
				require.Greater(t, id, prev, "ids increase")
				prev = id
			}
		})
	}
	t.Run("counter full in one millisecond", func(t *testing.T) {
		g := &idGen{now: func() time.Time { return base }}
		prev := ""
		for range 1<<16 + 10 {
			id := g.next(prefixRun)
			if id <= prev {
				t.Fatalf("%s after %s", id, prev)
			}
			prev = id
		}
	})
	t.Run("random part differs", func(t *testing.T) {
		g := &idGen{now: func() time.Time { return base }}
		a, b := g.next(prefixRun), g.next(prefixRun)
		assert.NotEqual(t, a[len(a)-19:], b[len(b)-19:], "96 random bits")
	})
}
