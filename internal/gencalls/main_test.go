package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestGoNames(t *testing.T) {
	spec := `openapi: 3.0.3
paths:
  /a/{id}:
    get:
      operationId: getA
      summary: no override
    post:
      operationId: submitToolOuputsToA
      x-go-name: SubmitToolOutputsToA
      summary: override
  /b:
    delete:
      x-go-name: RemoveB
      operationId: deleteB
components:
  schemas:
    X:
      x-go-name: NotAnOperation
`
	got, err := goNames([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	want := []goNamed{
		{path: "/a/{id}", method: "post", operationID: "submitToolOuputsToA", goName: "SubmitToolOutputsToA"},
		{path: "/b", method: "delete", operationID: "deleteB", goName: "RemoveB"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("operation %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestWriteOverlay(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	out := filepath.Join(dir, "overlay.yaml")
	if err := os.WriteFile(spec, []byte("paths:\n  /r/{id}/submit:\n    post:\n      operationId: submitOuputs\n      x-go-name: SubmitOutputs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeOverlay(spec, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	const action = "  - target: $.paths['/r/{id}/submit'].post\n    update:\n      operationId: submitOutputs\n"
	if got := string(b); len(got) < len(action) || got[len(got)-len(action):] != action {
		t.Errorf("overlay ends with\n%s\nwant\n%s", got, action)
	}
	// An x-go-name without an operationId is an error.
	if err := os.WriteFile(spec, []byte("paths:\n  /r:\n    post:\n      x-go-name: X\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeOverlay(spec, out); err == nil {
		t.Error("no error for an x-go-name without operationId")
	}
}
