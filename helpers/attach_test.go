package helpers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants"
	"github.com/assistants-go/assistants/assistantstest"
	"github.com/assistants-go/assistants/gen"
)

// attachUpload uploads a small text file to the embedded server.
func attachUpload(t *testing.T, c *assistants.Client, name string) string {
	t.Helper()
	f, err := UploadFile(t.Context(), c, FileSource{Reader: strings.NewReader("content of " + name), Filename: name}, nil)
	require.NoError(t, err)
	return f.Id
}

func codeFiles(tr *gen.ToolResources) []string {
	if tr == nil {
		return nil
	}
	return codeInterpreterFiles(*tr)
}

func searchStores(tr *gen.ToolResources) []string {
	if tr == nil {
		return nil
	}
	return fileSearchStores(*tr)
}

// vectorStoreFileIDs lists the file IDs in a vector store.
func vectorStoreFileIDs(t *testing.T, c *assistants.Client, vsID string) []string {
	t.Helper()
	var ids []string
	for vf, err := range VectorStoreFiles(t.Context(), c, vsID, nil) {
		require.NoError(t, err)
		ids = append(ids, vf.Id)
	}
	return ids
}

// TestAttachAssistantFile attaches and detaches files on an assistant of the
// embedded server, for both tools.
func TestAttachAssistantFile(t *testing.T) {
	s := assistantstest.NewServer(t)
	c, ctx := s.Client, t.Context()
	a, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o"})
	require.NoError(t, err)
	f1, f2 := attachUpload(t, c, "one.txt"), attachUpload(t, c, "two.txt")

	// Code interpreter: add two, adding again changes nothing, remove one.
	got, err := AttachAssistantFile(ctx, c, a.Id, f1, AttachCodeInterpreter)
	require.NoError(t, err)
	assert.Equal(t, []string{f1}, codeFiles(got.ToolResources))
	got, err = AttachAssistantFile(ctx, c, a.Id, f2, AttachCodeInterpreter)
	require.NoError(t, err)
	assert.Equal(t, []string{f1, f2}, codeFiles(got.ToolResources))
	got, err = AttachAssistantFile(ctx, c, a.Id, f1, AttachCodeInterpreter)
	require.NoError(t, err)
	assert.Equal(t, []string{f1, f2}, codeFiles(got.ToolResources), "attaching twice lists the file once")

	// File search: the first attach creates a vector store, the second adds
	// to it; the code interpreter files are kept.
	got, err = AttachAssistantFile(ctx, c, a.Id, f1, AttachFileSearch)
	require.NoError(t, err)
	stores := searchStores(got.ToolResources)
	require.Len(t, stores, 1)
	assert.Equal(t, []string{f1, f2}, codeFiles(got.ToolResources), "other tool's resources kept")
	got, err = AttachAssistantFile(ctx, c, a.Id, f2, AttachFileSearch)
	require.NoError(t, err)
	assert.Equal(t, stores, searchStores(got.ToolResources), "the same store is used")
	assert.ElementsMatch(t, []string{f1, f2}, vectorStoreFileIDs(t, c, stores[0]))

	// Detach.
	got, err = DetachAssistantFile(ctx, c, a.Id, f1, AttachCodeInterpreter)
	require.NoError(t, err)
	assert.Equal(t, []string{f2}, codeFiles(got.ToolResources))
	got, err = DetachAssistantFile(ctx, c, a.Id, f1, AttachCodeInterpreter)
	require.NoError(t, err, "detaching a file that is not attached is fine")
	assert.Equal(t, []string{f2}, codeFiles(got.ToolResources))
	got, err = DetachAssistantFile(ctx, c, a.Id, f2, AttachFileSearch)
	require.NoError(t, err)
	assert.Equal(t, stores, searchStores(got.ToolResources), "the store stays")
	assert.Equal(t, []string{f1}, vectorStoreFileIDs(t, c, stores[0]))
	_, err = DetachAssistantFile(ctx, c, a.Id, f2, AttachFileSearch)
	require.NoError(t, err, "detaching from a store that lacks the file is fine")

	// The assistant as stored agrees.
	stored, err := c.GetAssistant(ctx, a.Id)
	require.NoError(t, err)
	assert.Equal(t, []string{f2}, codeFiles(stored.ToolResources))
	assert.Equal(t, stores, searchStores(stored.ToolResources))
}

// TestAttachThreadFile does the same on a thread.
func TestAttachThreadFile(t *testing.T) {
	s := assistantstest.NewServer(t)
	c, ctx := s.Client, t.Context()
	th, err := c.CreateThread(ctx, gen.CreateThreadRequest{})
	require.NoError(t, err)
	f1 := attachUpload(t, c, "one.txt")

	got, err := AttachThreadFile(ctx, c, th.Id, f1, AttachFileSearch)
	require.NoError(t, err)
	stores := searchStores(got.ToolResources)
	require.Len(t, stores, 1)
	assert.Equal(t, []string{f1}, vectorStoreFileIDs(t, c, stores[0]))

	got, err = AttachThreadFile(ctx, c, th.Id, f1, AttachCodeInterpreter)
	require.NoError(t, err)
	assert.Equal(t, []string{f1}, codeFiles(got.ToolResources))
	assert.Equal(t, stores, searchStores(got.ToolResources))

	got, err = DetachThreadFile(ctx, c, th.Id, f1, AttachCodeInterpreter)
	require.NoError(t, err)
	assert.Empty(t, codeFiles(got.ToolResources))
	_, err = DetachThreadFile(ctx, c, th.Id, f1, AttachFileSearch)
	require.NoError(t, err)
	assert.Empty(t, vectorStoreFileIDs(t, c, stores[0]))
}

// TestAttachErrors covers bad arguments, a full code interpreter and
// missing objects.
func TestAttachErrors(t *testing.T) {
	s := assistantstest.NewServer(t)
	c, ctx := s.Client, t.Context()
	a, err := c.CreateAssistant(ctx, gen.CreateAssistantRequest{Model: "gpt-4o"})
	require.NoError(t, err)

	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"empty assistant", func() error { _, err := AttachAssistantFile(ctx, c, "", "file-1", AttachFileSearch); return err }, "empty assistant ID"},
		{"empty file", func() error { _, err := AttachThreadFile(ctx, c, "thread_1", "", AttachFileSearch); return err }, "empty file ID"},
		{"unknown target", func() error { _, err := DetachAssistantFile(ctx, c, a.Id, "file-1", "retrieval"); return err }, `unknown target "retrieval"`},
		{"nil client", func() error { _, err := DetachThreadFile(ctx, nil, "thread_1", "file-1", AttachFileSearch); return err }, "nil client"},
		{"missing assistant", func() error {
			_, err := AttachAssistantFile(ctx, c, "asst_missing", "file-1", AttachCodeInterpreter)
			if !assistants.IsNotFound(err) {
				return fmt.Errorf("not a 404: %w", err)
			}
			return err
		}, "asst_missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	t.Run("code interpreter full", func(t *testing.T) {
		for i := range MaxCodeInterpreterFiles {
			_, err := AttachAssistantFile(ctx, c, a.Id, attachUpload(t, c, fmt.Sprintf("f%d.txt", i)), AttachCodeInterpreter)
			require.NoError(t, err)
		}
		_, err := AttachAssistantFile(ctx, c, a.Id, attachUpload(t, c, "extra.txt"), AttachCodeInterpreter)
		require.ErrorContains(t, err, "already holds 20 files")
	})
}

// TestMessageFiles lists the files a message carries.
func TestMessageFiles(t *testing.T) {
	s := assistantstest.NewServer(t)
	c, ctx := s.Client, t.Context()
	f1, f2 := attachUpload(t, c, "one.txt"), attachUpload(t, c, "two.csv")
	th, err := c.CreateThread(ctx, gen.CreateThreadRequest{})
	require.NoError(t, err)
	var content gen.CreateMessageRequest_Content
	require.NoError(t, content.FromCreateMessageText("see the files"))
	atts := []gen.MessageAttachment{Attachment(f1, AttachFileSearch), Attachment(f2)}
	m, err := c.CreateMessage(ctx, th.Id, gen.CreateMessageRequest{
		Role: gen.CreateMessageRequestRoleUser, Content: content, Attachments: &atts})
	require.NoError(t, err)

	want := []MessageFile{
		{FileID: f1, Tools: []AttachTarget{AttachFileSearch}},
		{FileID: f2, Tools: []AttachTarget{AttachCodeInterpreter, AttachFileSearch}},
	}
	assert.Equal(t, want, MessageFiles(m))
	got, err := ListMessageFiles(ctx, c, th.Id, m.Id)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	_, err = ListMessageFiles(ctx, c, th.Id, "msg_missing")
	assert.True(t, assistants.IsNotFound(err), "%v", err)
	_, err = ListMessageFiles(ctx, c, "", m.Id)
	assert.ErrorContains(t, err, "empty")

	// Repeated attachments are merged; one without a file ID is skipped.
	ci := Attachment("file-x", AttachCodeInterpreter)
	fs := Attachment("file-x", AttachFileSearch, AttachCodeInterpreter)
	assert.Equal(t, []MessageFile{{FileID: "file-x", Tools: []AttachTarget{AttachCodeInterpreter, AttachFileSearch}}},
		MessageFiles(&gen.MessageObject{Attachments: []gen.MessageAttachment{ci, {}, fs}}))
	assert.Nil(t, MessageFiles(nil))
	assert.Nil(t, MessageFiles(&gen.MessageObject{}))
}
