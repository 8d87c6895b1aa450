package blocksync

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The file system freeze ioctls (linux/fs.h): _IOWR('X', 119, int) and
// _IOWR('X', 120, int).
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

// Frozen is a file system frozen with FIFREEZE: writes to it block, and
// its device holds a consistent state, until Thaw.
type Frozen struct {
	dir *os.File
}

// Freeze freezes the file system mounted at mountPoint (FIFREEZE on the
// directory), flushing it first, as fsfreeze -f does.
func Freeze(mountPoint string) (*Frozen, error) {
	d, err := os.Open(mountPoint)
	if err != nil {
		return nil, &LocalError{Path: mountPoint, Err: err}
	}
	if err := ioctlNoArg(d, ioctlFIFREEZE); err != nil {
		d.Close()
		return nil, &LocalError{Path: mountPoint, Err: fmt.Errorf("freezing the file system (FIFREEZE): %w", err)}
	}
	return &Frozen{dir: d}, nil
}

// Thaw thaws the file system (FITHAW).
func (f *Frozen) Thaw() error {
	err := ioctlNoArg(f.dir, ioctlFITHAW)
	f.dir.Close()
	if err != nil {
		return &LocalError{Path: f.dir.Name(), Err: fmt.Errorf("thawing the file system (FITHAW): %w", err)}
	}
	return nil
}

func ioctlNoArg(f *os.File, req uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, 0)
	if errno != 0 {
		return os.NewSyscallError("ioctl", errno)
	}
	return nil
}
