package server

import (
	"maps"
	"slices"

	"github.com/assistants-go/assistants/gen"
)

// memState is what a server keeps in process memory for file_search,
// guarded by its own locks: the retrieval pipeline with its index (an
// in-memory one only for a store without its own, see ingest.go) and the
// bound on files processed at once. Every object, vector stores included,
// lives in the store.Store (Options.Store; see storage.go and vsstore.go).
type memState struct {
	search    searchState // the retrieval pipeline and index (ingest.go)
	ingestSem ingestSem   // files processed at once (ingestjobs.go)
}

func newStore() *memState { return &memState{} }

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
