package sqlstore

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/assistants-go/assistants/server/store"
)

// TestInsertEvents: a write's events become one row (up to maxPackBytes),
// one event a plain row, and what the rows hold reads back as the events,
// in order, numbered after last, from any point on.
func TestInsertEvents(t *testing.T) {
	big := strings.Repeat("x", maxPackBytes/3)
	cases := []struct {
		name string
		data []string
		rows int
	}{
		{"none", nil, 0},
		{"one", []string{`{"a":1}`}, 1},
		{"a round", []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"}, 1},
		{"empty data", []string{"", "", ""}, 1},
		{"past the row's size", []string{big, big, big, "tail"}, 2},
		{"an event alone past it", []string{"a", big + big + big + big, "b"}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs := make([]store.Event, len(c.data))
			for i, d := range c.data {
				evs[i] = store.Event{Type: fmt.Sprintf("type.%d", i), Data: []byte(d)}
			}
			const last = 10
			b, out := insertEvents(nil, "run_1", last, evs)
			if len(b) != c.rows {
				t.Fatalf("%d rows, want %d", len(b), c.rows)
			}
			for i, e := range out {
				if e.Seq != int64(last+i+1) || e.RunID != "run_1" || e.Type != evs[i].Type || !bytes.Equal(e.Data, evs[i].Data) {
					t.Fatalf("stored event %d: %+v", i, e)
				}
			}
			for after := int64(last); after <= last+int64(len(evs)); after++ {
				got := readRows(t, b, after)
				if want := out[after-last:]; !sameEvents(got, want) {
					t.Fatalf("after %d: %d events, want %d", after, len(got), len(want))
				}
			}
		})
	}
}

// readRows reads back the rows insertEvents' statements write, as
// ListRunEvents does.
func readRows(t *testing.T, b []Stmt, after int64) []store.Event {
	t.Helper()
	var out []store.Event
	for _, st := range b {
		if st.Query != insertEvent || len(st.Args) != 5 {
			t.Fatalf("statement %q with %d args", st.Query, len(st.Args))
		}
		seq := st.Args[1].(int64)
		if seq <= after {
			continue
		}
		if st.Args[4] == nil {
			out = append(out, store.Event{RunID: st.Args[0].(string), Seq: seq, Type: st.Args[2].(string), Data: st.Args[3].([]byte)})
			continue
		}
		var err error
		if out, err = unpackEvents(out, st.Args[0].(string), st.Args[4].(int64), seq, after, st.Args[3].([]byte)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameEvents(a, b []store.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].RunID != b[i].RunID || a[i].Seq != b[i].Seq || a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// TestUnpackEventsRefusesWhatDoesNotFit: packed data that holds fewer or
// more events than its sequence numbers, or a length past its end, is an
// error, not a panic nor events made up.
func TestUnpackEventsRefusesWhatDoesNotFit(t *testing.T) {
	two := packEvents([]store.Event{{Type: "a", Data: []byte("1")}, {Type: "b", Data: []byte("22")}}, 0)
	cases := []struct {
		name        string
		first, last int64
		p           []byte
	}{
		{"fewer events", 1, 3, two},
		{"more events", 1, 1, two},
		{"cut in a field", 1, 2, two[:len(two)-1]},
		{"a length past the end", 1, 1, []byte{0x01, 'a', 0x7f, 'x'}},
		{"a length that overflows", 1, 1, []byte{0x01, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"first after last", 3, 2, two},
		{"empty", 1, 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := unpackEvents(nil, "run_1", c.first, c.last, 0, c.p); !errors.Is(err, errPacked) {
				t.Fatalf("err %v, want errPacked", err)
			}
		})
	}
	got, err := unpackEvents(nil, "run_1", 4, 5, 0, two)
	if err != nil || len(got) != 2 || got[1].Seq != 5 || string(got[1].Data) != "22" || got[1].Type != "b" {
		t.Fatalf("%+v %v", got, err)
	}
}

// FuzzUnpackEvents: any bytes either unpack to the events their sequence
// numbers say or fail with errPacked; never a panic.
func FuzzUnpackEvents(f *testing.F) {
	f.Add(packEvents([]store.Event{{Type: "a", Data: []byte("1")}, {Type: "b", Data: []byte("22")}}, 0), int64(1), int64(2))
	f.Add([]byte{0xff, 0xff}, int64(1), int64(1))
	f.Fuzz(func(t *testing.T, p []byte, first, last int64) {
		if last-first > 1<<16 {
			t.Skip()
		}
		got, err := unpackEvents(nil, "run_1", first, last, 0, p)
		if err != nil {
			if !errors.Is(err, errPacked) {
				t.Fatalf("err %v", err)
			}
			return
		}
		if int64(len(got)) != last-first+1 && first > 0 {
			t.Fatalf("%d events for %d..%d", len(got), first, last)
		}
	})
}
