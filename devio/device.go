package devio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Kind tells a regular file from a block device.
type Kind int

// The kinds of Device.
const (
	File  Kind = iota // a regular file
	Block             // a block device (including loop and device-mapper devices)
)

// String returns "file" or "block".
func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Block:
		return "block"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Options says how Open opens a device. The zero value opens read-only,
// buffered, shared.
type Options struct {
	// Write opens read-write. Without it WriteAt and Discard fail with ErrReadOnly.
	Write bool
	// Direct opens with O_DIRECT. Offsets, lengths and buffer addresses must
	// then be multiples of LogicalBlockSize, else the call fails with
	// ErrUnaligned.
	Direct bool
	// Exclusive opens a block device with O_EXCL (refused with ErrBusy while
	// it is mounted or otherwise held) and locks a regular file with
	// flock(LOCK_EX|LOCK_NB) (ErrBusy while another open file holds it).
	Exclusive bool
	// Create creates a regular file when the path does not exist. It implies
	// Write and Grow.
	Create bool
	// Size, with Create, is the size a newly created file is truncated to
	// (sparse). An existing file keeps its size.
	Size int64
	// Grow lets WriteAt extend a regular file past its end. Without it (and
	// without Create) a file behaves like a block device of fixed size.
	Grow bool
	// DiscardOnly makes Discard on a block device issue BLKDISCARD (unmap)
	// instead of BLKZEROOUT: the range then need not read back as zeros, and
	// a device that cannot discard reports an error instead of being zeroed.
	// It changes nothing for regular files, whose holes always read as zeros.
	DiscardOnly bool

	// forceZeroFill makes Discard skip the kernel methods and write zeros, as
	// it does when they are unsupported. For tests.
	forceZeroFill bool
}

// Sentinel errors, for errors.Is.
var (
	// ErrUnaligned: with Direct (or for Discard on a block device), an offset,
	// length or buffer address is not a multiple of LogicalBlockSize.
	ErrUnaligned = errors.New("unaligned for direct I/O")
	// ErrOutOfRange: the range is negative or ends past the device's size.
	ErrOutOfRange = errors.New("range out of bounds")
	// ErrBusy: an exclusive open was refused; the device is mounted or in
	// use, or another process holds the file's lock.
	ErrBusy = errors.New("device busy")
	// ErrNotBlock: the path is neither a block device nor a regular file.
	ErrNotBlock = errors.New("not a block device or regular file")
	// ErrReadOnly: a write or discard on a Device opened without Write.
	ErrReadOnly = errors.New("device opened read-only")
	// ErrFailed: an earlier write, discard or sync on this Device failed, so
	// what it holds is unknown; reopen it and redo the work.
	ErrFailed = errors.New("device failed earlier")
	// ErrUnsupported: devio works on Linux only.
	ErrUnsupported = errors.New("devio: unsupported platform (Linux only)")
)

// Error records a failed operation on a device: the operation, the path and,
// where there is one, the byte range.
type Error struct {
	Op     string // "open", "read", "write", "discard", "sync", "digest", ...
	Path   string
	Offset int64 // start of the range; -1 when there is none
	Length int64 // length of the range in bytes
	Err    error
}

func (e *Error) Error() string {
	s := "devio: " + e.Op + " " + e.Path
	if e.Offset >= 0 {
		s += " at offset " + strconv.FormatInt(e.Offset, 10) + " (+" + strconv.FormatInt(e.Length, 10) + " bytes)"
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Device is an open file or block device. Its methods may be called from
// several goroutines at once, except Close, which must come after all others
// have returned.
type Device struct {
	f           *os.File
	path        string
	kind        Kind
	write       bool
	direct      bool
	grow        bool
	discardOnly bool
	zeroFill    bool  // always discard by writing zeros (tests)
	lbs         int   // logical block size
	devSize     int64 // block devices: BLKGETSIZE64 at open

	fileSize atomic.Int64          // files: last size seen (fstat or a growing write)
	failed   atomic.Pointer[error] // sticky: first kernel error of a write, discard or sync

	zeroFilled atomic.Int64 // bytes Discard has zeroed by writing (tests)
}

// Path returns the path the device was opened with.
func (d *Device) Path() string { return d.path }

// Kind returns File or Block.
func (d *Device) Kind() Kind { return d.kind }

// Size returns the size in bytes: BLKGETSIZE64 (read at Open) for a block
// device, the current file size (fstat) for a regular file. Should fstat
// fail, it returns the last size it saw.
func (d *Device) Size() int64 {
	if d.kind == Block {
		return d.devSize
	}
	n, err := d.statSize()
	if err != nil {
		return d.fileSize.Load()
	}
	return n
}

func (d *Device) statSize() (int64, error) {
	fi, err := d.f.Stat()
	if err != nil {
		return 0, err
	}
	d.fileSize.Store(fi.Size())
	return fi.Size(), nil
}

// LogicalBlockSize returns the unit of direct I/O: BLKSSZGET for a block
// device. For a regular file it is 512, the smallest sector size and what the
// journal format counts in, unless the file was opened with Direct and the
// file system reports a larger direct-I/O offset alignment (statx
// STATX_DIOALIGN), which is then returned.
func (d *Device) LogicalBlockSize() int { return d.lbs }

// Fd returns the file descriptor. It stays valid until Close.
func (d *Device) Fd() uintptr { return d.f.Fd() }

// Close closes the device, releasing an exclusive open or lock.
func (d *Device) Close() error {
	if err := d.f.Close(); err != nil {
		return &Error{Op: "close", Path: d.path, Offset: -1, Err: err}
	}
	return nil
}

// ReadAt reads len(p) bytes at off, with io.ReaderAt semantics: fewer bytes
// come only with an error, io.EOF at the end of the device.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, d.errf("read", off, len(p), fmt.Errorf("%w: negative offset", ErrOutOfRange))
	}
	if err := d.checkAligned(off, int64(len(p)), p); err != nil {
		return 0, d.errf("read", off, len(p), err)
	}
	n, err := d.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = d.errf("read", off, len(p), unwrapPathError(err))
	}
	return n, err
}

// WriteAt writes len(p) bytes at off. On a block device, and on a regular
// file opened without Create or Grow, a write that would end past Size fails
// with ErrOutOfRange and writes nothing. An error from the kernel makes the
// Device fail every later write, discard and sync (ErrFailed).
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if err := d.checkWrite(off, int64(len(p)), p, !d.grow); err != nil {
		return 0, d.errf("write", off, len(p), err)
	}
	n, err := d.f.WriteAt(p, off)
	if err != nil {
		return n, d.fail("write", off, int64(len(p)), unwrapPathError(err))
	}
	if d.kind == File {
		end := off + int64(n)
		for {
			cur := d.fileSize.Load()
			if end <= cur || d.fileSize.CompareAndSwap(cur, end) {
				break
			}
		}
	}
	return n, nil
}

// checkWrite validates a write or discard of length bytes at off before any
// of it reaches the kernel. p is the buffer, nil for a discard.
func (d *Device) checkWrite(off, length int64, p []byte, bounded bool) error {
	if !d.write {
		return ErrReadOnly
	}
	if f := d.failed.Load(); f != nil {
		return fmt.Errorf("%w: %w", ErrFailed, *f)
	}
	if off < 0 || length < 0 || off > (1<<63-1)-length {
		return fmt.Errorf("%w: negative or overflowing range", ErrOutOfRange)
	}
	if err := d.checkAligned(off, length, p); err != nil {
		return err
	}
	if bounded {
		size := d.devSize
		if d.kind == File {
			var err error
			if size, err = d.statSize(); err != nil {
				return err
			}
		}
		if off+length > size {
			return fmt.Errorf("%w: ends at %d, past the size %d", ErrOutOfRange, off+length, size)
		}
	}
	return nil
}

// checkAligned enforces the O_DIRECT rules: offset, length and buffer address
// multiples of the logical block size.
func (d *Device) checkAligned(off, length int64, p []byte) error {
	if !d.direct {
		return nil
	}
	bs := int64(d.lbs)
	if off%bs != 0 || length%bs != 0 {
		return fmt.Errorf("%w: offset %d and length %d must be multiples of %d", ErrUnaligned, off, length, bs)
	}
	if len(p) > 0 && uintptr(unsafe.Pointer(&p[0]))%uintptr(bs) != 0 {
		return fmt.Errorf("%w: buffer address %p is not a multiple of %d (use AlignedBuffer)", ErrUnaligned, &p[0], bs)
	}
	return nil
}

// fail records err as the Device's sticky error (if it is the first) and
// returns it with the operation and range.
func (d *Device) fail(op string, off, length int64, err error) error {
	d.failed.CompareAndSwap(nil, &err)
	return &Error{Op: op, Path: d.path, Offset: off, Length: length, Err: err}
}

func (d *Device) errf(op string, off int64, length int, err error) error {
	return &Error{Op: op, Path: d.path, Offset: off, Length: int64(length), Err: err}
}

// unwrapPathError strips the *os.PathError that os.File adds, since Error
// already names the path.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Digest returns the xxhash64 of the length bytes at off, read through buf
// (a nil or empty buf gets a 1 MiB aligned buffer). With Direct, buf must be
// aligned and its length, off and length multiples of LogicalBlockSize. A
// range past Size fails with ErrOutOfRange.
func (d *Device) Digest(off, length int64, buf []byte) (uint64, error) {
	if off < 0 || length < 0 || off > (1<<63-1)-length {
		return 0, &Error{Op: "digest", Path: d.path, Offset: off, Length: length, Err: fmt.Errorf("%w: negative or overflowing range", ErrOutOfRange)}
	}
	if size := d.Size(); off+length > size {
		return 0, &Error{Op: "digest", Path: d.path, Offset: off, Length: length, Err: fmt.Errorf("%w: ends at %d, past the size %d", ErrOutOfRange, off+length, size)}
	}
	if len(buf) == 0 {
		buf = AlignedBuffer(1<<20, max(d.lbs, 4096))
	}
	if d.direct && len(buf)%d.lbs != 0 {
		return 0, &Error{Op: "digest", Path: d.path, Offset: off, Length: length, Err: fmt.Errorf("%w: buffer length %d is not a multiple of %d", ErrUnaligned, len(buf), d.lbs)}
	}
	h := xxhash.New()
	for pos, end := off, off+length; pos < end; {
		p := buf[:min(int64(len(buf)), end-pos)]
		n, err := d.ReadAt(p, pos)
		if err == io.EOF && n == len(p) {
			err = nil
		}
		if err == io.EOF {
			err = &Error{Op: "digest", Path: d.path, Offset: pos, Length: int64(len(p)), Err: io.ErrUnexpectedEOF}
		}
		if err != nil {
			return 0, err
		}
		_, _ = h.Write(p)
		pos += int64(n)
	}
	return h.Sum64(), nil
}

// AlignedBuffer returns a zeroed buffer of size bytes whose address is a
// multiple of align, for O_DIRECT. align must be a power of two; it panics
// otherwise. The Go heap does not move objects, so the alignment holds for
// the life of the buffer.
func AlignedBuffer(size, align int) []byte {
	if align <= 0 || align&(align-1) != 0 {
		panic("devio: AlignedBuffer: alignment " + strconv.Itoa(align) + " is not a power of two")
	}
	if size < 0 {
		panic("devio: AlignedBuffer: negative size")
	}
	if size == 0 {
		return []byte{}
	}
	b := make([]byte, size+align-1)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) & uintptr(align-1)); r != 0 {
		skip = align - r
	}
	return b[skip : skip+size : skip+size]
}
