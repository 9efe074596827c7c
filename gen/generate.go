// Package gen is the client side of the Assistants v2 API, generated from the
// project's spec (openapi/assistants.yaml): one Go type per schema, a Client
// with one method per operation returning the raw *http.Response, and
// ClientWithResponses, whose <Op>WithResponse methods decode the reply into a
// <Op>Reply holding the body and the typed JSON of each documented status.
//
// Most programs do not call this package's client directly: assistants.New
// configures it (auth, retries, Azure), and assistants.Client's typed calls
// return (*T, error). The types (gen.ThreadObject, gen.RunObject,
// gen.CreateMessageRequest, ...) are what every package of this module speaks.
//
// The server side (strict server interface, embedded spec) is in
// gen/genserver, so a program using only the client links neither the spec
// nor a validator.
//
// Nothing in this package is edited by hand. Change the spec or config.yaml
// and run "make generate".
package gen

// The generators, in order: the overlay that gives operations their
// x-go-name (goname.overlay.yaml), the client side (this package), the
// server side (genserver: its interface, then its embedded spec, which keeps
// the API's operationIds), then the typed calls of package assistants
// (calls.gen.go) and the streaming calls of package helpers
// (helpers/streams.gen.go), which internal/gencalls derives from the first two.
//
//go:generate go run ../internal/gencalls -overlay-spec ../openapi/assistants.yaml -overlay-out goname.overlay.yaml
//go:generate go run ../tools.go oapi-codegen -config config.yaml ../openapi/assistants.yaml
//go:generate go run ../tools.go oapi-codegen -config genserver/config.yaml ../openapi/assistants.yaml
//go:generate go run ../tools.go oapi-codegen -config genserver/spec.yaml ../openapi/assistants.yaml
//go:generate go run ../internal/gencalls -gen assistants.gen.go -server genserver/genserver.gen.go -calls ../calls.gen.go -streams ../helpers/streams.gen.go
