//go:build ignore

// tools.go runs this repository's pinned developer tools:
//
//	go run tools.go oapi-codegen -config gen/config.yaml openapi/assistants.yaml
//
// "make generate" runs the code generator through it (see gen/generate.go),
// and scripts/check-generated.sh does the same, so every machine generates
// the same code with the same generator.
//
// The versions live in tools/go.mod, a module of its own: the build
// constraint "ignore" keeps this file out of every build and out of "go mod
// tidy" (tidy reads files behind any other tag, which is why a plain
// tools.go in the root package would record the generator and
// golang.org/x/tools in the go.mod of every program that imports this
// module). Nothing here reaches a consumer.
//
// It works from any directory inside the repository: it finds tools/go.mod
// by walking up from the current directory.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// pinned maps a tool's name to its package; its version is tools/go.mod's.
var pinned = map[string]string{
	"oapi-codegen": "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen",
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tools.go:", err)
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) == 0 || pinned[args[0]] == "" {
		names := make([]string, 0, len(pinned))
		for n := range pinned {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("usage: go run tools.go TOOL [ARGS...]; TOOL is one of: %s", strings.Join(names, ", "))
	}
	modfile, err := findModfile()
	if err != nil {
		return err
	}
	gocmd := os.Getenv("GO")
	if gocmd == "" {
		gocmd = "go"
	}
	cmd := exec.Command(gocmd, append([]string{"run", "-modfile=" + modfile, pinned[args[0]]}, args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

// findModfile returns the path of tools/go.mod in the current directory or
// the nearest one above it.
func findModfile() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "tools", "go.mod")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("tools/go.mod not found in this directory or any above it")
		}
		dir = parent
	}
}
