package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/assistants-go/assistants/server/store"
)

// TestWroteNothing: which errors of an object's write mean that nothing
// was stored, so that the vector stores made for the object are deleted
// (madeStores.write), and which may have come after the commit, so that
// they are kept.
func TestWroteNothing(t *testing.T) {
	driver := errors.New("driver: connection reset by peer")
	for _, tc := range []struct {
		name       string
		err        error
		doneBefore bool
		want       bool
	}{
		{"a check of ours", errBadRequest("model", "bad"), false, true},
		{"a lost claim, answered", storeErr(fmt.Errorf("thread %q: %w", "thread_1", store.ErrClaimLost), "thread", "thread_1"), false, true},
		{"a lost claim", fmt.Errorf("assistant %q: %w", "asst_1", store.ErrClaimLost), false, true},
		{"a conflict", store.ErrConflict, false, true},
		{"not found", store.ErrNotFound, false, true},
		{"thread locked", store.ErrThreadLocked, false, true},
		{"invalid", store.ErrInvalid, false, true},
		{"closed", store.ErrClosed, false, true},
		{"shutting down", errShuttingDown(), false, true},
		{"a driver's error", driver, false, false},
		{"a driver's error, answered", storeErr(driver, "thread", "thread_1"), false, false},
		{"a driver's error, context done before", driver, true, false},
		{"context canceled during the write", fmt.Errorf("commit: %w", context.Canceled), false, false},
		{"context canceled before the write", fmt.Errorf("begin: %w", context.Canceled), true, true},
		{"deadline before the write", storeErr(context.DeadlineExceeded, "assistant", "asst_1"), true, true},
		{"deadline during the write", context.DeadlineExceeded, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, wroteNothing(tc.err, tc.doneBefore), "%v", tc.err)
		})
	}
}
