package devio

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dmControlPath is the device-mapper control node every dm ioctl goes to.
const dmControlPath = "/dev/mapper/control"

// dmIoctl issues one device-mapper ioctl with buf as its argument. Tests
// replace it with a fake kernel.
var dmIoctl = func(req uintptr, buf []byte) error {
	f, err := os.OpenFile(dmControlPath, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("device-mapper is not available (no %s; is the dm_mod module loaded?): %w", dmControlPath, err)
		}
		return err
	}
	defer f.Close()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// DMMessage sends message to the target at sector 0 of the device-mapper
// device called name (DM_TARGET_MSG), as `dmsetup message NAME 0 MESSAGE`
// does. The target splits the message into words at white space, and takes
// a backslash to escape the next character.
func DMMessage(name, message string) error {
	b, err := encodeTargetMsg(name, 0, message)
	if err == nil {
		err = dmIoctl(dmTargetMsg, b)
	}
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			err = fmt.Errorf("no such device-mapper device: %w", err)
		}
		return &Error{Op: "dm message " + fmt.Sprintf("%q", message) + " to", Path: name, Offset: -1, Err: err}
	}
	return nil
}

// DMTargets returns every target of the live table of the device-mapper
// device called name with its status line (DM_TABLE_STATUS), as `dmsetup
// status NAME` prints them.
func DMTargets(name string) ([]DMTarget, error) {
	for size := dmStatusBufInitial; ; size *= 2 {
		b, err := encodeStatus(name, size)
		if err == nil {
			err = dmIoctl(dmTableStatus, b)
		}
		var targets []DMTarget
		full := false
		if err == nil {
			targets, full, err = decodeStatus(b)
		}
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				err = fmt.Errorf("no such device-mapper device: %w", err)
			}
			return nil, &Error{Op: "dm status", Path: name, Offset: -1, Err: err}
		}
		if !full {
			return targets, nil
		}
		if size >= dmStatusBufMax {
			return nil, &Error{Op: "dm status", Path: name, Offset: -1, Err: fmt.Errorf("status does not fit in %d bytes", size)}
		}
	}
}
