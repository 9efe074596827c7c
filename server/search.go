package server

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/gen/genserver"
)

// Vector store search: a simple term match. The query (or queries) is split
// into lower-case words; each chunk of each completed file scores the share
// of those words it contains (0..1); a file's score is its best chunk's, and
// its content is its best chunks (at most maxChunksPerResult). Files with
// score 0, under ranking_options.score_threshold, or not matching the
// attribute filter are left out. Results are ordered by score, best first,
// then by when the file was attached.

const (
	maxChunksPerResult = 3
	maxQueries         = 10
	maxQueryLen        = 4096
	maxFilterDepth     = 8
)

// SearchVectorStore searches a vector store's completed files.
func (s *Server) SearchVectorStore(ctx context.Context, req genserver.SearchVectorStoreRequestObject) (genserver.SearchVectorStoreResponseObject, error) {
	if req.Body == nil {
		return nil, errBadRequest("", "A request body is required.")
	}
	b := req.Body
	queries, err := searchQueries(b.Query)
	if err != nil {
		return nil, err
	}
	limit := defaultSearchResults
	if b.MaxNumResults != nil {
		if *b.MaxNumResults < 1 || *b.MaxNumResults > maxSearchResults {
			return nil, errBadRequest("max_num_results", "Invalid 'max_num_results': expected an integer between 1 and %d.", maxSearchResults)
		}
		limit = *b.MaxNumResults
	}
	var threshold float32
	if ro := b.RankingOptions; ro != nil {
		if ro.Ranker != nil && !ro.Ranker.Valid() {
			return nil, errBadRequest("ranking_options.ranker", "Invalid value for 'ranking_options.ranker'.")
		}
		if ro.ScoreThreshold != nil {
			if *ro.ScoreThreshold < 0 || *ro.ScoreThreshold > 1 {
				return nil, errBadRequest("ranking_options.score_threshold", "Invalid 'ranking_options.score_threshold': expected a number between 0 and 1.")
			}
			threshold = *ro.ScoreThreshold
		}
	}
	if b.Filters != nil {
		if err := checkFilter("filters", *b.Filters, 0); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	rec, err := s.lookupVectorStoreLocked(req.VectorStoreId)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	now := s.now()
	rec.obj.LastActiveAt = &now
	results := searchFiles(rec.files.all(), queries, b.Filters, threshold, limit)
	s.mu.Unlock()
	return genserver.SearchVectorStore200JSONResponse{
		Object:      "vector_store.search_results.page",
		SearchQuery: queries,
		Data:        results,
		HasMore:     false,
	}, nil
}

// searchQueries returns the query texts of a search request.
func searchQueries(q gen.VectorStoreSearchRequest_Query) ([]string, error) {
	var qs []string
	if one, err := q.AsVectorStoreSearchRequestQuery0(); err == nil {
		qs = []string{one}
	} else if many, err := q.AsVectorStoreSearchRequestQuery1(); err == nil {
		qs = many
	} else {
		return nil, errBadRequest("query", "Invalid 'query': expected a string or an array of strings.")
	}
	if len(qs) == 0 || len(qs) > maxQueries {
		return nil, errBadRequest("query", "Invalid 'query': expected 1 to %d queries.", maxQueries)
	}
	for i, one := range qs {
		if strings.TrimSpace(one) == "" || len(one) > maxQueryLen {
			p := "query"
			if len(qs) > 1 {
				p = fmt.Sprintf("query[%d]", i)
			}
			return nil, errBadRequest(p, "Invalid '%s': expected a non-empty string of at most %d bytes.", p, maxQueryLen)
		}
	}
	return slices.Clone(qs), nil
}

// terms splits text into unique lower-case words.
func terms(text string) []string {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	slices.Sort(words)
	return slices.Compact(words)
}

type scoredChunk struct {
	text  string
	score float32
}

// searchFiles scores the completed files (see the comment at the top).
func searchFiles(files []*vsFileRec, queries []string, filter *gen.VectorStoreSearchFilter, threshold float32, limit int) []gen.VectorStoreSearchResultItem {
	var qterms []string
	for _, q := range queries {
		qterms = append(qterms, terms(q)...)
	}
	slices.Sort(qterms)
	qterms = slices.Compact(qterms)
	type hit struct {
		item  gen.VectorStoreSearchResultItem
		order int
	}
	var hits []hit
	for i, f := range files {
		if f.obj.Status != gen.VectorStoreFileObjectStatusCompleted || f.data == nil || len(qterms) == 0 {
			continue
		}
		if filter != nil && !matchFilter(*filter, f.obj.Attributes, 0) {
			continue
		}
		var chunks []scoredChunk
		for _, c := range f.data.chunks {
			ct := terms(c)
			n := 0
			for _, t := range qterms {
				if _, ok := slices.BinarySearch(ct, t); ok {
					n++
				}
			}
			if n > 0 {
				chunks = append(chunks, scoredChunk{text: c, score: float32(n) / float32(len(qterms))})
			}
		}
		if len(chunks) == 0 {
			continue
		}
		slices.SortStableFunc(chunks, func(a, b scoredChunk) int { return cmp.Compare(b.score, a.score) })
		best := chunks[0].score
		if best < threshold {
			continue
		}
		content := []gen.VectorStoreSearchResultContentObject{}
		for _, c := range chunks[:min(len(chunks), maxChunksPerResult)] {
			content = append(content, gen.VectorStoreSearchResultContentObject{Type: "text", Text: c.text})
		}
		hits = append(hits, hit{order: i, item: gen.VectorStoreSearchResultItem{
			FileId:     f.obj.Id,
			Filename:   f.filename,
			Score:      best,
			Attributes: cloneAttributes(f.obj.Attributes),
			Content:    content,
		}})
	}
	slices.SortStableFunc(hits, func(a, b hit) int {
		if c := cmp.Compare(b.item.Score, a.item.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.order, b.order)
	})
	out := make([]gen.VectorStoreSearchResultItem, 0, min(len(hits), limit))
	for _, h := range hits[:min(len(hits), limit)] {
		out = append(out, h.item)
	}
	return out
}

// checkFilter validates a search filter (operators, value types, depth).
func checkFilter(param string, f gen.VectorStoreSearchFilter, depth int) error {
	if depth > maxFilterDepth {
		return errBadRequest(param, "Invalid '%s': filters nest too deep (at most %d levels).", param, maxFilterDepth)
	}
	kind, err := f.Discriminator()
	if err != nil {
		return errBadRequest(param, "Invalid '%s': expected a filter object.", param)
	}
	switch kind {
	case "and", "or":
		c, err := f.AsCompoundFilter()
		if err != nil {
			return errBadRequest(param+".filters", "Invalid '%s.filters': expected an array of filters.", param)
		}
		for i, sub := range c.Filters {
			if err := checkFilter(fmt.Sprintf("%s.filters[%d]", param, i), sub, depth+1); err != nil {
				return err
			}
		}
		return nil
	case "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin":
		c, err := f.AsComparisonFilter()
		if err != nil || c.Key == "" {
			return errBadRequest(param+".key", "Invalid '%s': expected a comparison with a key and a value.", param)
		}
		_, isList := filterList(c.Value)
		if (kind == "in" || kind == "nin") != isList {
			if isList {
				return errBadRequest(param+".value", "Invalid '%s.value': an array is only allowed with 'in' and 'nin'.", param)
			}
			return errBadRequest(param+".value", "Invalid '%s.value': '%s' needs an array of values.", param, kind)
		}
		return nil
	default:
		return errBadRequest(param+".type", "Invalid value for '%s.type'.", param)
	}
}

// attrValue is an attribute or filter value: a string, a number or a bool.
type attrValue struct {
	kind byte // 's', 'n', 'b'
	s    string
	n    float64
	b    bool
}

func fromAttribute(v gen.VectorStoreFileAttributeValue) (attrValue, bool) {
	raw, err := v.MarshalJSON()
	if err != nil || len(raw) == 0 {
		return attrValue{}, false
	}
	switch raw[0] {
	case '"':
		s, err := v.AsVectorStoreFileAttributeValue0()
		return attrValue{kind: 's', s: s}, err == nil
	case 't', 'f':
		b, err := v.AsVectorStoreFileAttributeValue2()
		return attrValue{kind: 'b', b: b}, err == nil
	default:
		n, err := v.AsVectorStoreFileAttributeValue1()
		return attrValue{kind: 'n', n: float64(n)}, err == nil
	}
}

func filterScalar(v gen.ComparisonFilterValue) (attrValue, bool) {
	raw, err := v.MarshalJSON()
	if err != nil || len(raw) == 0 {
		return attrValue{}, false
	}
	switch raw[0] {
	case '"':
		s, err := v.AsComparisonFilterValue0()
		return attrValue{kind: 's', s: s}, err == nil
	case 't', 'f':
		b, err := v.AsComparisonFilterValue2()
		return attrValue{kind: 'b', b: b}, err == nil
	case '[', '{', 'n':
		return attrValue{}, false
	default:
		n, err := v.AsComparisonFilterValue1()
		return attrValue{kind: 'n', n: float64(n)}, err == nil
	}
}

func filterList(v gen.ComparisonFilterValue) ([]attrValue, bool) {
	raw, err := v.MarshalJSON()
	if err != nil || len(raw) == 0 || raw[0] != '[' {
		return nil, false
	}
	items, err := v.AsComparisonFilterValue3()
	if err != nil {
		return nil, false
	}
	out := make([]attrValue, 0, len(items))
	for _, it := range items {
		if s, err := it.AsComparisonFilterValueItem0(); err == nil {
			out = append(out, attrValue{kind: 's', s: s})
		} else if n, err := it.AsComparisonFilterValueItem1(); err == nil {
			out = append(out, attrValue{kind: 'n', n: float64(n)})
		}
	}
	return out, true
}

func (a attrValue) equal(b attrValue) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case 's':
		return a.s == b.s
	case 'n':
		return a.n == b.n
	default:
		return a.b == b.b
	}
}

// compare orders two values of the same kind (strings and numbers only).
func (a attrValue) compare(b attrValue) (int, bool) {
	if a.kind != b.kind {
		return 0, false
	}
	switch a.kind {
	case 's':
		return strings.Compare(a.s, b.s), true
	case 'n':
		return cmp.Compare(a.n, b.n), true
	}
	return 0, false
}

// matchFilter evaluates a (checked) filter against a file's attributes. A
// missing attribute matches only ne and nin.
func matchFilter(f gen.VectorStoreSearchFilter, attrs *gen.VectorStoreFileAttributes, depth int) bool {
	if depth > maxFilterDepth {
		return false
	}
	kind, err := f.Discriminator()
	if err != nil {
		return false
	}
	switch kind {
	case "and", "or":
		c, err := f.AsCompoundFilter()
		if err != nil {
			return false
		}
		for _, sub := range c.Filters {
			m := matchFilter(sub, attrs, depth+1)
			if kind == "and" && !m {
				return false
			}
			if kind == "or" && m {
				return true
			}
		}
		return kind == "and"
	}
	c, err := f.AsComparisonFilter()
	if err != nil {
		return false
	}
	var have attrValue
	found := false
	if attrs != nil {
		if v, ok := (*attrs)[c.Key]; ok {
			have, found = fromAttribute(v)
		}
	}
	switch kind {
	case "in", "nin":
		list, _ := filterList(c.Value)
		in := found && slices.ContainsFunc(list, have.equal)
		return in == (kind == "in")
	}
	want, ok := filterScalar(c.Value)
	if !ok {
		return false
	}
	if !found {
		return kind == "ne"
	}
	switch kind {
	case "eq":
		return have.equal(want)
	case "ne":
		return !have.equal(want)
	}
	r, ok := have.compare(want)
	if !ok {
		return false
	}
	switch kind {
	case "gt":
		return r > 0
	case "gte":
		return r >= 0
	case "lt":
		return r < 0
	default:
		return r <= 0
	}
}
