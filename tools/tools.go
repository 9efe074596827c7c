//go:build tools

// Package tools pins the code generator that "make generate" runs, so that
// this directory's go.mod records its exact version and every machine
// generates the same code.
//
// It is a module of its own on purpose. A file in the root package, even one
// behind a build tag, is read by every consumer's "go mod tidy" (tidy ignores
// build tags), which then records oapi-codegen and its dependencies
// (golang.org/x/tools among them) in the consumer's go.mod. Nested here, the
// generator's requirements never enter the main module's go.mod, so they
// never reach a consumer's module graph either.
//
// gen/generate.go runs the generator with
//
//	go run -modfile=../tools/go.mod github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen ...
package tools

import (
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
)
