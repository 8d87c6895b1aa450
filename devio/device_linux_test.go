package devio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/logship/logship/digest"
)

func TestKindString(t *testing.T) {
	t.Parallel()
	for k, want := range map[Kind]string{File: "file", Block: "block", Kind(7): "Kind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestAlignedBuffer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ size, align int }{
		{0, 512}, {1, 1}, {512, 512}, {4096, 4096}, {1000, 4096}, {1 << 20, 64 << 10}, {3, 8},
	} {
		b := AlignedBuffer(tc.size, tc.align)
		if len(b) != tc.size || cap(b) != tc.size {
			t.Errorf("AlignedBuffer(%d, %d): len %d cap %d", tc.size, tc.align, len(b), cap(b))
		}
		if tc.size > 0 && uintptr(unsafe.Pointer(&b[0]))%uintptr(tc.align) != 0 {
			t.Errorf("AlignedBuffer(%d, %d) at %p: not aligned", tc.size, tc.align, &b[0])
		}
		if !digest.IsZero(b) {
			t.Errorf("AlignedBuffer(%d, %d) not zeroed", tc.size, tc.align)
		}
	}
	for _, align := range []int{0, -4, 3, 768} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AlignedBuffer(8, %d) did not panic", align)
				}
			}()
			AlignedBuffer(8, align)
		}()
	}
}

func TestOpenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		path     string
		o        Options
		wantErr  error
		wantSize int64
	}{
		{"create sparse", filepath.Join(dir, "new"), Options{Create: true, Size: 64 << 20}, nil, 64 << 20},
		{"create empty", filepath.Join(dir, "empty"), Options{Create: true}, nil, 0},
		{"create keeps existing", existing, Options{Create: true, Size: 1 << 20}, nil, 5},
		{"read-only existing", existing, Options{}, nil, 5},
		{"missing", filepath.Join(dir, "missing"), Options{Write: true}, os.ErrNotExist, 0},
		{"negative size", filepath.Join(dir, "neg"), Options{Create: true, Size: -1}, ErrOutOfRange, 0},
		{"directory", dir, Options{}, ErrNotBlock, 0},
		{"char device", "/dev/null", Options{Write: true}, ErrNotBlock, 0},
		{"create direct", filepath.Join(dir, "direct"), Options{Create: true, Direct: true, Size: 1 << 20}, nil, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(tc.path, tc.o)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open(%s, %+v) = %v, want %v", tc.path, tc.o, err, tc.wantErr)
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Path != tc.path {
					t.Errorf("error %v does not name the path %s", err, tc.path)
				}
				if tc.o.Create {
					if _, serr := os.Stat(tc.path); !errors.Is(serr, os.ErrNotExist) {
						t.Errorf("failed Create left %s behind", tc.path)
					}
				}
				return
			}
			defer d.Close()
			if d.Kind() != File || d.Path() != tc.path || d.Size() != tc.wantSize || d.LogicalBlockSize() < 512 {
				t.Errorf("kind %v path %s size %d lbs %d, want file %s %d >=512", d.Kind(), d.Path(), d.Size(), d.LogicalBlockSize(), tc.path, tc.wantSize)
			}
			if tc.o.Create && tc.path != existing && stBlocks(t, tc.path) != 0 {
				t.Errorf("new file has %d blocks, want sparse", stBlocks(t, tc.path))
			}
		})
	}
}

// target is a device under test: a file or a loop device, with the path of
// the file that holds its bytes (read back independently of the Device).
type target struct {
	name    string
	kind    Kind
	lbs     int
	direct  bool
	size    int64
	path    string
	backing string
}

func targets(t *testing.T) []target {
	const size = 8 << 20
	var ts []target
	for _, direct := range []bool{false, true} {
		p := sparseFile(t, size)
		name := "file"
		if direct {
			name += "/direct"
		}
		ts = append(ts, target{name: name, kind: File, lbs: 512, direct: direct, size: size, path: p, backing: p})
	}
	for _, bs := range []int{512, 4096} {
		for _, direct := range []bool{false, true} {
			l, backing := newLoop(t, size, LoopOptions{BlockSize: bs})
			name := "loop" + map[int]string{512: "512", 4096: "4096"}[bs]
			if direct {
				name += "/direct"
			}
			ts = append(ts, target{name: name, kind: Block, lbs: bs, direct: direct, size: size, path: l.Path(), backing: backing})
		}
	}
	return ts
}

func TestDevice(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			d := mustOpen(t, tg.path, Options{Write: true, Direct: tg.direct})
			if d.Kind() != tg.kind || d.Size() != tg.size || d.LogicalBlockSize() != tg.lbs {
				t.Fatalf("kind %v size %d lbs %d, want %v %d %d", d.Kind(), d.Size(), d.LogicalBlockSize(), tg.kind, tg.size, tg.lbs)
			}
			bs := tg.lbs
			data := pattern(4*bs, 0x5a)
			buf := AlignedBuffer(len(data), bs)
			copy(buf, data)
			off := int64(3 * bs)
			if n, err := d.WriteAt(buf, off); err != nil || n != len(buf) {
				t.Fatalf("WriteAt: %d, %v", n, err)
			}
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
			got := AlignedBuffer(len(data), bs)
			if n, err := d.ReadAt(got, off); err != nil || n != len(got) || !bytes.Equal(got, data) {
				t.Fatalf("ReadAt: %d, %v, equal %v", n, err, bytes.Equal(got, data))
			}
			if !bytes.Equal(readBack(t, tg.backing, off, len(data)), data) {
				t.Fatal("backing file does not hold what was written")
			}

			// Digest matches xxhash of the same bytes read independently.
			whole := readBack(t, tg.backing, 0, int(tg.size))
			for _, r := range []struct{ off, n int64 }{{0, tg.size}, {off, int64(len(data))}, {int64(bs), int64(bs)}, {0, 0}} {
				for _, blen := range []int{0, bs, 64 * bs} {
					var dbuf []byte
					if blen > 0 {
						dbuf = AlignedBuffer(blen, bs)
					}
					h, err := d.Digest(r.off, r.n, dbuf)
					if err != nil {
						t.Fatalf("Digest(%d, %d, %d-byte buf): %v", r.off, r.n, blen, err)
					}
					if want := xxhash.Sum64(whole[r.off : r.off+r.n]); h != want {
						t.Errorf("Digest(%d, %d, %d-byte buf) = %x, want %x", r.off, r.n, blen, h, want)
					}
				}
			}
			if _, err := d.Digest(tg.size-int64(bs), int64(2*bs), nil); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("Digest past the end: %v, want ErrOutOfRange", err)
			}

			// Reading at and past the end: io.EOF.
			if n, err := d.ReadAt(AlignedBuffer(bs, bs), tg.size); n != 0 || err != io.EOF {
				t.Errorf("ReadAt(size) = %d, %v, want 0, EOF", n, err)
			}
			if _, err := d.ReadAt(buf, -int64(bs)); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("ReadAt(negative) = %v, want ErrOutOfRange", err)
			}
		})
	}
}

func TestDirectAlignment(t *testing.T) {
	for _, tg := range targets(t) {
		if !tg.direct {
			continue
		}
		t.Run(tg.name, func(t *testing.T) {
			d := mustOpen(t, tg.path, Options{Write: true, Direct: true})
			bs := tg.lbs
			aligned := AlignedBuffer(2*bs, bs)
			copy(aligned, pattern(2*bs, 1))
			if _, err := d.WriteAt(aligned, int64(bs)); err != nil {
				t.Fatalf("aligned write: %v", err)
			}
			misaddr := AlignedBuffer(2*bs+1, bs)[1:] // right length, odd address
			for _, tc := range []struct {
				name string
				p    []byte
				off  int64
			}{
				{"offset", aligned, int64(bs) / 2},
				{"offset by one", aligned, int64(bs) + 1},
				{"length", aligned[:bs-1], int64(bs)},
				{"address", misaddr, int64(bs)},
			} {
				n, err := d.WriteAt(tc.p, tc.off)
				if !errors.Is(err, ErrUnaligned) || n != 0 {
					t.Errorf("WriteAt %s: %d, %v, want ErrUnaligned", tc.name, n, err)
				}
				if _, err := d.ReadAt(tc.p, tc.off); !errors.Is(err, ErrUnaligned) {
					t.Errorf("ReadAt %s: %v, want ErrUnaligned", tc.name, err)
				}
				if tc.name == "address" {
					continue // Discard takes no buffer
				}
				if err := d.Discard(tc.off, int64(len(tc.p))); !errors.Is(err, ErrUnaligned) {
					t.Errorf("Discard %s: %v, want ErrUnaligned", tc.name, err)
				}
			}
			if _, err := d.Digest(int64(bs), int64(bs), AlignedBuffer(bs+1, bs)); !errors.Is(err, ErrUnaligned) {
				t.Errorf("Digest with odd buffer length: %v, want ErrUnaligned", err)
			}
			// Nothing of the refused calls reached the device.
			if got := readBack(t, tg.backing, int64(bs), 2*bs); !bytes.Equal(got, aligned) {
				t.Error("refused unaligned calls changed the data")
			}
			// The error names path and offset.
			_, err := d.WriteAt(aligned, 1)
			var e *Error
			if !errors.As(err, &e) || e.Path != tg.path || e.Offset != 1 || e.Op != "write" {
				t.Errorf("error %v: want *Error naming write, %s, offset 1", err, tg.path)
			}
		})
	}
}

func TestWritePastEnd(t *testing.T) {
	const size = 1 << 20
	l, _ := newLoop(t, size, LoopOptions{})
	for _, tc := range []struct {
		name    string
		path    string
		o       Options
		wantErr error // nil: the write is allowed and grows the file
	}{
		{"block", l.Path(), Options{Write: true}, ErrOutOfRange},
		{"block direct", l.Path(), Options{Write: true, Direct: true}, ErrOutOfRange},
		{"file fixed", sparseFile(t, size), Options{Write: true}, ErrOutOfRange},
		{"file grow", sparseFile(t, size), Options{Write: true, Grow: true}, nil},
		{"file create", sparseFile(t, size), Options{Create: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustOpen(t, tc.path, tc.o)
			last := AlignedBuffer(4096, 4096)
			copy(last, pattern(4096, 9))
			if _, err := d.WriteAt(last, size-4096); err != nil {
				t.Fatal(err)
			}
			spill := AlignedBuffer(8192, 4096)
			copy(spill, pattern(8192, 3))
			n, err := d.WriteAt(spill, size-4096)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("WriteAt across the end: %d, %v, want %v", n, err, tc.wantErr)
			}
			got := AlignedBuffer(4096, 4096)
			if _, rerr := d.ReadAt(got, size-4096); rerr != nil {
				t.Fatal(rerr)
			}
			if tc.wantErr == nil {
				if d.Size() != size+4096 || !bytes.Equal(got, spill[:4096]) {
					t.Errorf("grown file: size %d, want %d, data written %v", d.Size(), size+4096, bytes.Equal(got, spill[:4096]))
				}
				return
			}
			if n != 0 || !bytes.Equal(got, last) || d.Size() != size {
				t.Errorf("refused write: n %d, size %d, data untouched %v", n, d.Size(), bytes.Equal(got, last))
			}
			var e *Error
			if !errors.As(err, &e) || e.Path != tc.path || e.Offset != size-4096 {
				t.Errorf("error %v does not name path %s and offset %d", err, tc.path, size-4096)
			}
			if _, err := d.WriteAt(last, size); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("WriteAt at the end: %v, want ErrOutOfRange", err)
			}
			if _, err := d.WriteAt(last, -4096); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("WriteAt negative: %v, want ErrOutOfRange", err)
			}
			// A refused write is not a failure of the device.
			if _, err := d.WriteAt(last, 0); err != nil {
				t.Errorf("WriteAt after a refused write: %v", err)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	p := sparseFile(t, 1<<20)
	d := mustOpen(t, p, Options{})
	if _, err := d.WriteAt([]byte("x"), 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("WriteAt on read-only: %v", err)
	}
	if err := d.Discard(0, 512); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Discard on read-only: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close: %v, want os.ErrClosed", err)
	}
}

func TestDiscardFile(t *testing.T) {
	t.Parallel()
	const size = 16 << 20
	for _, direct := range []bool{false, true} {
		t.Run(map[bool]string{false: "buffered", true: "direct"}[direct], func(t *testing.T) {
			p := sparseFile(t, size)
			d := mustOpen(t, p, Options{Write: true, Direct: direct})
			data := AlignedBuffer(size, 4096)
			copy(data, pattern(size, 7))
			if _, err := d.WriteAt(data, 0); err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
			before := stBlocks(t, p)
			off, n := int64(1<<20), int64(8<<20)
			if err := d.Discard(off, n); err != nil {
				t.Fatal(err)
			}
			after := stBlocks(t, p)
			if after > before-n/512 {
				t.Errorf("st_blocks %d -> %d: no hole of %d sectors punched", before, after, n/512)
			}
			if d.Size() != size {
				t.Errorf("size changed to %d", d.Size())
			}
			got := readBack(t, p, 0, size)
			if !digest.IsZero(got[off:off+n]) || !bytes.Equal(got[:off], data[:off]) || !bytes.Equal(got[off+n:], data[off+n:]) {
				t.Error("discarded range does not read zero, or data outside it changed")
			}
			if z := d.zeroFilled.Load(); z != 0 {
				t.Errorf("hole punch fell back to writing %d zero bytes", z)
			}
			if !direct { // unaligned ranges are fine on a buffered file
				if err := d.Discard(off+n+100, 1000); err != nil {
					t.Fatal(err)
				}
				if !digest.IsZero(readBack(t, p, off+n+100, 1000)) || !bytes.Equal(readBack(t, p, off+n+1100, 10), data[off+n+1100:off+n+1110]) {
					t.Error("unaligned discard wrong")
				}
			}
			if err := d.Discard(size-4096, 8192); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("Discard past the end: %v, want ErrOutOfRange", err)
			}
			if !bytes.Equal(readBack(t, p, size-4096, 4096), data[size-4096:]) {
				t.Error("refused discard changed data")
			}
			if err := d.Discard(0, 0); err != nil {
				t.Errorf("empty discard: %v", err)
			}
		})
	}
}

func TestDiscardLoop(t *testing.T) {
	const size = 8 << 20
	for _, tc := range []struct {
		name string
		bs   int
		o    Options
	}{
		{"512", 512, Options{Write: true}},
		{"4096", 4096, Options{Write: true}},
		{"4096/direct", 4096, Options{Write: true, Direct: true}},
		{"512/discard-only", 512, Options{Write: true, DiscardOnly: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, backing := newLoop(t, size, LoopOptions{BlockSize: tc.bs})
			d := mustOpen(t, l.Path(), tc.o)
			data := AlignedBuffer(size, 4096)
			copy(data, pattern(size, 11))
			if _, err := d.WriteAt(data, 0); err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
			off, n := int64(5*tc.bs), int64(3<<20)
			if err := d.Discard(off, n); err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
			got := AlignedBuffer(size, 4096)
			if _, err := d.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			// A loop device discards by punching holes in its backing file,
			// so even DiscardOnly reads back zeros here.
			if !digest.IsZero(got[off:off+n]) || !bytes.Equal(got[:off], data[:off]) || !bytes.Equal(got[off+n:], data[off+n:]) {
				t.Error("device: discarded range not zero, or data outside it changed")
			}
			if !digest.IsZero(readBack(t, backing, off, int(n))) {
				t.Error("backing file: discarded range not zero")
			}
			if z := d.zeroFilled.Load(); z != 0 {
				t.Errorf("fell back to writing %d zero bytes", z)
			}
			if err := d.Discard(off+1, int64(tc.bs)); !errors.Is(err, ErrUnaligned) {
				t.Errorf("unaligned Discard on a block device: %v, want ErrUnaligned", err)
			}
			if err := d.Discard(size-int64(tc.bs), int64(2*tc.bs)); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("Discard past the end: %v, want ErrOutOfRange", err)
			}
			if _, err := d.ReadAt(got[:tc.bs], size-int64(tc.bs)); err != nil || !bytes.Equal(got[:tc.bs], data[size-tc.bs:]) {
				t.Errorf("refused discard changed the last block (%v)", err)
			}
		})
	}
}

// TestDiscardZeroFillLarge forces the last-resort path over a range larger
// than the 128 MiB that replay-log silently skips: every byte of it must
// read back zero, and nothing outside it may change.
func TestDiscardZeroFillLarge(t *testing.T) {
	t.Parallel()
	const (
		size = 208 << 20
		off  = 3<<20 + 4096 + 512
		n    = 200<<20 + 1536 // not a multiple of the 1 MiB chunk
	)
	p := filepath.Join(t.TempDir(), "image")
	d := mustOpen(t, p, Options{Create: true, Size: size, forceZeroFill: true})
	chunk := pattern(1<<20, 42)
	for pos := int64(0); pos < size; pos += int64(len(chunk)) {
		if _, err := d.WriteAt(chunk, pos); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Discard(off, n); err != nil {
		t.Fatal(err)
	}
	if z := d.zeroFilled.Load(); z != n {
		t.Fatalf("zero-filled %d bytes, want the whole range %d", z, n)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for pos := int64(0); pos < size; pos += int64(len(buf)) {
		if _, err := f.ReadAt(buf, pos); err != nil {
			t.Fatal(err)
		}
		for i, b := range buf {
			at := pos + int64(i)
			inside := at >= off && at < off+n
			if inside && b != 0 {
				t.Fatalf("byte %d inside the discarded range is %#x, want 0", at, b)
			}
			if !inside && b != chunk[i] {
				t.Fatalf("byte %d outside the discarded range changed to %#x", at, b)
			}
		}
	}
}

func TestUnsupportedClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{os.NewSyscallError("fallocate", unix.EOPNOTSUPP), true},
		{unix.ENOTTY, true},
		{unix.ENOSYS, true},
		{unix.EINVAL, true},
		{unix.EIO, false},
		{unix.ENOSPC, false},
		{unix.EPERM, false},
	} {
		if got := unsupported(tc.err); got != tc.want {
			t.Errorf("unsupported(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestExclusiveMounted(t *testing.T) {
	l, _ := mountExt4(t, 32<<20)
	_, err := Open(l.Path(), Options{Write: true, Exclusive: true})
	if !errors.Is(err, ErrBusy) || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("exclusive open of a mounted device: %v, want ErrBusy wrapping EBUSY", err)
	}
	t.Log(err)
	if !bytes.Contains([]byte(err.Error()), []byte("is mounted or in use")) {
		t.Errorf("message %q does not say it is mounted or in use", err)
	}
	d, err := Open(l.Path(), Options{})
	if err != nil {
		t.Fatalf("shared read-only open of a mounted device: %v", err)
	}
	d.Close()
}

func TestExclusiveBlockTwice(t *testing.T) {
	l, _ := newLoop(t, 1<<20, LoopOptions{})
	d := mustOpen(t, l.Path(), Options{Write: true, Exclusive: true})
	if _, err := Open(l.Path(), Options{Exclusive: true}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second exclusive open: %v, want ErrBusy", err)
	}
	d.Close()
	mustOpen(t, l.Path(), Options{Exclusive: true})
}

func TestExclusiveFile(t *testing.T) {
	t.Parallel()
	p := sparseFile(t, 1<<20)
	d := mustOpen(t, p, Options{Write: true, Exclusive: true})
	if _, err := Open(p, Options{Write: true, Exclusive: true}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second exclusive open: %v, want ErrBusy", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("refused open removed the file: %v", err)
	}
	mustOpen(t, p, Options{}) // a shared open is not refused
	d.Close()
	mustOpen(t, p, Options{Write: true, Exclusive: true})
}

// TestStickyError makes the kernel refuse a write (EFBIG past ext4's largest
// file size) and checks that the Device refuses all later writes, discards
// and syncs, while reads go on.
func TestStickyError(t *testing.T) {
	_, dir := mountExt4(t, 32<<20)
	p := filepath.Join(dir, "f")
	d := mustOpen(t, p, Options{Create: true, Size: 1 << 20})
	if _, err := d.WriteAt([]byte("ok"), 0); err != nil {
		t.Fatal(err)
	}
	const far = 1 << 50 // past ext4's 16 TiB limit
	if _, err := d.WriteAt([]byte("x"), far); !errors.Is(err, unix.EFBIG) {
		t.Fatalf("WriteAt at %d: %v, want EFBIG", int64(far), err)
	}
	if _, err := d.WriteAt([]byte("y"), 0); !errors.Is(err, ErrFailed) || !errors.Is(err, unix.EFBIG) {
		t.Errorf("WriteAt after a failure: %v, want ErrFailed wrapping EFBIG", err)
	}
	if err := d.Discard(0, 512); !errors.Is(err, ErrFailed) {
		t.Errorf("Discard after a failure: %v, want ErrFailed", err)
	}
	if err := d.Sync(); !errors.Is(err, ErrFailed) {
		t.Errorf("Sync after a failure: %v, want ErrFailed", err)
	}
	b := make([]byte, 2)
	if _, err := d.ReadAt(b, 0); err != nil || string(b) != "ok" {
		t.Errorf("ReadAt after a failure: %q, %v", b, err)
	}
}
