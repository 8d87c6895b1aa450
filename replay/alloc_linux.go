package replay

import (
	"golang.org/x/sys/unix"

	"github.com/logship/logship/devio"
)

// allocate reserves the blocks of [off, off+n) of a regular file target
// ahead of the window's writes (fallocate, keeping the size), so that the
// file system allocates the window's extents in one call instead of
// block by block as the writes come. It is advice: errors are ignored
// (some file systems refuse it, and the writes then allocate as usual).
func allocate(t Target, off, n int64) {
	d, ok := t.(*devio.Device)
	if !ok || d.Kind() != devio.File {
		return
	}
	unix.Fallocate(int(d.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
}
