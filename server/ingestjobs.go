package server

import (
	"context"
	"runtime"

	"github.com/assistants-go/assistants/server/store"
)

// Vector store file ingestion as durable jobs.
//
// Attaching a file to a vector store (createVectorStore with file_ids,
// createVectorStoreFile, createVectorStoreFileBatch, the tool resources
// helper, a thread's attachments) writes the file in_progress together
// with one ingest job per file, in the same store transaction: a
// committed attachment always has its job. The run engine's queue runs
// the jobs (River on SQLite and PostgreSQL, in every replica; the
// in-process runner for the memory store), and a job whose process died
// or was stopped runs again (after a restart, or on another replica), so
// a batch cut by a restart resumes where it was. A job is idempotent: it
// processes its file only while the attachment it names (by its nonce) is
// still in_progress, and writes the file's end (completed or failed) only
// then (see ingest.go).
//
// With StepDelay 0 the request that attached the files also processes
// them before it answers (tests and the thread attachments of a run,
// which are searched next); their jobs then find nothing to do. A job
// waits StepDelay before it starts, so that polling sees in_progress.
// At most GOMAXPROCS files are processed at once per server (River's
// queue queueIngest has that many workers per process; the in-process
// runner starts every job and they wait for a slot).

// kindIngestFile is the job kind of a vector store file's processing:
// a stable name written into the store's queue.
const kindIngestFile = "assistants.vector_store_file_ingest"

// ingestArgs name a vector store file and its attachment.
type ingestArgs struct {
	Project       string `json:"project"`
	VectorStoreID string `json:"vector_store_id"`
	FileID        string `json:"file_id"`
	Attach        string `json:"attach"`
}

// Kind implements store.JobArgs.
func (ingestArgs) Kind() string { return kindIngestFile }

// queueIngest is the River queue of the ingest jobs: its own, so that a
// large batch neither waits behind the runs' jobs nor holds their workers,
// with ingestWorkers workers per process (jobs not yet taken wait in the
// database, where no timeout runs).
const queueIngest = "vector_store_files"

// ingestWorkers is how many files one process processes at once: one per
// processor.
func ingestWorkers() int { return max(1, runtime.GOMAXPROCS(0)) }

// ingestJob returns the job that processes a vector store file.
func (s *Server) ingestJob(project, vsID, fileID, attach string) store.Job {
	return store.Job{Args: ingestArgs{Project: project, VectorStoreID: vsID, FileID: fileID, Attach: attach},
		Queue: queueIngest, MaxAttempts: jobMaxAttempts}
}

// durable returns the jobs to write with an attachment: all of them,
// unless a test turned durable ingestion off (testHooks.noDurableIngest).
func (s *Server) durable(jobs []store.Job) []store.Job {
	if s.hooks.noDurableIngest {
		return nil
	}
	return jobs
}

// afterAttach runs after files were attached (and their jobs committed):
// with StepDelay 0 it processes them at once; with durable ingestion off
// (tests only) it processes them in a goroutine of this process (what a restart
// loses).
func (s *Server) afterAttach(ctx context.Context, project, vsID string, files []store.VectorStoreFile) {
	if len(files) == 0 {
		return
	}
	if s.opts.StepDelay <= 0 {
		for _, f := range files {
			if a, ok := attachOf(f); ok {
				_ = s.ingestOne(context.WithoutCancel(ctx), ingestArgs{Project: project, VectorStoreID: vsID, FileID: f.FileID, Attach: a})
			}
		}
		return
	}
	if !s.hooks.noDurableIngest {
		return
	}
	var args []ingestArgs
	for _, f := range files {
		if a, ok := attachOf(f); ok {
			args = append(args, ingestArgs{Project: project, VectorStoreID: vsID, FileID: f.FileID, Attach: a})
		}
	}
	s.goBackground(func(ctx context.Context) {
		for _, a := range args {
			if err := s.ingestWork(ctx, a); err != nil {
				return
			}
		}
	})
}

// attachOf returns the attachment nonce of a file about to be written.
func attachOf(f store.VectorStoreFile) (string, bool) {
	rec, err := decodeVSFile(f)
	return rec.Attach, err == nil && rec.Attach != ""
}

// work runs one job of the server's queue: a vector store file's
// processing, or a job of the run engine.
func (s *Server) work(ctx context.Context, args store.JobArgs) error {
	if a, ok := args.(ingestArgs); ok {
		return s.ingestWork(ctx, a)
	}
	return s.eng.work(ctx, args)
}

// ingestWork is the ingest job: it waits StepDelay, then a free
// processing slot, and processes the file.
func (s *Server) ingestWork(ctx context.Context, a ingestArgs) error {
	if !sleep(ctx, s.opts.StepDelay) {
		return ctx.Err()
	}
	select {
	case s.ingestSlots() <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.ingestSlots() }()
	return s.ingestOne(withProject(ctx, a.Project), a)
}

// ingestSlots returns the semaphore that bounds the files this server
// processes at once.
func (s *Server) ingestSlots() chan struct{} {
	s.st.ingestSem.once.Do(func() { s.st.ingestSem.ch = make(chan struct{}, ingestWorkers()) })
	return s.st.ingestSem.ch
}
