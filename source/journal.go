package source

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
)

// journalFile is the journal being shipped: a regular file or a log
// device, opened by devio.OpenJournal.
type journalFile struct {
	path   string
	dev    *devio.Journal
	r      io.ReaderAt // dev
	direct bool
}

// openJournal opens path for reading. A block device is always opened
// with O_DIRECT (the kernel writes a log device behind its page cache); a
// regular file only when direct is set.
func openJournal(path string, direct bool) (*journalFile, error) {
	dev, err := devio.OpenJournal(path, devio.JournalOptions{Direct: direct})
	if err != nil {
		return nil, err
	}
	return &journalFile{path: path, dev: dev, r: dev, direct: dev.Direct()}, nil
}

func (j *journalFile) Close() error { return j.dev.Close() }

// wrap names the journal in err.
func (j *journalFile) wrap(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &JournalError{Path: j.path, Err: err}
}

// JournalError is a failure reading the journal: it cannot be cured by
// reconnecting.
type JournalError struct {
	Path string
	Err  error
}

func (e *JournalError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *JournalError) Unwrap() error { return e.Err }

// entrySource yields the journal's entries from some index on: a Reader
// for a journal at rest, a Tailer for a live one.
type entrySource interface {
	// Next returns the next entry, io.EOF after the last one (at rest) or
	// after the end mark (live), or ctx's error while waiting.
	Next(ctx context.Context) (journal.Entry, error)
	ReadPayload(e journal.Entry, p []byte) error
	// Index is the index of the entry Next returns.
	Index() int64
}

// restSource adapts a journal.Reader.
type restSource struct{ r *journal.Reader }

func (s restSource) Next(ctx context.Context) (journal.Entry, error) {
	if err := ctx.Err(); err != nil {
		return journal.Entry{}, err
	}
	return s.r.Next()
}
func (s restSource) ReadPayload(e journal.Entry, p []byte) error { return s.r.ReadPayload(e, p) }
func (s restSource) Index() int64                                { return s.r.Index() }

// source returns the entries of the journal from entry index from on.
// With follow the journal is tailed; otherwise it is read to its last
// counted entry, and from beyond that is an error.
func (j *journalFile) source(ctx context.Context, follow bool, o journal.TailOptions, from int64) (entrySource, error) {
	if follow {
		t := journal.NewTailer(j.r, o)
		if err := t.SkipTo(ctx, from); err != nil {
			if err == io.EOF {
				return nil, j.wrap(fmt.Errorf("%w: the server has entries up to %d durable, but the journal ended at %d (a different journal with the same identity?)", journal.ErrRange, from, t.Index()))
			}
			return nil, j.wrap(err)
		}
		return t, nil
	}
	r, err := journal.NewReader(j.r, j.dev.Size())
	if err != nil {
		return nil, j.wrap(err)
	}
	if err := r.SeekEntry(from); err != nil {
		if errors.Is(err, journal.ErrRange) {
			err = fmt.Errorf("%w: the server has entries up to %d durable, but the journal has only %d entries", err, from, r.Len())
		}
		return nil, j.wrap(err)
	}
	return restSource{r}, nil
}

// identify returns the journal's identity and superblock; with follow it
// waits for enough entries (see JournalID).
func (j *journalFile) identify(ctx context.Context, follow bool, o journal.TailOptions) (string, journal.Super, error) {
	var (
		id  string
		s   journal.Super
		err error
	)
	if follow {
		id, s, err = identifyTail(ctx, j.r, o)
	} else {
		id, s, err = IdentifyReader(j.r, j.dev.Size())
	}
	return id, s, j.wrap(err)
}

// findMark returns the index of the first mark labelled label.
func (j *journalFile) findMark(ctx context.Context, follow bool, o journal.TailOptions, label string) (int64, error) {
	if !follow {
		r, err := journal.NewReader(j.r, j.dev.Size())
		if err != nil {
			return 0, j.wrap(err)
		}
		e, err := r.SeekMark(label)
		if err != nil {
			return 0, j.wrap(err)
		}
		return e.Index, nil
	}
	t := journal.NewTailer(j.r, o)
	for {
		e, err := t.Next(ctx)
		if err == io.EOF {
			return 0, j.wrap(fmt.Errorf("%w: %q (the journal ended)", journal.ErrNoMark, label))
		}
		if err != nil {
			return 0, j.wrap(err)
		}
		if e.IsMark() && e.Label == label {
			return e.Index, nil
		}
	}
}

// ImageSize returns the highest byte on the data device that the journal
// at path touches, rounded up to a multiple of round (the default image
// size of a task created by `ship`).
func ImageSize(path string, round int64) (int64, error) {
	j, err := openJournal(path, false)
	if err != nil {
		return 0, err
	}
	defer j.Close()
	r, err := journal.NewReader(j.r, j.dev.Size())
	if err != nil {
		return 0, j.wrap(err)
	}
	var end int64
	for {
		e, err := r.NextHeader()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, j.wrap(err)
		}
		if !e.IsMark() && e.End() > end {
			end = e.End()
		}
	}
	if round > 0 {
		end = (end + round - 1) / round * round
	}
	return end, nil
}
