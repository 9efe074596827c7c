package sqlstore

import (
	"strings"
	"testing"

	"github.com/assistants-go/assistants/server/store"
)

// TestInsertEvents: every count of events becomes INSERTs of a power of two
// of rows (a few statement texts), with the events in order and their
// sequence numbers following last.
func TestInsertEvents(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 63, 64, 65, 130, 1000} {
		evs := make([]store.Event, n)
		for i := range evs {
			evs[i] = store.Event{Type: "e", Data: []byte{byte(i)}}
		}
		b, out := insertEvents(nil, "run_1", 10, evs)
		if len(out) != n {
			t.Fatalf("%d events: %d stored", n, len(out))
		}
		rows := 0
		for _, st := range b {
			k := strings.Count(st.Query, "(?, ?, ?, ?)")
			if eventInserts[k] != st.Query {
				t.Fatalf("%d events: a statement of %d rows is not one of eventInserts", n, k)
			}
			if len(st.Args) != 4*k {
				t.Fatalf("%d events: %d args for %d rows", n, len(st.Args), k)
			}
			for j := 0; j < k; j++ {
				if seq := st.Args[4*j+1].(int64); seq != int64(10+rows+j+1) {
					t.Fatalf("%d events: row %d has seq %d", n, rows+j, seq)
				}
				if d := st.Args[4*j+3].([]byte); d[0] != byte(rows+j) {
					t.Fatalf("%d events: row %d holds event %d", n, rows+j, d[0])
				}
			}
			rows += k
		}
		if rows != n {
			t.Fatalf("%d events: %d rows inserted", n, rows)
		}
		if want := n/maxEventRows + popcount(n%maxEventRows); len(b) != want {
			t.Fatalf("%d events: %d statements, want %d", n, len(b), want)
		}
	}
	if len(eventInserts) != 7 {
		t.Fatalf("%d statement texts", len(eventInserts))
	}
}

func popcount(n int) (c int) {
	for ; n > 0; n &= n - 1 {
		c++
	}
	return c
}
