package store

// APIKey is an API key of a project. The key itself is never stored: Hash
// is a keyed hash of it (the server's choice: an HMAC-SHA256 under a
// secret of the operator, see server/keys.go), by which a request's key is
// found in one indexed lookup.
type APIKey struct {
	// ID names the key in lists and in `assistants keys revoke ID`
	// ("key_..."); it is not secret.
	ID      string
	Project string
	// Hash is the keyed hash of the key; unique.
	Hash []byte
	// Hint is a few characters of the key: its prefix, the next two and
	// the last four ("sk-ast-Ab…x9Zq"), for a person to tell keys apart;
	// never enough to use it.
	Hint      string
	CreatedAt int64 // unix seconds
	// RevokedAt is when the key was revoked (unix seconds); 0: it is not.
	RevokedAt int64
}
