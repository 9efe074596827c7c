package server

import (
	"slices"
	"sort"
	"strings"
)

// listParams are the API's common list parameters, already defaulted.
type listParams struct {
	Limit  int    // 1..100, default 20
	Desc   bool   // order=desc (the default)
	After  string // cursor: items after this id in the chosen order
	Before string // cursor: items before this id in the chosen order
}

// newListParams applies the API's defaults and limits. It returns a 400 for a
// limit outside 1..100 or an unknown order.
func newListParams(limit *int, order *string, after, before *string) (listParams, error) {
	return newListParamsRange(limit, order, after, before, 20, 100)
}

// newListParamsRange is newListParams with another default and maximum
// limit (listFiles: 10000 and 10000).
func newListParamsRange(limit *int, order *string, after, before *string, def, maxLimit int) (listParams, error) {
	p := listParams{Limit: def, Desc: true}
	if limit != nil {
		if *limit < 1 || *limit > maxLimit {
			return p, errBadRequest("limit", "Invalid 'limit': expected an integer between 1 and %d, got %d.", maxLimit, *limit)
		}
		p.Limit = *limit
	}
	if order != nil {
		switch *order {
		case "asc":
			p.Desc = false
		case "desc":
		default:
			return p, errBadRequest("order", "Invalid 'order': expected 'asc' or 'desc'.")
		}
	}
	if after != nil {
		p.After = *after
	}
	if before != nil {
		p.Before = *before
	}
	return p, nil
}

// page returns one page of items following the API's rules: order, after
// and before cursors, limit, and whether more items follow.
//
// Items are ordered by id, which is their creation order (see idGen), and a
// cursor marks a position by comparison, not by lookup: "after X" in
// ascending order means the items whose id is greater than X, whether or not
// X still exists. So deleting items while paging through a list ("iterate
// and delete") neither repeats nor skips any, and a cursor is never silently
// ignored.
func page[T any](items []T, id func(T) string, p listParams) (out []T, firstID, lastID string, hasMore bool) {
	asc := make([]T, len(items))
	copy(asc, items)
	if !slices.IsSortedFunc(asc, func(a, b T) int { return strings.Compare(id(a), id(b)) }) {
		slices.SortStableFunc(asc, func(a, b T) int { return strings.Compare(id(a), id(b)) })
	}
	// lo..hi is the window in ascending order that the cursors leave.
	lo, hi := 0, len(asc)
	// firstAbove returns the index of the first item whose id is > c
	// (orEqual: >= c).
	firstAbove := func(c string, orEqual bool) int {
		return sort.Search(len(asc), func(i int) bool {
			if orEqual {
				return id(asc[i]) >= c
			}
			return id(asc[i]) > c
		})
	}
	// In ascending order "after" is a lower bound and "before" an upper
	// bound; in descending order the other way round.
	lower, upper := p.After, p.Before
	if p.Desc {
		lower, upper = p.Before, p.After
	}
	if lower != "" {
		lo = firstAbove(lower, false)
	}
	if upper != "" {
		hi = firstAbove(upper, true)
	}
	if lo > hi {
		lo = hi
	}
	window := asc[lo:hi]
	if p.Desc {
		slices.Reverse(window)
	}
	if p.Before != "" && p.After == "" && len(window) > p.Limit {
		// "before" pages end right before the cursor, like the API.
		window = window[len(window)-p.Limit:]
		hasMore = true
	} else if len(window) > p.Limit {
		window = window[:p.Limit]
		hasMore = true
	}
	if len(window) > 0 {
		firstID, lastID = id(window[0]), id(window[len(window)-1])
	}
	return window, firstID, lastID, hasMore
}
