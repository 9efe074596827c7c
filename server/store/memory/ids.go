package memory

import (
	"slices"
	"sort"

	"github.com/assistants-go/assistants/server/store"
)

// ids is a sorted set of ids: the index of one parent's children.
type ids []string

// add inserts id in order (usually at the end: ids sort by creation).
func (s *ids) add(id string) {
	i, found := slices.BinarySearch(*s, id)
	if found {
		return
	}
	*s = slices.Insert(*s, i, id)
}

// remove deletes id if present.
func (s *ids) remove(id string) {
	if i, found := slices.BinarySearch(*s, id); found {
		*s = slices.Delete(*s, i, i+1)
	}
}

// page selects the ids of one page: those kept by keep (nil keeps all),
// in lp's order, between its cursors. It looks at about lp.Limit ids
// beyond those keep rejects.
func (s ids) page(lp store.ListParams, keep func(string) bool) (out []string, more bool) {
	lp = lp.Normalize()
	// [lo, hi) is the window between the cursors, in ascending id order.
	lo, hi := 0, len(s)
	upper := func(c string) int { return sort.SearchStrings(s, c+"\x00") } // first id > c
	lower := func(c string) int { return sort.SearchStrings(s, c) }        // first id >= c
	if !lp.Desc {
		if lp.After != "" {
			lo = max(lo, upper(lp.After))
		}
		if lp.Before != "" {
			hi = min(hi, lower(lp.Before))
		}
	} else {
		if lp.After != "" {
			hi = min(hi, lower(lp.After))
		}
		if lp.Before != "" {
			lo = max(lo, upper(lp.Before))
		}
	}
	// Walk from the cursor the page starts at: normally the start of the
	// order; with Before alone, from Before backwards.
	reverse := lp.Before != "" && lp.After == ""
	down := lp.Desc != reverse
	for n := 0; lo < hi && len(out) <= lp.Limit; n++ {
		var id string
		if down {
			hi--
			id = s[hi]
		} else {
			id = s[lo]
			lo++
		}
		if keep == nil || keep(id) {
			out = append(out, id)
		}
	}
	if len(out) > lp.Limit {
		out, more = out[:lp.Limit], true
	}
	if reverse {
		slices.Reverse(out)
	}
	return out, more
}
