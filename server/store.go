package server

import (
	"maps"
	"slices"

	"github.com/assistants-go/assistants/gen"
)

// memState holds the vector stores, guarded by Server.mu: the objects
// that have not moved to the store.Store (Options.Store) yet. Assistants,
// threads, messages and files live in the store (see storage.go).
//
// Objects are kept by value. A stored object is never modified in place:
// changes build a new value (with fresh maps and slices where they differ)
// and replace the old one, so values handed out under the read lock stay
// safe to encode after it is released.
type memState struct {
	vectorStores coll[*vectorStoreRec]
	search       searchState // the retrieval pipeline and index (ingest.go)
}

// vectorStoreRec is a vector store, its files and its file batches.
type vectorStoreRec struct {
	project string // the project it belongs to (project.go)
	obj     gen.VectorStoreObject
	files   coll[*vsFileRec]
	batches coll[*batchRec]
}

// vsFileRec is a file attached to a vector store.
type vsFileRec struct {
	project  string // its vector store's project: the file is read from it
	obj      gen.VectorStoreFileObject
	batchID  string      // the batch that attached it, if any
	data     *vsFileData // text and chunks, once processed (completed)
	filename string      // the file's name when processed
}

// batchRec is a file batch and the ids of its files, in the batch's order.
type batchRec struct {
	obj     gen.VectorStoreFileBatchObject
	fileIDs []string
	// status is the last status of each of the batch's files, kept when a
	// file leaves the store so the batch's counts stay as they were.
	status map[string]gen.VectorStoreFileObjectStatus
}

func newStore() *memState {
	return &memState{vectorStores: newColl[*vectorStoreRec]()}
}

// coll is an id-keyed collection that remembers insertion (creation) order.
type coll[T any] struct {
	m     map[string]T
	order []string
}

func newColl[T any]() coll[T] { return coll[T]{m: map[string]T{}} }

func (c *coll[T]) get(id string) (T, bool) {
	v, ok := c.m[id]
	return v, ok
}

// put inserts v at the end, or replaces the value with the same id in place.
func (c *coll[T]) put(id string, v T) {
	if c.m == nil {
		c.m = map[string]T{}
	}
	if _, ok := c.m[id]; !ok {
		c.order = append(c.order, id)
	}
	c.m[id] = v
}

// del removes id; it reports whether it was there.
func (c *coll[T]) del(id string) bool {
	if _, ok := c.m[id]; !ok {
		return false
	}
	delete(c.m, id)
	if i := slices.Index(c.order, id); i >= 0 {
		c.order = slices.Delete(c.order, i, i+1)
	}
	return true
}

// all returns the values in creation order, oldest first.
func (c *coll[T]) all() []T {
	out := make([]T, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.m[id])
	}
	return out
}

// cloneMetadata returns a copy of m (nil stays nil).
func cloneMetadata(m *gen.Metadata) *gen.Metadata {
	if m == nil {
		return nil
	}
	c := maps.Clone(*m)
	if c == nil {
		c = gen.Metadata{}
	}
	return &c
}

// emptyMetadata returns m, or an empty map when m is nil: objects always
// carry a metadata object, like the API's.
func emptyMetadata(m *gen.Metadata) *gen.Metadata {
	if m == nil {
		return &gen.Metadata{}
	}
	return cloneMetadata(m)
}

// cloneStrings copies an optional string list.
func cloneStrings(p *[]string) *[]string {
	if p == nil {
		return nil
	}
	c := slices.Clone(*p)
	if c == nil {
		c = []string{}
	}
	return &c
}

// cloneToolResources copies tool resources so the stored value shares nothing
// with the request.
func cloneToolResources(tr *gen.ToolResources) *gen.ToolResources {
	if tr == nil {
		return nil
	}
	out := &gen.ToolResources{}
	if tr.CodeInterpreter != nil {
		out.CodeInterpreter = &gen.ToolResourcesCodeInterpreter{FileIds: cloneStrings(tr.CodeInterpreter.FileIds)}
	}
	if tr.FileSearch != nil {
		out.FileSearch = &gen.ToolResourcesFileSearch{VectorStoreIds: cloneStrings(tr.FileSearch.VectorStoreIds)}
	}
	return out
}
