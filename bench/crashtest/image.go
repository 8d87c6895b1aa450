package crashtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/digest"
)

// span is the byte range [off, end).
type span struct{ off, end int64 }

// spanSet collects byte ranges; merged sorts and merges them.
type spanSet []span

func (s *spanSet) add(off, end int64) {
	if end > off {
		*s = append(*s, span{off, end})
	}
}

// merged returns the ranges sorted, with overlapping and touching ones
// joined. It reuses s's storage.
func (s spanSet) merged() []span {
	if len(s) == 0 {
		return nil
	}
	slices.SortFunc(s, func(a, b span) int {
		switch {
		case a.off < b.off:
			return -1
		case a.off > b.off:
			return 1
		}
		return 0
	})
	out := s[:1]
	for _, x := range s[1:] {
		last := &out[len(out)-1]
		if x.off <= last.end {
			last.end = max(last.end, x.end)
			continue
		}
		out = append(out, x)
	}
	return out
}

// image is a scratch image file: A, the replay's, or B, the checks'.
type image struct {
	path string
	f    *os.File
	size int64
}

// errLinuxOnly: the system calls behind image files are Linux's.
var errLinuxOnly = errors.New("bench: Linux only")

// mtimeSentinel is the modification time an image gets before a check: a
// write by the check (through a loop device or to the file) moves it.
var mtimeSentinel = time.Unix(1, 0)

func createImage(path string, size int64) (*image, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("sizing %s to %d bytes: %w", path, size, err)
	}
	return &image{path: path, f: f, size: size}, nil
}

func (im *image) close() error { return im.f.Close() }

// reset makes the whole image a hole.
func (im *image) reset() error {
	if err := im.f.Truncate(0); err != nil {
		return fmt.Errorf("truncating %s: %w", im.path, err)
	}
	if err := im.f.Truncate(im.size); err != nil {
		return fmt.Errorf("sizing %s: %w", im.path, err)
	}
	return nil
}

// dataSpans lists the data extents of [off, end) with SEEK_DATA and
// SEEK_HOLE. Where the file system cannot tell, all of it is data.
func (im *image) dataSpans(off, end int64) ([]span, error) {
	return dataSpans(im.f, im.path, off, end)
}

func dataSpans(f *os.File, path string, off, end int64) ([]span, error) {
	var out []span
	for off < end {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole up to the end of the file
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return []span{{off, end}}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("SEEK_DATA in %s at %d: %w", path, off, err)
		}
		if d >= end {
			break
		}
		h, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("SEEK_HOLE in %s at %d: %w", path, d, err)
		}
		h = min(h, end)
		out = append(out, span{d, h})
		off = h
	}
	return out, nil
}

// punch makes [off, off+n) a hole.
func (im *image) punch(off, n int64) error {
	if n <= 0 {
		return nil
	}
	err := punchHole(im.f, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, errLinuxOnly) {
		return writeZeros(im.f, off, n)
	}
	if err != nil {
		return fmt.Errorf("punching %d bytes at %d in %s: %w", n, off, im.path, err)
	}
	return nil
}

var zeroBlock = make([]byte, 1<<20)

func writeZeros(f *os.File, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroBlock)))
		if _, err := f.WriteAt(zeroBlock[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

// level makes [off, end) of dst equal to src: copy_file_range over src's
// data extents, holes punched over its holes. It returns the bytes copied.
func level(dst, src *image, off, end int64, buf []byte) (int64, error) {
	data, err := src.dataSpans(off, end)
	if err != nil {
		return 0, err
	}
	var copied int64
	pos := off
	for _, d := range data {
		if err := dst.punch(pos, d.off-pos); err != nil {
			return copied, err
		}
		if err := copyRange(dst, src, d.off, d.end-d.off, buf); err != nil {
			return copied, err
		}
		copied += d.end - d.off
		pos = d.end
	}
	return copied, dst.punch(pos, end-pos)
}

// copyRange copies n bytes at off from src to the same offset in dst: in
// the kernel with copy_file_range, else through buf.
func copyRange(dst, src *image, off, n int64, buf []byte) error {
	roff, woff := off, off
	for n > 0 {
		k, err := copyFileRange(src.f, &roff, dst.f, &woff, int(min(n, 1<<30)))
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, errLinuxOnly) {
				return copyBuffered(dst, src, roff, n, buf)
			}
			return fmt.Errorf("copying %d bytes at %d from %s to %s: %w", n, roff, src.path, dst.path, err)
		}
		if k == 0 {
			return fmt.Errorf("copying %d bytes at %d from %s: %w", n, roff, src.path, io.ErrUnexpectedEOF)
		}
		n -= int64(k)
	}
	return nil
}

func copyBuffered(dst, src *image, off, n int64, buf []byte) error {
	for n > 0 {
		p := buf[:min(n, int64(len(buf)))]
		if _, err := src.f.ReadAt(p, off); err != nil {
			return fmt.Errorf("reading %d bytes at %d of %s: %w", len(p), off, src.path, err)
		}
		if _, err := dst.f.WriteAt(p, off); err != nil {
			return fmt.Errorf("writing %d bytes at %d of %s: %w", len(p), off, dst.path, err)
		}
		off += int64(len(p))
		n -= int64(len(p))
	}
	return nil
}

// blockSize is the unit in which diff reports differences and copyBase
// leaves zeros as holes.
const blockSize = 4096

// diff returns the ranges, in whole blockSizes, where a and b differ,
// reading both over the data extents of either, and the bytes it compared.
func diff(a, b *image, bufA, bufB []byte) ([]span, int64, error) {
	da, err := a.dataSpans(0, a.size)
	if err != nil {
		return nil, 0, err
	}
	db, err := b.dataSpans(0, b.size)
	if err != nil {
		return nil, 0, err
	}
	union := spanSet(append(da, db...)).merged()
	var out spanSet
	var compared int64
	for _, u := range union {
		u.off = u.off / blockSize * blockSize
		for pos := u.off; pos < u.end; {
			n := min(int64(len(bufA)), u.end-pos)
			pa, pb := bufA[:n], bufB[:n]
			if err := readFull(a, pa, pos); err != nil {
				return nil, compared, err
			}
			if err := readFull(b, pb, pos); err != nil {
				return nil, compared, err
			}
			compared += n
			for k := int64(0); k < n; k += blockSize {
				e := min(k+blockSize, n)
				if !bytes.Equal(pa[k:e], pb[k:e]) {
					out.add(pos+k, pos+e)
				}
			}
			pos += n
		}
	}
	return out.merged(), compared, nil
}

// readFull reads len(p) bytes at off; bytes past the end read as zeros.
func readFull(im *image, p []byte, off int64) error {
	n, err := im.f.ReadAt(p, off)
	if err == io.EOF {
		clear(p[n:])
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %d bytes at %d of %s: %w", len(p), off, im.path, err)
	}
	return nil
}

// markClean sets the image's mtime to the sentinel.
func (im *image) markClean() error {
	if err := os.Chtimes(im.path, time.Time{}, mtimeSentinel); err != nil {
		return fmt.Errorf("setting the mtime of %s: %w", im.path, err)
	}
	return nil
}

// touched reports whether the image was written since markClean.
func (im *image) touched() (bool, error) {
	fi, err := im.f.Stat()
	if err != nil {
		return false, err
	}
	return !fi.ModTime().Equal(mtimeSentinel), nil
}

// copyBase copies the image file or device at path into the images,
// sparsely: data extents of a file (all of a device) are copied, and blocks
// of zeros are left as holes.
func copyBase(path string, buf []byte, dst ...*image) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	data, err := dataSpans(f, path, 0, size)
	if err != nil {
		return err
	}
	for _, d := range data {
		for pos := d.off; pos < d.end; {
			p := buf[:min(int64(len(buf)), d.end-pos)]
			if _, err := io.ReadFull(io.NewSectionReader(f, pos, int64(len(p))), p); err != nil {
				return fmt.Errorf("reading %d bytes at %d of %s: %w", len(p), pos, path, err)
			}
			for k := 0; k < len(p); k += blockSize {
				blk := p[k:min(k+blockSize, len(p))]
				if digest.IsZero(blk) {
					continue
				}
				for _, im := range dst {
					if _, err := im.f.WriteAt(blk, pos+int64(k)); err != nil {
						return fmt.Errorf("writing %s: %w", im.path, err)
					}
				}
			}
			pos += int64(len(p))
		}
	}
	return nil
}
