// Package genserver is the server side of the Assistants v2 API, generated
// from the project's spec (openapi/assistants.yaml): StrictServerInterface,
// one method per operation with typed request and response objects; the
// net/http adapters that route requests to it (NewStrictHandlerWithOptions,
// HandlerWithOptions); and the spec itself, embedded (GetSwagger), for request
// validation.
//
// It is a package of its own so that programs using only the client (package
// gen) do not link kin-openapi, YAML or JSON Schema code. The API's types are
// package gen's, dot-imported: a server handler and a client see the same
// gen.ThreadObject.
//
// Nothing in this package is edited by hand. Change the spec or config.yaml
// and run "make generate" (whose directives are in ../generate.go).
package genserver
