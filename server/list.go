package server

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

// page returns one page of items (already in creation order, oldest first)
// following the API's rules: order, after/before cursors (ids), limit, and
// whether more items follow.
func page[T any](items []T, id func(T) string, p listParams) (out []T, firstID, lastID string, hasMore bool) {
	ordered := make([]T, len(items))
	copy(ordered, items)
	if p.Desc {
		for i, j := 0, len(ordered)-1; i < j; i, j = i+1, j-1 {
			ordered[i], ordered[j] = ordered[j], ordered[i]
		}
	}
	start, end := 0, len(ordered)
	if p.After != "" {
		for i, it := range ordered {
			if id(it) == p.After {
				start = i + 1
				break
			}
		}
	}
	if p.Before != "" {
		for i, it := range ordered {
			if id(it) == p.Before {
				end = i
				break
			}
		}
	}
	if start > end {
		start = end
	}
	window := ordered[start:end]
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
