package server

import (
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
)

// TestJobRetryPolicy: a run job that failed or was rescued runs again after
// its attempt number in seconds, never more than maxJobRetryWait (River's
// default would wait 81 s before the fourth attempt, 256 s before the fifth).
func TestJobRetryPolicy(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {4, 4 * time.Second},
		{5, 5 * time.Second}, {6, 5 * time.Second}, {25, 5 * time.Second},
	} {
		assert.Equal(t, tc.want, jobRetryWait(tc.attempt), "attempt %d", tc.attempt)
		before := time.Now()
		next := jobRetryPolicy{}.NextRetry(&rivertype.JobRow{Attempt: tc.attempt})
		assert.WithinRange(t, next, before.Add(tc.want), time.Now().Add(tc.want), "attempt %d", tc.attempt)
	}
}
