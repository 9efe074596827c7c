// Package retrieval is the file_search pipeline: extract -> tokenize ->
// chunk -> embed -> index (keyword and vector) -> hybrid search -> cite.
//
// Each stage is its own package:
//
//   - extract: text out of uploaded files (txt, md, html, json, csv,
//     source code, PDF, docx), or a typed error saying why not;
//   - tokenize: OpenAI's BPE encodings, offline, to count and cut tokens;
//   - chunk: the API's static/auto chunking strategies, by tokens;
//   - embed: the Embedder interface, the built-in lexical hashing
//     embedder and an OpenAI-compatible /embeddings client;
//   - index: keyword (BM25) and vector (cosine) search interfaces, and
//     index/memory, both in process memory;
//   - filter: the API's attribute filters, applied before ranking;
//   - cite: file_citation annotations whose indices match the text.
//
// This package ties them together: Pipeline.Ingest chunks, embeds and
// indexes a file's text, and Pipeline.Search runs the keyword and vector
// searches of each query within a scope and fuses them into one score
// between 0 and 1: by default a weighted sum of BM25 divided by the
// query's best and cosine similarity (FuseScores), or by reciprocal rank
// (Fuse, FuseWeighted).
package retrieval
