package sqlstore

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/assistants-go/assistants/server/store"
)

// InsertParams turns store jobs into River's insert parameters.
func InsertParams(jobs []store.Job) []river.InsertManyParams {
	out := make([]river.InsertManyParams, len(jobs))
	for i, j := range jobs {
		out[i] = river.InsertManyParams{Args: j.Args, InsertOpts: &river.InsertOpts{
			ScheduledAt: j.ScheduledAt, Queue: j.Queue, MaxAttempts: j.MaxAttempts}}
	}
	return out
}

// RiverInsertJobs enqueues jobs in tx with River's own insert
// (InsertManyTx) and sets the ids they ask for: the jobs InsertJobs leaves
// to River.
func RiverInsertJobs[TTx any](ctx context.Context, c *river.Client[TTx], tx TTx, jobs []store.Job) error {
	res, err := c.InsertManyTx(ctx, tx, InsertParams(jobs))
	if err != nil {
		return fmt.Errorf("enqueue jobs: %w", err)
	}
	return SetIDs(jobs, res)
}

// SetIDs gives the jobs that ask for it their id, from InsertManyTx's
// results (in the order of jobs).
func SetIDs(jobs []store.Job, res []*rivertype.JobInsertResult) error {
	if len(res) != len(jobs) {
		return fmt.Errorf("enqueue jobs: %d inserted of %d", len(res), len(jobs))
	}
	for i, j := range jobs {
		if j.ID != nil {
			*j.ID = res[i].Job.ID
		}
	}
	return nil
}

// unfinished are the states of jobs that have not ended.
var unfinished = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled}

// ListJobs lists the unfinished jobs of kind (every kind when empty), up to
// 10 000, oldest first.
func ListJobs[TTx any](ctx context.Context, c *river.Client[TTx], kind string) ([]store.JobInfo, error) {
	p := river.NewJobListParams().States(unfinished...).First(10_000)
	if kind != "" {
		p = p.Kinds(kind)
	}
	res, err := c.JobList(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]store.JobInfo, len(res.Jobs))
	for i, j := range res.Jobs {
		out[i] = store.JobInfo{Kind: j.Kind, Args: j.EncodedArgs, Queue: j.Queue, ScheduledAt: j.ScheduledAt, State: string(j.State)}
	}
	return out, nil
}
