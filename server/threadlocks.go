package server

import (
	"hash/maphash"
	"sync"
)

// threadLocks serializes, within this process, the writes of one thread
// that check the run engine's thread lock: CreateMessage's check for an
// active run and its write, a run's creation (startRun,
// CreateThreadAndRun) and DeleteThread. Writes to different threads do not
// wait for each other (they did, behind one server-wide mutex, until the
// SQL stores made every create wait for the commit before it). Threads
// share a mutex when their ids fall on the same one of the stripes, which
// costs a wait, never correctness. Across processes the store refuses a
// message on a locked thread (store.ErrThreadLocked).
type threadLocks struct {
	seed    maphash.Seed
	stripes [threadLockStripes]sync.Mutex
}

// threadLockStripes is the number of mutexes threads are spread over.
const threadLockStripes = 256

func newThreadLocks() *threadLocks { return &threadLocks{seed: maphash.MakeSeed()} }

// lock locks threadID's mutex and returns its unlock.
func (l *threadLocks) lock(threadID string) (unlock func()) {
	m := l.stripe(threadID)
	m.Lock()
	return m.Unlock
}

// stripe returns threadID's mutex.
func (l *threadLocks) stripe(threadID string) *sync.Mutex {
	return &l.stripes[maphash.String(l.seed, threadID)%threadLockStripes]
}
