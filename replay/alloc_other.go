//go:build !linux

package replay

// allocate does nothing where fallocate does not exist.
func allocate(t Target, off, n int64) {}
