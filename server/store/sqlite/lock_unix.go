//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes the lock of the database at path: an exclusive flock on
// path+".lock", which the kernel releases when the process ends, however
// it ends. It returns ErrInUse when another process (or another Store of
// this one) holds it.
func lockFile(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrInUse
		}
		return nil, fmt.Errorf("lock %s.lock: %w", path, err)
	}
	return f.Close, nil // closing the file releases the lock
}

// errNoLock is lockFile's error where there is no file lock (not here).
var errNoLock = errors.New("sqlite store: no file lock on this platform")
