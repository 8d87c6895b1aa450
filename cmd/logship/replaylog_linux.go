package main

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blkDiscard issues BLKDISCARD for n bytes at start, as replay-log's
// discard_range does; a regular file or a device without discard refuses it.
func blkDiscard(f *os.File, start, n uint64) error {
	r := [2]uint64{start, n}
	if _, _, en := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r))); en != 0 {
		return en
	}
	return nil
}
