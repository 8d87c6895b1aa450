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

// newWriteback returns a writeback for t, or nil where it does not apply:
// t is no devio.Device, or was opened with O_DIRECT (nothing waits in the
// page cache).
func newWriteback(t Target) *writeback {
	d, ok := t.(*devio.Device)
	if !ok {
		return nil
	}
	fd := int(d.Fd())
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_DIRECT != 0 {
		return nil
	}
	return &writeback{fd: fd, spans: make(chan span, 1)}
}

// startWriteback starts writing the dirty pages of [off, off+n) to the
// disk and does not wait for them (sync_file_range SYNC_FILE_RANGE_WRITE).
// It neither consumes nor hides a write error: the next fdatasync reports
// it.
func startWriteback(fd int, off, n int64) {
	unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// hugePage is the size of a transparent huge page on x86-64 and arm64 (4
// KiB base pages).
const hugePage = 2 << 20

// buffers returns n buffers of size bytes, aligned to bufAlign, and the
// function that releases them, to be called once none is in use. They are
// cut from one anonymous mapping aligned to a huge page: where
// transparent huge pages are enabled for every mapping ("always"), the
// first touch of a buffer then costs one page fault per 2 MiB instead of
// one per 4 KiB if the kernel has huge pages free, which counts where
// page faults are dear (in a virtual machine). It does not ask for them
// (MADV_HUGEPAGE): with the default defrag setting that makes faults
// compact memory until one is free, a stall not worth a replay's few
// megabytes. Without such a mapping, buffers come from the heap.
func buffers(n, size int) ([][]byte, func()) {
	step := (size + bufAlign - 1) &^ (bufAlign - 1)
	m, err := unix.Mmap(-1, 0, n*step+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return heapBuffers(n, size), func() {}
	}
	a := alignUp(m, hugePage)
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = a[i*step : i*step+size : i*step+size]
	}
	return bufs, func() { unix.Munmap(m) }
}
