package server

import "context"

// SetMessageCheckedHook makes f run inside CreateMessage between the
// active-run check and the write (tests only).
func (s *Server) SetMessageCheckedHook(f func()) { s.hooks.onMessageChecked = f }

// SetProcessFileHook makes f run before each vector store file is processed
// (tests only).
func (s *Server) SetProcessFileHook(f func(fileID string)) { s.hooks.onProcessFile = f }

// SetIngestHook makes f run before each vector store file is processed,
// with the processing's context (tests only).
func (s *Server) SetIngestHook(f func(ctx context.Context, fileID string)) { s.hooks.onIngest = f }

// DisableDurableIngest makes the server process the vector store files it
// attaches in its own goroutines instead of durable jobs, so a restart
// loses them (tests only: the control of the restart test). Call it before
// the server attaches files.
func (s *Server) DisableDurableIngest() { s.hooks.noDurableIngest = true }

// LockFree reports whether every thread mutex of the server (threadlocks.go)
// is free at the moment (tests only: a hook calls it to show that file
// processing does not run under one).
func (s *Server) LockFree() bool {
	for i := range s.threads.stripes {
		m := &s.threads.stripes[i]
		if !m.TryLock() {
			return false
		}
		m.Unlock()
	}
	return true
}

// KindIngestFile is the job kind of a vector store file's processing, as
// written into the store's queue (tests only).
const KindIngestFile = kindIngestFile

// WatchRun subscribes to a run's events as a stream does (tests only): the
// channel receives (at most one pending signal) after each write of the
// run's events by this server, or by another replica on PostgreSQL
// (LISTEN/NOTIFY); stop ends the subscription.
func (s *Server) WatchRun(runID string) (changed <-chan struct{}, stop func()) {
	sub := s.eng.subscribe(runID, 0)
	return sub.signal, func() { s.eng.unsubscribe(runID, sub) }
}

// KindRunRound and KindRunCancel are the job kinds of a run's round and of
// its cancel.
const (
	KindRunRound  = kindRunRound
	KindRunCancel = kindRunCancel
)

// SweepIdempotency deletes the expired idempotency records once, as the
// server does every minute (tests only).
func (s *Server) SweepIdempotency(ctx context.Context) error { return s.sweepIdempotencyOnce(ctx) }

// SameThreadMutex reports whether two threads share a mutex of the
// server's thread locks (tests only: threadlocks.go).
func (s *Server) SameThreadMutex(a, b string) bool {
	return s.threads.stripe(a) == s.threads.stripe(b)
}
