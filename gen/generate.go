// Package gen holds the code that oapi-codegen generates from the project's
// Assistants v2 spec (../openapi/assistants.yaml): the API's types, a
// ClientWithResponses and a strict net/http server interface.
//
// Nothing in this package is edited by hand. Change the spec or config.yaml and
// run "make generate".
package gen

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config config.yaml ../openapi/assistants.yaml
