//go:build tools

// Package tools pins the code generator this module runs through "make generate",
// so that go.mod records its exact version and every machine generates the same code.
package tools

import (
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
)
