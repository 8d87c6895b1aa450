package main

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
)

// journalFile is an open journal, opened by devio.OpenJournal: a regular
// file, a log device (read with O_DIRECT), or a zstd-compressed journal
// file, decompressed into an unlinked temporary file first.
type journalFile struct {
	path string
	f    *devio.Journal
	size int64
	r    *journal.Reader
	// compressed names the compression of the file at path ("zstd"), or
	// is empty.
	compressed string
	// read is the highest journal offset read so far, for progress.
	read atomic.Int64
}

// openJournal opens path and reads its superblock. Errors name the path.
func openJournal(path string) (*journalFile, error) {
	f, err := devio.OpenJournal(path, devio.JournalOptions{})
	if err != nil {
		return nil, err
	}
	j := &journalFile{path: path, f: f, size: f.Size(), compressed: f.Compressed()}
	if j.r, err = journal.NewReader(readCounter{j.f, &j.read}, j.size); err != nil {
		j.f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return j, nil
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
