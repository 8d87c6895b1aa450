package parallel

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugepages asks the kernel to back b (aligned to a huge page, a multiple
// of one long) with transparent huge pages (MADV_HUGEPAGE: with
// /sys/kernel/mm/transparent_hugepage/enabled at "madvise", the usual
// default, nothing else gets them) and maps its pages in with one system
// call (MADV_POPULATE_WRITE) instead of a page fault per page as the first
// read into it touches them: a page fault is cheap on bare metal, but in a
// virtual machine each one may cost an exit to the hypervisor, and a
// server fills tens of megabytes of fresh buffers at the start of every
// session. The contents are not changed. Both are advice: on a kernel
// without them (MADV_POPULATE_WRITE came in 5.14), nothing happens.
func hugepages(b []byte) {
	if len(b) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))&(hugePage-1) != 0 {
		return
	}
	unix.Madvise(b, unix.MADV_HUGEPAGE)
	unix.Madvise(b, unix.MADV_POPULATE_WRITE)
}
