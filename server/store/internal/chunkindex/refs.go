package chunkindex

import "github.com/assistants-go/assistants/server/retrieval/index"

// Refs interns the file names a search reads from many rows (a file
// holds many of a query's terms), so that each file's strings are made
// once per search rather than once per row. The zero value is ready.
type Refs struct {
	m map[string]map[string]index.Ref
}

// Get returns the ref of vs and file (bytes of a row, not kept).
func (r *Refs) Get(vs, file []byte) index.Ref {
	files := r.m[string(vs)]
	if ref, ok := files[string(file)]; ok {
		return ref
	}
	if r.m == nil {
		r.m = map[string]map[string]index.Ref{}
	}
	if files == nil {
		files = map[string]index.Ref{}
		r.m[string(vs)] = files
	}
	ref := index.Ref{VectorStoreID: string(vs), FileID: string(file)}
	files[ref.FileID] = ref
	return ref
}

// Term returns the term of terms equal to b, or b as a new string.
func Term(terms []string, b []byte) string {
	for _, t := range terms {
		if t == string(b) {
			return t
		}
	}
	return string(b)
}
