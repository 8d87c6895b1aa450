package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"

	"github.com/logship/logship/journal"
)

// journalFile is an open journal: a regular file or a log device, or a
// zstd-compressed journal file, decompressed into an unlinked temporary
// file first (a journal is read at random offsets).
type journalFile struct {
	path string
	f    *os.File
	size int64
	r    *journal.Reader
	// compressed names the compression of the file at path ("zstd"), or
	// is empty.
	compressed string
	// read is the highest journal offset read so far, for progress.
	read atomic.Int64
}

// Magic numbers of compressed files that are not journals as they are.
var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
)

// openJournal opens path and reads its superblock. Errors name the path.
func openJournal(path string) (*journalFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	j := &journalFile{path: path, f: f}
	var head [8]byte
	n, _ := f.ReadAt(head[:], 0)
	switch {
	case bytes.HasPrefix(head[:n], zstdMagic):
		if j.f, err = decompressZstd(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: zstd-compressed journal: %w", path, err)
		}
		f.Close()
		j.compressed = "zstd"
	case bytes.HasPrefix(head[:n], gzipMagic):
		f.Close()
		return nil, fmt.Errorf("%s: a gzip-compressed file, not a journal: decompress it first (gunzip)", path)
	case bytes.HasPrefix(head[:n], xzMagic):
		f.Close()
		return nil, fmt.Errorf("%s: an xz-compressed file, not a journal: decompress it first (unxz)", path)
	}
	// Seek to the end measures block devices as well as files.
	if j.size, err = j.f.Seek(0, io.SeekEnd); err != nil {
		j.f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if j.r, err = journal.NewReader(readCounter{j.f, &j.read}, j.size); err != nil {
		j.f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return j, nil
}

// decompressZstd decompresses f into an unlinked temporary file.
func decompressZstd(f *os.File) (*os.File, error) {
	d, err := zstd.NewReader(io.NewSectionReader(f, 0, 1<<62), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	tmp, err := os.CreateTemp("", "logship-journal-*")
	if err != nil {
		return nil, err
	}
	os.Remove(tmp.Name()) // gone when closed
	if _, err := io.Copy(tmp, d); err != nil {
		tmp.Close()
		return nil, err
	}
	return tmp, nil
}

func (j *journalFile) Close() error { return j.f.Close() }

// wrap names the journal in an error from its reader.
func (j *journalFile) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", j.path, err)
}

// readCounter is an io.ReaderAt that records the highest offset read.
type readCounter struct {
	r    io.ReaderAt
	high *atomic.Int64
}

func (c readCounter) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	end := off + int64(n)
	for {
		h := c.high.Load()
		if end <= h || c.high.CompareAndSwap(h, end) {
			break
		}
	}
	return n, err
}
