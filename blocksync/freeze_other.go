//go:build !linux

package blocksync

import "errors"

// Frozen is a frozen file system; freezing is Linux only.
type Frozen struct{}

// Freeze fails: FIFREEZE is Linux only.
func Freeze(mountPoint string) (*Frozen, error) {
	return nil, &LocalError{Path: mountPoint, Err: errors.New("freezing a file system is supported on Linux only")}
}

// Thaw does nothing.
func (f *Frozen) Thaw() error { return nil }
