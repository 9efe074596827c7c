package sqlstore

import (
	"strings"
	"testing"

	"github.com/assistants-go/assistants/server/store"
)

// TestInsertEvents: a write's events become one INSERT up to 16 of them,
// and INSERTs of 64 or 32 rows and the rest past that (a few statement
// texts), with the events in order and their sequence numbers following
// last.
func TestInsertEvents(t *testing.T) {
	statements := map[int]int{0: 0, 1: 1, 2: 1, 3: 1, 7: 1, 16: 1, 17: 2, 63: 3, 64: 1, 65: 2, 130: 3, 1000: 17}
	for n, want := range statements {
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
		if len(b) != want {
			t.Fatalf("%d events: %d statements, want %d", n, len(b), want)
		}
	}
	if len(eventInserts) != exactRows+2 {
		t.Fatalf("%d statement texts", len(eventInserts))
	}
}
