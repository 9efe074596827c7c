package helpers_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/helpers"
	"github.com/assistants-go/assistants/server"
)

// pagesExampleServer starts the embedded Assistants server and returns a
// client for it and a function that stops both.
func pagesExampleServer() (*assistants.Client, func()) {
	srv := server.New()
	hs := httptest.NewServer(srv.Handler())
	stop := func() { _ = srv.Close(); hs.Close() }
	client, err := assistants.New(assistants.WithBaseURL(hs.URL+"/v1"), assistants.WithAPIKey("sk-example"))
	if err != nil {
		stop()
		panic(err)
	}
	return client, stop
}

// Messages pages through a thread's messages, three a page, oldest first.
// The loop asks for the next page only when it has used up the previous one;
// break out of it and no further request is made.
func ExampleMessages() {
	client, stop := pagesExampleServer()
	defer stop()
	ctx := context.Background()

	thread, err := client.CreateThread(ctx, gen.CreateThreadRequest{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := 1; i <= 7; i++ {
		_, err := client.CreateMessage(ctx, thread.Id, assistants.UserMessage(fmt.Sprintf("message %d", i)))
		if err != nil {
			fmt.Println(err)
			return
		}
	}

	limit, order := 3, gen.ListMessagesParamsOrderAsc
	params := &gen.ListMessagesParams{Limit: &limit, Order: &order}
	for m, err := range helpers.Messages(ctx, client, thread.Id, params) {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(m.Role, helpers.MessageText(m))
	}
	// Output:
	// user message 1
	// user message 2
	// user message 3
	// user message 4
	// user message 5
	// user message 6
	// user message 7
}

// UploadAndPoll uploads files, adds them to a vector store as one batch and
// waits until the store has processed them.
func ExampleUploadAndPoll() {
	client, stop := pagesExampleServer()
	defer stop()
	ctx := context.Background()

	name := "docs"
	vs, err := client.CreateVectorStore(ctx, gen.CreateVectorStoreRequest{Name: &name})
	if err != nil {
		fmt.Println(err)
		return
	}
	files := []helpers.FileSource{
		{Reader: strings.NewReader("Paris is the capital of France."), Filename: "france.txt"},
		{Reader: strings.NewReader("Rome is the capital of Italy."), Filename: "italy.txt"},
	}
	res, err := helpers.UploadAndPoll(ctx, client, vs.Id, files, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("batch:", res.Batch.Status)
	fmt.Println("completed:", res.Batch.FileCounts.Completed, "failed:", len(res.Failed))
	// Output:
	// batch: completed
	// completed: 2 failed: 0
}
