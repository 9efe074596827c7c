package server

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"sync"
	"time"
)

// Object id prefixes, as the API uses them.
const (
	prefixAssistant   = "asst_"
	prefixThread      = "thread_"
	prefixMessage     = "msg_"
	prefixRun         = "run_"
	prefixStep        = "step_"
	prefixFile        = "file-"
	prefixVectorStore = "vs_"
	prefixFileBatch   = "vsfb_"
	prefixToolCall    = "call_"
)

// idEncoding is base32 with an alphabet in ASCII order (Crockford's, lower
// case), so that encoding fixed-width big-endian bytes keeps their order:
// comparing two encoded ids as byte strings compares their bytes.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// idGen makes ids that sort by creation. An id is its prefix followed by 32
// characters encoding 20 bytes:
//
//	6 bytes  milliseconds since the Unix epoch
//	2 bytes  a counter within that millisecond
//	12 bytes crypto/rand (96 bits, so ids stay hard to guess)
//
// The (milliseconds, counter) pair strictly increases from one id to the
// next within a process, whatever the clock does: when the clock stands
// still or steps back, the last millisecond is kept and the counter goes up
// (and when the counter is full, the millisecond moves on by one). So ids of
// one prefix, compared as plain byte strings, are in creation order, and a
// list cursor that no longer exists still marks a position.
type idGen struct {
	mu      sync.Mutex
	now     func() time.Time
	lastMS  uint64
	counter uint16
}

// ids is the process's id generator.
var ids = &idGen{now: time.Now}

// newID returns a new id with prefix, later in byte order than every id
// made before it in this process.
func newID(prefix string) string { return ids.next(prefix) }

func (g *idGen) next(prefix string) string {
	var b [20]byte
	_, _ = rand.Read(b[8:])
	g.mu.Lock()
	ms := uint64(max(g.now().UnixMilli(), 0))
	switch {
	case ms > g.lastMS:
		g.lastMS, g.counter = ms, 0
	case g.counter < 1<<16-1:
		g.counter++
	default:
		g.lastMS, g.counter = g.lastMS+1, 0
	}
	binary.BigEndian.PutUint64(b[:8], g.lastMS<<16|uint64(g.counter))
	g.mu.Unlock()
	return prefix + idEncoding.EncodeToString(b[:])
}

// validID reports whether id is an acceptable path id: 1..128 bytes of
// [A-Za-z0-9_-]. Anything else (slashes, dots, NUL, huge) is rejected early
// with a clean 400 or 404 rather than reaching the store.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}
