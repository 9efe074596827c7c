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
