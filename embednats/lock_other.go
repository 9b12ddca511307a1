//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package embednats

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// flock does not lock where flock(2) is missing: a second server on the
// same store is then not refused. The supported platforms have flock.
func flock(*os.File) error { return nil }
