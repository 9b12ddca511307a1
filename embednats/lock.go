package embednats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the file in Options.Dir that a running server holds an
// exclusive lock on, with its process id inside for whoever is refused.
const LockFile = "LOCK"

// StoreInUseError is returned by Start when another server holds the
// store directory: two servers writing one JetStream store would corrupt
// it, so the second one must not even open it.
type StoreInUseError struct {
	// Dir is the store directory.
	Dir string
	// PID is the process holding it, as it wrote in the lock file; 0 when
	// it could not be read.
	PID int
}

func (e *StoreInUseError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("store directory %s is in use by another process", e.Dir)
	}
	return fmt.Sprintf("store directory %s is in use by another process (pid %d)", e.Dir, e.PID)
}

// lockStore takes the exclusive lock on dir's LockFile, creating dir if
// needed, or fails at once with a *StoreInUseError. The lock is the
// operating system's (flock) on the open file, so it goes with the process
// however that ends: a killed server leaves no stale lock behind. The
// returned function releases it.
func lockStore(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embednats: store directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embednats: lock file: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, &StoreInUseError{Dir: dir, PID: readPID(path)}
		}
		return nil, fmt.Errorf("embednats: lock %s: %w", path, err)
	}
	// The pid is for the message of the next process refused; failing to
	// write it costs only that detail.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}
