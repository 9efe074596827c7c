//go:build !unix

package sqlite

import "errors"

// lockFile has no lock to take here: without it the store keeps no run
// cache (Options.RunCacheBytes), whose copies assume that no other process
// writes the file's runs.
func lockFile(string) (unlock func() error, err error) {
	return nil, errNoLock
}

var errNoLock = errors.New("sqlite store: no file lock on this platform")
