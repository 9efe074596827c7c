// Package openapi holds the project's own OpenAPI 3.0.3 description of the
// Assistants v2 API (assistants.yaml) and the tests that keep it valid and in
// agreement with the API's published facts.
//
// The document is the single source of the generated code in ../gen: change it
// here, then run "make generate".
package openapi

import _ "embed"

// Spec is the raw YAML of assistants.yaml, for tools that want the document itself.
//
//go:embed assistants.yaml
var Spec []byte
