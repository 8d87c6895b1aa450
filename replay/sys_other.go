//go:build !linux

package replay

// allocate does nothing where fallocate does not exist.
func allocate(t Target, off, n int64) {}

// newWriteback returns nil: there is no sync_file_range.
func newWriteback(t Target) *writeback { return nil }

func startWriteback(fd int, off, n int64) {}

// buffers returns n heap buffers of size bytes, aligned to bufAlign.
func buffers(n, size int) ([][]byte, func()) { return heapBuffers(n, size), func() {} }
