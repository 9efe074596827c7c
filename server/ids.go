package server

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// Object id prefixes, as the API uses them.
const (
	prefixAssistant   = "asst_"
	prefixThread      = "thread_"
	prefixMessage     = "msg_"
	prefixRun         = "run_"
	prefixStep        = "step_"
	prefixFile        = "file-"
	prefixVectorStore = "vs_"
	prefixFileBatch   = "vsfb_"
	prefixToolCall    = "call_"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns prefix followed by 24 characters of crypto/rand (120 bits), so
// ids are hard to guess.
func newID(prefix string) string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// validID reports whether id is an acceptable path id: 1..128 bytes of
// [A-Za-z0-9_-]. Anything else (slashes, dots, NUL, huge) is rejected early
// with a clean 400 or 404 rather than reaching the store.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}
