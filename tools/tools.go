//go:build tools

// Package tools pins the code generator that "make generate" runs, so that
// this directory's go.mod records its exact version and every machine
// generates the same code.
//
// It is a module of its own on purpose. A file in the root package behind a
// build tag such as "tools" is read by every consumer's "go mod tidy" (tidy
// enables every tag but "ignore"), which then records oapi-codegen and its
// dependencies (golang.org/x/tools among them) in the consumer's go.mod.
// Nested here, the generator's requirements never enter the main module's
// go.mod, so they never reach a consumer's module graph either.
//
// The repository root's tools.go (tagged "ignore") runs the pinned tools:
// gen/generate.go calls "go run ../tools.go oapi-codegen ...", which runs
// "go run -modfile=tools/go.mod github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen ...".
package tools

import (
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
)
