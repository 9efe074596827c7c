package server

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// TestRecoverRunFailsTheRun: a panic in a run's goroutine outside the model
// (an engine bug) fails the run with server_error, fails its in-progress
// steps and releases the thread's lock.
func TestRecoverRunFailsTheRun(t *testing.T) {
	s := New(WithStepDelay(0))
	defer s.Close()
	e := s.eng
	ctx := t.Context()
	th, err := s.insertThread(ctx, nil)
	require.NoError(t, err)
	obj := gen.RunObject{Id: newID(prefixRun), ThreadId: th.Id, Status: gen.RunObjectStatusInProgress}
	data, err := encodeData(obj)
	require.NoError(t, err)
	_, _, err = s.db.CreateRun(ctx, store.NewRun{Run: store.Run{ID: obj.Id, ThreadID: th.Id, Status: string(obj.Status), Data: data}})
	require.NoError(t, err)
	_, _, err = e.update(ctx, th.Id, obj.Id, func(lr *liveRun) error {
		e.newStepLocked(lr, gen.RunStepObjectTypeToolCalls, toolCallsDetails(nil))
		return nil
	})
	require.NoError(t, err)

	func() {
		defer e.recoverRun(roundArgs{ThreadID: th.Id, RunID: obj.Id})
		panic("engine bug")
	}()

	got, err := e.getRun(ctx, th.Id, obj.Id)
	require.NoError(t, err)
	assert.Equal(t, gen.RunObjectStatusFailed, got.Status)
	require.NotNil(t, got.LastError)
	assert.Equal(t, gen.RunObjectLastErrorCodeServerError, got.LastError.Code)
	steps, _, err := e.listSteps(ctx, th.Id, obj.Id, listParams{Limit: 20})
	require.NoError(t, err)
	require.Len(t, steps, 1)
	assert.Equal(t, gen.RunStepObjectStatusFailed, steps[0].Status)
	_, active := e.activeRun(ctx, th.Id)
	assert.False(t, active, "the thread's lock is released")
}
