package parallel

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugepages maps the pages of b (aligned to a huge page, a multiple of
// one long) in with one system call (MADV_POPULATE_WRITE) instead of a
// page fault per page as the first read into it touches them: a page
// fault is cheap on bare metal, but in a virtual machine each one may
// cost an exit to the hypervisor, and a server fills tens of megabytes of
// fresh buffers at the start of every session. Where transparent huge
// pages are enabled for every mapping ("always", Debian's default), the
// aligned slab gets them if the kernel has them free.
//
// It does not ask for huge pages (MADV_HUGEPAGE): with the kernel's
// default defrag setting ("madvise") that makes every fault in the region
// reclaim and compact memory until a huge page is free, a stall a server
// must not take on a loaded host. In the kernel VM tier (qemu TCG, 512 MiB)
// it was the likely cause of guests that stopped making progress.
// The contents are not changed. This is advice: on a kernel without
// MADV_POPULATE_WRITE (before 5.14), nothing happens.
func hugepages(b []byte) {
	if len(b) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))&(hugePage-1) != 0 {
		return
	}
	unix.Madvise(b, unix.MADV_POPULATE_WRITE)
}
