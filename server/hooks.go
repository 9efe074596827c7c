package server

import "context"

// testHooks are calls into tests at points where a race window would be, so
// that tests can make a race happen on purpose. Every hook is nil outside
// tests (set through export_test.go) and then costs one nil check.
type testHooks struct {
	// onMessageChecked runs inside CreateMessage after the active-run check
	// and before the message is stored (with the thread's mutex held).
	onMessageChecked func()
	// onProcessFile runs before a vector store file is processed; a panic in
	// it stands for a panic in extraction or chunking.
	onProcessFile func(fileID string)
	// onIngest runs before a vector store file is processed, with the
	// processing's context (a test can block until the server stops).
	onIngest func(ctx context.Context, fileID string)
	// noDurableIngest processes vector store files in goroutines of the
	// server that attached them instead of durable jobs, so a restart loses
	// the files being processed (they stay in_progress): the control that
	// shows the restart test catches lost files.
	noDurableIngest bool
	// onOpenIndex runs before the search index is opened for an embedding
	// model; its error stands for the open's (the database busy).
	onOpenIndex func(model string) error
}

func (h *testHooks) messageChecked() {
	if h.onMessageChecked != nil {
		h.onMessageChecked()
	}
}

func (h *testHooks) processFile(ctx context.Context, fileID string) {
	if h.onProcessFile != nil {
		h.onProcessFile(fileID)
	}
	if h.onIngest != nil {
		h.onIngest(ctx, fileID)
	}
}

func (h *testHooks) openIndex(model string) error {
	if h.onOpenIndex != nil {
		return h.onOpenIndex(model)
	}
	return nil
}
