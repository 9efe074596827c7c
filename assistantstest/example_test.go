package assistantstest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// In a test, NewServer gives a running server and a client for it; it is
// closed when the test ends and every response is checked against the spec.
func TestNewServerExample(t *testing.T) {
	srv := assistantstest.NewServer(t, server.WithStepDelay(0))
	asst, err := srv.Client.CreateAssistant(t.Context(), gen.CreateAssistantRequest{Model: "gpt-4o"})
	if err != nil {
		t.Fatalf("create assistant: %v", err)
	}
	if asst.Model != "gpt-4o" {
		t.Fatalf("create assistant: model %q", asst.Model)
	}
}

// Outside a test, Start and Close do the same; Close reports responses that
// did not match the spec.
func Example() {
	srv, err := assistantstest.Start(server.WithStepDelay(0))
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer func() {
		if err := srv.Close(); err != nil {
			fmt.Println("spec mismatches:", err)
		}
	}()

	ctx := context.Background()
	asst, err := srv.Client.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o", Name: assistants.Ptr("Helper")})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(asst.Object, *asst.Name)
	// Output: assistant Helper
}
