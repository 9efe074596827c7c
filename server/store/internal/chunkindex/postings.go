package chunkindex

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/assistants-go/assistants/server/retrieval/analyze"
	"github.com/assistants-go/assistants/server/retrieval/index"
)

// The keyword index of both stores is a table of postings cut by file:
// one row per term and file holding it, (term, vector store, file), with
// the number of the file's chunks holding the term (df), the largest
// term frequency (max_tf) and the shortest chunk length (min_len) among
// them, and the postings themselves packed in a blob. A file is put and
// deleted as a whole, so its rows are written once and never patched;
// a search's statistics are sums over the rows of the files in its scope
// (per term) and over a row per file in scope (chunks and their total
// length).
//
// The blob holds, per chunk holding the term, in increasing chunk index:
// the difference from the previous chunk index (the first from -1), the
// term's frequency in the chunk and the chunk's length in terms, each an
// unsigned varint.

// Posting is a chunk holding a term.
type Posting struct {
	N   int // the chunk's index in its file
	TF  int // how often the chunk holds the term
	Len int // the chunk's length in terms
}

// FilePostings are a file's postings of one term: a row of the table.
type FilePostings struct {
	Term   string
	DF     int // len of the postings
	MaxTF  int
	MinLen int
	Blob   []byte
}

// FileTerms are a file's index terms.
type FileTerms struct {
	// Rows are the file's postings rows, by term.
	Rows []FilePostings
	// Chunks is the number of the file's chunks, Length their total
	// length in terms: the file's share of a search's statistics.
	Chunks, Length int
}

// AnalyzeFile returns the postings rows of chunks (one file's).
func AnalyzeFile(chunks []index.Chunk) FileTerms {
	byTerm := map[string][]Posting{}
	var out FileTerms
	out.Chunks = len(chunks)
	order := slices.Clone(chunks)
	slices.SortStableFunc(order, func(a, b index.Chunk) int { return a.Index - b.Index })
	tf := map[string]int{}
	for _, c := range order {
		clear(tf)
		n := 0
		analyze.Terms(c.Text, func(t string) bool {
			tf[t]++
			n++
			return true
		})
		out.Length += n
		for t, f := range tf {
			byTerm[t] = append(byTerm[t], Posting{N: c.Index, TF: f, Len: n})
		}
	}
	terms := make([]string, 0, len(byTerm))
	for t := range byTerm {
		terms = append(terms, t)
	}
	slices.Sort(terms)
	out.Rows = make([]FilePostings, len(terms))
	for i, t := range terms {
		ps := byTerm[t]
		row := FilePostings{Term: t, DF: len(ps), MinLen: ps[0].Len}
		prev := -1
		row.Blob = make([]byte, 0, 3*len(ps))
		for _, p := range ps {
			row.MaxTF = max(row.MaxTF, p.TF)
			row.MinLen = min(row.MinLen, p.Len)
			row.Blob = binary.AppendUvarint(row.Blob, uint64(p.N-prev))
			row.Blob = binary.AppendUvarint(row.Blob, uint64(p.TF))
			row.Blob = binary.AppendUvarint(row.Blob, uint64(p.Len))
			prev = p.N
		}
		out.Rows[i] = row
	}
	return out
}

// DecodePostings calls fn with each posting of a blob, in order.
func DecodePostings(blob []byte, fn func(Posting)) error {
	n := -1
	for len(blob) > 0 {
		var v [3]uint64
		for i := range v {
			x, k := binary.Uvarint(blob)
			if k <= 0 {
				return fmt.Errorf("search index: a postings blob is damaged")
			}
			v[i], blob = x, blob[k:]
		}
		if v[0] == 0 || v[0] > 1<<31 || v[1] > 1<<31 || v[2] > 1<<31 {
			return fmt.Errorf("search index: a postings blob is damaged")
		}
		n += int(v[0])
		fn(Posting{N: n, TF: int(v[1]), Len: int(v[2])})
	}
	return nil
}
