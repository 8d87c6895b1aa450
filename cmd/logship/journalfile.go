package main

import (
	"fmt"
	"io"
	"os"

	"github.com/logship/logship/journal"
)

// journalFile is an open journal: a regular file or a log device.
type journalFile struct {
	path string
	f    *os.File
	size int64
	r    *journal.Reader
}

// openJournal opens path and reads its superblock. Errors name the path.
func openJournal(path string) (*journalFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	// Seek to the end measures block devices as well as files.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r, err := journal.NewReader(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &journalFile{path: path, f: f, size: size, r: r}, nil
}

func (j *journalFile) Close() error { return j.f.Close() }

// wrap names the journal in an error from its reader.
func (j *journalFile) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", j.path, err)
}
