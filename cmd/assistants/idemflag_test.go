package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
)

// TestServeIdempotencyMaxBytesFlag: --idempotency-max-bytes reaches the
// server's options (default server.DefaultIdempotencyMaxBytes); zero or a
// negative value is a usage error.
func TestServeIdempotencyMaxBytesFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int64
		err  bool
	}{
		{args: nil, want: server.DefaultIdempotencyMaxBytes},
		{args: []string{"--idempotency-max-bytes", "1048576"}, want: 1 << 20},
		{args: []string{"--idempotency-max-bytes", "0"}, err: true},
		{args: []string{"--idempotency-max-bytes", "-5"}, err: true},
	} {
		_, opts, err := serveFlags(tc.args, io.Discard)
		if tc.err {
			assert.Error(t, err, "%v", tc.args)
			continue
		}
		require.NoError(t, err, "%v", tc.args)
		var o server.Options
		for _, f := range opts {
			f(&o)
		}
		assert.Equal(t, tc.want, o.IdempotencyMaxBytes, "%v", tc.args)
	}
}
