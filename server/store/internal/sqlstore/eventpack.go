package sqlstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/assistants-go/assistants/server/store"
)

// A row of run_events holds either one event or the events one write
// appended:
//
//   - first_seq NULL: the event seq, with its type and data (every row
//     written before schema 6, and a write of one event);
//   - first_seq set: the events first_seq..seq, packed in data (packEvents),
//     type empty.
//
// Rows are keyed by their last event, so the rows holding the events after
// a sequence number are those with seq above it. A write of many events is
// one row: on PostgreSQL each row is an insert, an index entry and a
// foreign-key check, and a round's 13 events as 13 rows were about a third
// of the database's time per conversation.

// maxPackBytes is the most packed bytes of one row; a write whose events
// need more gets more rows (an event alone may exceed it).
const maxPackBytes = 256 << 10

// insertEvent is the INSERT of one row of run_events.
const insertEvent = `INSERT INTO run_events (run_id, seq, type, data, first_seq) VALUES (?, ?, ?, ?, ?)`

// insertEvents adds the statements that append events after seq last (one
// row for all of them up to maxPackBytes), and returns the events as stored.
func insertEvents(b []Stmt, runID string, last int64, events []store.Event) ([]Stmt, []store.Event) {
	out := make([]store.Event, len(events))
	for i, e := range events {
		e.RunID, e.Seq = runID, last+int64(i)+1
		out[i] = e
	}
	for start := 0; start < len(out); {
		end, size := start+1, packedSize(out[start])
		for end < len(out) && size+packedSize(out[end]) <= maxPackBytes {
			size += packedSize(out[end])
			end++
		}
		if end-start == 1 {
			e := out[start]
			b = append(b, Stmt{Query: insertEvent, Args: []any{runID, e.Seq, e.Type, nz(e.Data), nil}})
		} else {
			b = append(b, Stmt{Query: insertEvent, Args: []any{runID, out[end-1].Seq, "", packEvents(out[start:end], size), out[start].Seq}})
		}
		start = end
	}
	return b, out
}

// packedSize is the bytes e takes in packEvents.
func packedSize(e store.Event) int {
	return uvarintLen(len(e.Type)) + len(e.Type) + uvarintLen(len(e.Data)) + len(e.Data)
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// packEvents returns the types and data of evs, each as a uvarint length
// and its bytes; size is their packedSize total.
func packEvents(evs []store.Event, size int) []byte {
	p := make([]byte, 0, size)
	for _, e := range evs {
		p = binary.AppendUvarint(p, uint64(len(e.Type)))
		p = append(p, e.Type...)
		p = binary.AppendUvarint(p, uint64(len(e.Data)))
		p = append(p, e.Data...)
	}
	return p
}

// errPacked reports a row of run_events whose packed data does not hold
// the events its sequence numbers say.
var errPacked = errors.New("packed events do not match their sequence numbers")

// unpackEvents appends to out the events first..last of run runID packed
// in p, leaving out those up to after. The events' data share p.
func unpackEvents(out []store.Event, runID string, first, last, after int64, p []byte) ([]store.Event, error) {
	if first > last {
		return out, fmt.Errorf("run %s events %d..%d: %w", runID, first, last, errPacked)
	}
	for seq := first; seq <= last; seq++ {
		typ, rest, ok := cutField(p)
		if !ok {
			return out, fmt.Errorf("run %s event %d of %d..%d: %w", runID, seq, first, last, errPacked)
		}
		data, rest, ok := cutField(rest)
		if !ok {
			return out, fmt.Errorf("run %s event %d of %d..%d: %w", runID, seq, first, last, errPacked)
		}
		p = rest
		if seq > after {
			out = append(out, store.Event{RunID: runID, Seq: seq, Type: string(typ), Data: data[:len(data):len(data)]})
		}
	}
	if len(p) != 0 {
		return out, fmt.Errorf("run %s events %d..%d: %d bytes past the last: %w", runID, first, last, len(p), errPacked)
	}
	return out, nil
}

// cutField returns the bytes of the length-prefixed field at the start of
// p and what follows it, or false when p is too short.
func cutField(p []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return nil, nil, false
	}
	return p[k : k+int(n)], p[k+int(n):], true
}
