package devio

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// Magic numbers of compressed files, which are not journals as they are.
var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
)

// JournalOptions tune OpenJournal.
type JournalOptions struct {
	// Direct reads a regular file with O_DIRECT too (a block device always
	// is). It has no effect on a zstd file.
	Direct bool
}

// Journal is a dm-log-writes journal opened for reading by OpenJournal:
// an io.ReaderAt of Size bytes, any offset and length allowed.
type Journal struct {
	path       string
	dev        *Device     // nil for a zstd file
	tmp        *os.File    // the decompressed journal of a zstd file (unlinked)
	r          io.ReaderAt // dev, an aligned reader over it, or tmp
	size       int64       // of tmp
	direct     bool
	compressed string // "zstd" or empty
}

// OpenJournal opens the journal at path for reading, the one way every
// command opens a journal:
//
//   - a block device (a dm-log-writes log device) is opened with O_DIRECT:
//     the kernel writes the log device behind the page cache, so a buffered
//     read of a live log can return stale pages. Reads of any offset and
//     length go through an aligned bounce buffer;
//   - a regular file is read with plain reads (O_DIRECT with o.Direct);
//   - a zstd-compressed file (a capture as in journal/testdata/kernel,
//     known by its magic number) is decompressed into an unlinked temporary
//     file first, since a journal is read at random offsets; a gzip or xz
//     file is refused with an error that says so.
//
// Errors name the path.
func OpenJournal(path string, o JournalOptions) (*Journal, error) {
	dev, err := Open(path, Options{})
	if err != nil {
		return nil, err
	}
	j := &Journal{path: path, dev: dev, r: dev}
	if dev.Kind() != Block {
		var head [8]byte
		n, _ := dev.ReadAt(head[:], 0)
		switch {
		case bytes.HasPrefix(head[:n], zstdMagic):
			defer dev.Close()
			return openZstdJournal(path, dev)
		case bytes.HasPrefix(head[:n], gzipMagic):
			dev.Close()
			return nil, fmt.Errorf("%s: a gzip-compressed file, not a journal: decompress it first (gunzip)", path)
		case bytes.HasPrefix(head[:n], xzMagic):
			dev.Close()
			return nil, fmt.Errorf("%s: an xz-compressed file, not a journal: decompress it first (unxz)", path)
		}
		if !o.Direct {
			return j, nil
		}
	}
	dev.Close()
	if j.dev, err = Open(path, Options{Direct: true}); err != nil {
		return nil, err
	}
	ar, err := newAlignedReader(j.dev, j.dev.LogicalBlockSize())
	if err != nil {
		j.dev.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	j.r, j.direct = ar, true
	return j, nil
}

// openZstdJournal decompresses the zstd file f into an unlinked temporary
// file.
func openZstdJournal(path string, f io.ReaderAt) (*Journal, error) {
	zr, err := zstd.NewReader(io.NewSectionReader(f, 0, 1<<62), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("%s: zstd-compressed journal: %w", path, err)
	}
	defer zr.Close()
	tmp, err := os.CreateTemp("", "logship-journal-*")
	if err != nil {
		return nil, fmt.Errorf("%s: zstd-compressed journal: %w", path, err)
	}
	os.Remove(tmp.Name()) // gone when closed
	n, err := io.Copy(tmp, zr)
	if err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%s: zstd-compressed journal: %w", path, err)
	}
	return &Journal{path: path, tmp: tmp, r: tmp, size: n, compressed: "zstd"}, nil
}

// ReadAt implements io.ReaderAt.
func (j *Journal) ReadAt(p []byte, off int64) (int, error) { return j.r.ReadAt(p, off) }

// Size is the journal's size in bytes: the log device's size, the file's
// current size (a journal file may grow), or the decompressed size.
func (j *Journal) Size() int64 {
	if j.dev == nil {
		return j.size
	}
	return j.dev.Size()
}

// Compressed names the compression of the file ("zstd"), or is empty.
func (j *Journal) Compressed() string { return j.compressed }

// Direct reports whether reads bypass the page cache (O_DIRECT).
func (j *Journal) Direct() bool { return j.direct }

// Path is the path the journal was opened at.
func (j *Journal) Path() string { return j.path }

// Close closes the device or file.
func (j *Journal) Close() error {
	if j.tmp != nil {
		return j.tmp.Close()
	}
	return j.dev.Close()
}
