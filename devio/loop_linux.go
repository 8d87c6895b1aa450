package devio

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

const (
	loopControlPath = "/dev/loop-control"
	// loopAttempts bounds the retries when another process takes the free
	// device between LOOP_CTL_GET_FREE and binding it (EBUSY).
	loopAttempts = 32
)

// loopConfigure is LOOP_CONFIGURE; tests replace it to take the path of
// kernels without it.
var loopConfigure = unix.IoctlLoopConfigure

// AttachLoop binds backing (a regular file, or a block device) to a free loop
// device: LOOP_CTL_GET_FREE, then LOOP_CONFIGURE, or on kernels before 5.8
// LOOP_SET_FD and LOOP_SET_STATUS64 (with LOOP_SET_BLOCK_SIZE and
// LOOP_SET_DIRECT_IO). A device that another process binds first (EBUSY) is
// given up for the next free one, a bounded number of times. The device is
// set up with LO_FLAGS_AUTOCLEAR; see Loop.
func AttachLoop(backing string, o LoopOptions) (*Loop, error) {
	l, err := attachLoop(backing, o)
	if err != nil {
		return nil, &Error{Op: "attach loop device to", Path: backing, Offset: -1, Err: err}
	}
	return l, nil
}

func attachLoop(backing string, o LoopOptions) (*Loop, error) {
	bs := o.BlockSize
	if bs == 0 {
		bs = 512
	}
	if bs < 512 || bs > os.Getpagesize() || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("block size %d is not a power of two from 512 to %d", o.BlockSize, os.Getpagesize())
	}
	flag := os.O_RDWR
	if o.ReadOnly {
		flag = os.O_RDONLY
	}
	fi, err := os.Stat(backing)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if !fi.Mode().IsRegular() && (fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0) {
		return nil, fmt.Errorf("%w: mode %v", ErrNotBlock, fi.Mode())
	}
	bf, err := os.OpenFile(backing, flag, 0)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	defer bf.Close() // the loop device keeps its own reference
	ctl, err := os.OpenFile(loopControlPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("loop devices unavailable: %w", err)
	}
	defer ctl.Close()

	var lastErr error
	for range loopAttempts {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, os.NewSyscallError("ioctl LOOP_CTL_GET_FREE", err)
		}
		path := "/dev/loop" + strconv.Itoa(n)
		dev, err := os.OpenFile(path, flag, 0)
		if err != nil {
			return nil, err
		}
		err = bindLoop(dev, bf, backing, bs, o)
		if err == nil {
			return &Loop{path: path, backing: backing, number: n, dev: dev}, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		lastErr = fmt.Errorf("%s: %w", path, err)
	}
	return nil, fmt.Errorf("no free loop device after %d attempts: %w", loopAttempts, lastErr)
}

// bindLoop binds the backing file bf to the loop device dev.
func bindLoop(dev, bf *os.File, backing string, bs int, o LoopOptions) error {
	var info unix.LoopInfo64
	info.Flags = unix.LO_FLAGS_AUTOCLEAR
	if o.ReadOnly {
		info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	if o.Direct {
		info.Flags |= unix.LO_FLAGS_DIRECT_IO
	}
	copy(info.File_name[:unix.LO_NAME_SIZE-1], backing)
	cfg := unix.LoopConfig{Fd: uint32(bf.Fd()), Size: uint32(bs), Info: info}
	err := loopConfigure(int(dev.Fd()), &cfg)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return os.NewSyscallError("ioctl LOOP_CONFIGURE", err)
	}
	// Before Linux 5.8: bind, then set status, block size and direct I/O,
	// undoing the binding if any step fails.
	if err := ioctlVal(dev, unix.LOOP_SET_FD, bf.Fd(), "ioctl LOOP_SET_FD"); err != nil {
		return err
	}
	info.Flags &^= unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_DIRECT_IO // not settable here
	err = unix.IoctlLoopSetStatus64(int(dev.Fd()), &info)
	if err != nil {
		err = os.NewSyscallError("ioctl LOOP_SET_STATUS64", err)
	}
	if err == nil && bs != 512 {
		err = ioctlVal(dev, unix.LOOP_SET_BLOCK_SIZE, uintptr(bs), "ioctl LOOP_SET_BLOCK_SIZE")
	}
	if err == nil && o.Direct {
		err = ioctlVal(dev, unix.LOOP_SET_DIRECT_IO, 1, "ioctl LOOP_SET_DIRECT_IO")
	}
	if err != nil {
		_ = ioctlVal(dev, unix.LOOP_CLR_FD, 0, "ioctl LOOP_CLR_FD")
		return err
	}
	return nil
}

func ioctlVal(f *os.File, req, val uintptr, name string) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, val)
	if errno != 0 {
		return os.NewSyscallError(name, errno)
	}
	return nil
}

// Detach unbinds the loop device (LOOP_CLR_FD) and closes it. If something
// else still has the device open (a mount, another Device), the kernel
// unbinds it when that closes. Detach is idempotent.
func (l *Loop) Detach() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dev == nil {
		return nil
	}
	err := ioctlVal(l.dev, unix.LOOP_CLR_FD, 0, "ioctl LOOP_CLR_FD")
	if errors.Is(err, unix.ENXIO) {
		err = nil // already unbound
	}
	if cerr := l.dev.Close(); err == nil {
		err = cerr
	}
	l.dev = nil
	if err != nil {
		return &Error{Op: "detach", Path: l.path, Offset: -1, Err: err}
	}
	return nil
}
