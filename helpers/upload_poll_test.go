package helpers

import (
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server"
)

// One file uploaded into a vector store and processed, in one call, against
// the embedded server.
func TestUploadFileAndPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := assistantstest.NewInProcessServer(t, server.WithStepDelay(0))
		c := srv.Client
		ctx := t.Context()
		vs, err := c.CreateVectorStore(ctx, gen.CreateVectorStoreRequest{Name: assistants.Ptr("docs")})
		require.NoError(t, err)

		vf, err := UploadFileAndPoll(ctx, c, vs.Id, FileSource{Reader: strings.NewReader("Returns are accepted for 30 days."), Filename: "faq.md"}, nil)
		require.NoError(t, err)
		assert.Equal(t, gen.VectorStoreFileObjectStatusCompleted, vf.Status)
		assert.Equal(t, vs.Id, vf.VectorStoreId)

		f, err := c.RetrieveFile(ctx, vf.Id)
		require.NoError(t, err)
		assert.Equal(t, "faq.md", f.Filename)
	})
}

func TestUploadFileAndPollErrors(t *testing.T) {
	cases := []struct {
		name    string
		client  VectorStoreUploadClient
		store   string
		src     FileSource
		wantErr string
	}{
		{"nil client", nil, "vs_1", FileSource{Path: "x"}, "nil client"},
		{"no store", &assistants.Client{}, "", FileSource{Path: "x"}, "empty vector store ID"},
		{"bad source", &assistants.Client{}, "vs_1", FileSource{}, "upload"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vf, err := UploadFileAndPoll(t.Context(), tc.client, tc.store, tc.src, nil)
			assert.Nil(t, vf)
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
}
