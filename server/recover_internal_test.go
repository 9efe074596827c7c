package server

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/gen"
)

// TestRecoverRunFailsTheRun: a panic in a run's goroutine outside the model
// (an engine bug) fails the run with server_error, fails its in-progress
// steps and releases the thread's lock.
func TestRecoverRunFailsTheRun(t *testing.T) {
	s := New(WithStepDelay(0))
	defer s.Close()
	e := s.eng
	r := &runRec{obj: gen.RunObject{Id: newID(prefixRun), ThreadId: "thread_x", Status: gen.RunObjectStatusInProgress}}
	require.NoError(t, e.register(r))
	r.obj.Status = gen.RunObjectStatusInProgress
	e.mu.Lock()
	e.newStepLocked(r, gen.RunStepObjectTypeToolCalls, toolCallsDetails(nil))
	e.mu.Unlock()

	func() {
		defer e.recoverRun(r)
		panic("engine bug")
	}()

	got, _, err := e.getRun("thread_x", r.obj.Id)
	require.NoError(t, err)
	assert.Equal(t, gen.RunObjectStatusFailed, got.Status)
	require.NotNil(t, got.LastError)
	assert.Equal(t, gen.RunObjectLastErrorCodeServerError, got.LastError.Code)
	steps, err := e.listSteps("thread_x", r.obj.Id)
	require.NoError(t, err)
	require.Len(t, steps, 1)
	assert.Equal(t, gen.RunStepObjectStatusFailed, steps[0].Status)
	_, active := e.activeRun("thread_x")
	assert.False(t, active, "the thread's lock is released")
}
