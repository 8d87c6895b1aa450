package devio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Open opens the file or block device at path. See Options.
func Open(path string, o Options) (*Device, error) {
	if o.Create {
		o.Write, o.Grow = true, true
	}
	if o.Size < 0 {
		return nil, &Error{Op: "open", Path: path, Offset: -1, Err: fmt.Errorf("%w: negative size %d", ErrOutOfRange, o.Size)}
	}
	d := &Device{path: path, write: o.Write, direct: o.Direct, grow: o.Grow, discardOnly: o.DiscardOnly, zeroFill: o.forceZeroFill}
	f, created, err := d.open(o)
	if err == nil {
		d.f = f
		err = d.setup(o, created)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		if created && !errors.Is(err, ErrBusy) {
			os.Remove(path) // leave nothing half made (unless another opener now holds it)
		}
		return nil, &Error{Op: "open", Path: path, Offset: -1, Err: err}
	}
	if d.kind == Block {
		d.grow = false // a block device never grows
	}
	return d, nil
}

// open opens the path with the flags the options ask for, and reports
// whether it created the file (also when it then failed to open it).
func (d *Device) open(o Options) (f *os.File, created bool, err error) {
	fi, err := os.Stat(d.path)
	if errors.Is(err, os.ErrNotExist) && o.Create {
		// Create plainly first: O_DIRECT may be refused after the file exists.
		nf, cerr := os.OpenFile(d.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		switch {
		case cerr == nil:
			nf.Close()
			created = true
		case !errors.Is(cerr, os.ErrExist): // not a lost race
			return nil, false, unwrapPathError(cerr)
		}
		fi, err = os.Stat(d.path)
	}
	if err != nil {
		return nil, created, unwrapPathError(err)
	}
	flag := os.O_RDONLY
	if o.Write {
		flag = os.O_RDWR
	}
	if o.Direct {
		flag |= syscall.O_DIRECT
	}
	switch {
	case fi.Mode().IsRegular():
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		if o.Exclusive {
			flag |= os.O_EXCL // on a block device: claim it, or EBUSY
		}
	default:
		return nil, created, fmt.Errorf("%w: mode %v", ErrNotBlock, fi.Mode())
	}
	f, err = os.OpenFile(d.path, flag, 0)
	if err != nil {
		return nil, created, explainOpen(unwrapPathError(err), o)
	}
	return f, created, nil
}

func explainOpen(err error, o Options) error {
	switch {
	case errors.Is(err, unix.EBUSY) && o.Exclusive:
		return fmt.Errorf("%w: is mounted or in use (exclusive open refused): %w", ErrBusy, err)
	case errors.Is(err, unix.EINVAL) && o.Direct:
		return fmt.Errorf("O_DIRECT not supported here: %w", err)
	}
	return err
}

// setup finds out what was opened and takes the lock.
func (d *Device) setup(o Options, created bool) error {
	fd := int(d.f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		d.kind = Block
		size, err := unix.IoctlGetUint64(fd, unix.BLKGETSIZE64)
		if err != nil {
			return os.NewSyscallError("ioctl BLKGETSIZE64", err)
		}
		lbs, err := unix.IoctlGetInt(fd, unix.BLKSSZGET)
		if err != nil {
			return os.NewSyscallError("ioctl BLKSSZGET", err)
		}
		d.devSize, d.lbs = int64(size), lbs
		if o.Write {
			// The kernel opens a read-only block device for writing and
			// then fails every write; refuse up front instead.
			ro, err := unix.IoctlGetInt(fd, unix.BLKROGET)
			if err != nil {
				return os.NewSyscallError("ioctl BLKROGET", err)
			}
			if ro != 0 {
				return fmt.Errorf("%w: the block device is read-only", ErrReadOnly)
			}
		}
		return nil
	case unix.S_IFREG:
		d.kind = File
	default: // swapped between stat and open
		return fmt.Errorf("%w: file type %#o", ErrNotBlock, st.Mode&unix.S_IFMT)
	}
	if o.Exclusive {
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			if errors.Is(err, unix.EWOULDBLOCK) {
				return fmt.Errorf("%w: another open file holds its lock: %w", ErrBusy, err)
			}
			return os.NewSyscallError("flock", err)
		}
	}
	if created && o.Size > 0 {
		if err := unix.Ftruncate(fd, o.Size); err != nil {
			return os.NewSyscallError("ftruncate", err)
		}
		st.Size = o.Size
	}
	d.fileSize.Store(st.Size)
	d.lbs = 512
	if o.Direct {
		var sx unix.Statx_t
		if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &sx); err == nil &&
			sx.Mask&unix.STATX_DIOALIGN != 0 && sx.Dio_offset_align > 512 {
			d.lbs = int(sx.Dio_offset_align)
		}
	}
	return nil
}

// Sync flushes written data to stable storage (fdatasync). An error is
// sticky (ErrFailed).
func (d *Device) Sync() error {
	if f := d.failed.Load(); f != nil {
		return &Error{Op: "sync", Path: d.path, Offset: -1, Err: fmt.Errorf("%w: %w", ErrFailed, *f)}
	}
	if err := unix.Fdatasync(int(d.f.Fd())); err != nil {
		return d.fail("sync", -1, 0, os.NewSyscallError("fdatasync", err))
	}
	return nil
}

// discardChunk bounds the range of one ioctl or fallocate call, so that no
// single call runs for long.
const discardChunk = 1 << 30

// zeroChunk is the size of one write when Discard falls back to zeros.
const zeroChunk = 1 << 20

// zeroBuf is the shared zero buffer for the fallback: never written to,
// aligned for any logical block size.
var zeroBuf = sync.OnceValue(func() []byte { return AlignedBuffer(zeroChunk, 64<<10) })

// Discard makes length bytes at off read back as zeros, by the policy in the
// package documentation: BLKZEROOUT on a block device (BLKDISCARD with
// DiscardOnly), a punched hole in a regular file, and zeros written over the
// whole range where the kernel cannot do either. A range past Size fails with
// ErrOutOfRange and changes nothing. On a block device, or with Direct, off
// and length must be multiples of LogicalBlockSize.
func (d *Device) Discard(off, length int64) error {
	if err := d.checkWrite(off, length, nil, true); err != nil {
		return &Error{Op: "discard", Path: d.path, Offset: off, Length: length, Err: err}
	}
	if d.kind == Block && !d.direct && (off%int64(d.lbs) != 0 || length%int64(d.lbs) != 0) {
		return &Error{Op: "discard", Path: d.path, Offset: off, Length: length,
			Err: fmt.Errorf("%w: offset %d and length %d must be multiples of the logical block size %d", ErrUnaligned, off, length, d.lbs)}
	}
	if length == 0 {
		return nil
	}
	done, err := int64(0), error(nil)
	switch {
	case d.zeroFill:
		err = unix.EOPNOTSUPP
	case d.kind == Block && d.discardOnly:
		done, err = d.chunked(off, length, d.blkdiscard)
		switch {
		case err == nil:
			return nil
		case unsupported(err): // nothing happened: not a failure of the device
			return &Error{Op: "discard", Path: d.path, Offset: off + done, Length: length - done,
				Err: fmt.Errorf("device cannot discard (DiscardOnly): %w", err)}
		}
		return d.fail("discard", off+done, length-done, err)
	case d.kind == Block:
		done, err = d.chunked(off, length, d.blkzeroout)
	default:
		done, err = d.chunked(off, length, d.punch)
	}
	if err == nil {
		return nil
	}
	if !unsupported(err) {
		return d.fail("discard", off+done, length-done, err)
	}
	return d.writeZeros(off+done, length-done)
}

// chunked calls op on [off, off+length) in pieces of at most discardChunk
// and returns how much succeeded before the first error.
func (d *Device) chunked(off, length int64, op func(off, n int64) error) (done int64, err error) {
	for done < length {
		n := min(length-done, discardChunk)
		if err := op(off+done, n); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

func (d *Device) blkzeroout(off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	return ioctlPtr(d.f, unix.BLKZEROOUT, unsafe.Pointer(&r), "ioctl BLKZEROOUT")
}

func (d *Device) blkdiscard(off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	return ioctlPtr(d.f, unix.BLKDISCARD, unsafe.Pointer(&r), "ioctl BLKDISCARD")
}

func (d *Device) punch(off, n int64) error {
	if err := unix.Fallocate(int(d.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		return os.NewSyscallError("fallocate PUNCH_HOLE", err)
	}
	return nil
}

func ioctlPtr(f *os.File, req uintptr, arg unsafe.Pointer, name string) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(arg))
	if errno != 0 {
		return os.NewSyscallError(name, errno)
	}
	return nil
}

// unsupported tells whether err says the kernel method does not exist for
// this file or device, so that writing zeros is the way left.
func unsupported(err error) bool {
	for _, e := range []error{unix.EOPNOTSUPP, unix.ENOTTY, unix.ENOSYS, unix.EINVAL} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// writeZeros writes zeros over the whole range, zeroChunk bytes at a time.
func (d *Device) writeZeros(off, length int64) error {
	z := zeroBuf()
	for done := int64(0); done < length; {
		n := min(length-done, zeroChunk)
		if _, err := d.f.WriteAt(z[:n], off+done); err != nil {
			return d.fail("discard (writing zeros)", off+done, length-done, unwrapPathError(err))
		}
		done += n
		d.zeroFilled.Add(n)
	}
	return nil
}
