package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// TailOptions tune a Tailer. Zero fields take the defaults.
type TailOptions struct {
	// Poll is how often the superblock is re-read while no entry is
	// ready. Default 50ms.
	Poll time.Duration
	// Settle is how long an entry must have been counted by the
	// superblock before it is read: the kernel waits only for the
	// superblock's own write, so the entry it just counted may still be
	// in flight. Default 100ms.
	Settle time.Duration
	// Retry is how long a counted entry whose header does not validate is
	// re-read before the error is returned. Default 2s.
	Retry time.Duration
	// StopAtEnd makes Next return io.EOF after the kernel's end mark
	// ("dm-log-writes-end", logged when the target is removed). Default
	// true; set NoStopAtEnd to follow past it.
	NoStopAtEnd bool
}

func (o *TailOptions) defaults() {
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = 100 * time.Millisecond
	}
	if o.Retry <= 0 {
		o.Retry = 2 * time.Second
	}
}

// Tailer follows a live journal: a log device that dm-log-writes is
// writing, or a file that grows. It knows how the kernel updates the
// superblock (docs/journal-format.md §4):
//   - nr_entries is rewritten only after a FUA or MARK entry, so entries
//     after the last one counted are invisible until the next FUA or mark
//     (send marks, e.g. `ship --tick`, to keep it moving);
//   - the entry just counted may still be in flight: an entry is read only
//     once it has been counted for Settle, and a header that does not
//     validate is re-read for Retry before it is reported;
//   - until the first FUA or mark, sector 0 holds whatever was there: a
//     superblock that does not parse is waited on, not trusted;
//   - anything past nr_entries is stale and never read.
//
// The ReaderAt must bypass the page cache for a log device (O_DIRECT, see
// devio), or stale cached sectors may be read.
type Tailer struct {
	r    io.ReaderAt
	opt  TailOptions
	rd   *Reader // nil until a superblock parsed
	seen uint64  // highest nr_entries observed
	// counts not yet settled: each nr_entries value seen and when it was
	// first seen, oldest first. At most Settle/Poll of them.
	unsettled []observed
	safe      uint64 // entries counted for at least Settle
	end       bool   // the end mark was returned
	err       error  // sticky
}

type observed struct {
	n  uint64
	at time.Time
}

// NewTailer returns a Tailer positioned at entry 0.
func NewTailer(r io.ReaderAt, o TailOptions) *Tailer {
	o.defaults()
	return &Tailer{r: r, opt: o}
}

// Super returns the last superblock read; ok is false before one parsed.
func (t *Tailer) Super() (s Super, ok bool) {
	if t.rd == nil {
		return Super{}, false
	}
	return Super{NrEntries: t.seen, SectorSize: t.rd.super.SectorSize}, true
}

// Index is the index of the entry Next returns next.
func (t *Tailer) Index() int64 {
	if t.rd == nil {
		return 0
	}
	return t.rd.next
}

// Next waits for the next entry and returns it. It returns io.EOF after
// the end mark, and ctx's error when ctx ends first.
func (t *Tailer) Next(ctx context.Context) (Entry, error) {
	if t.err != nil {
		return Entry{}, t.err
	}
	if t.end {
		return Entry{}, io.EOF
	}
	var badSince time.Time
	for {
		if t.rd != nil && uint64(t.rd.next) < t.safe {
			t.rd.super.NrEntries = t.safe
			e, err := t.rd.Next()
			if err == nil {
				if e.IsMark() && e.Label == EndMark && !t.opt.NoStopAtEnd {
					t.end = true
				}
				return e, nil
			}
			// A header or payload not yet on disk: drop what was read
			// ahead, and retry for a while before believing it.
			t.rd.err = nil
			t.rd.bufLen = 0
			if badSince.IsZero() {
				badSince = time.Now()
			} else if time.Since(badSince) > t.opt.Retry {
				t.err = err
				return Entry{}, err
			}
		}
		if err := t.poll(); err != nil {
			t.err = err
			return Entry{}, err
		}
		if t.rd != nil && uint64(t.rd.next) < t.safe && badSince.IsZero() {
			continue // more entries settled: read them now
		}
		select {
		case <-ctx.Done():
			return Entry{}, ctx.Err()
		case <-time.After(t.opt.Poll):
		}
	}
}

// poll re-reads the superblock and advances the safe count.
func (t *Tailer) poll() error {
	sb := make([]byte, MinSectorSize)
	if t.rd != nil {
		sb = make([]byte, t.rd.super.SectorSize)
	}
	n, err := t.r.ReadAt(sb, 0)
	if n < superLen {
		if err == nil || errors.Is(err, io.EOF) {
			return nil // an empty, growing file: wait
		}
		return fmt.Errorf("journal: reading superblock: %w", err)
	}
	s, err := ParseSuper(sb[:n])
	if err != nil {
		if t.rd == nil {
			return nil // no superblock yet (zeroed or stale): wait
		}
		return fmt.Errorf("journal: superblock became invalid while tailing: %w", err)
	}
	now := time.Now()
	if t.rd == nil {
		rd, err := NewReader(t.r, -1)
		if err != nil {
			return nil
		}
		t.rd = rd
	} else if s.SectorSize != t.rd.super.SectorSize {
		return fmt.Errorf("%w: sector size changed from %d to %d while tailing", ErrFormat, t.rd.super.SectorSize, s.SectorSize)
	}
	if s.NrEntries < t.seen {
		return fmt.Errorf("%w: nr_entries went back from %d to %d (was the log reused?)", ErrCorrupt, t.seen, s.NrEntries)
	}
	if s.NrEntries > t.seen {
		t.seen = s.NrEntries
		t.unsettled = append(t.unsettled, observed{s.NrEntries, now})
		t.rd.bufLen = 0 // read-ahead may hold sectors written since
	}
	// A count settles once it has been on disk for Settle, however often
	// the superblock moved on since.
	for len(t.unsettled) > 0 && now.Sub(t.unsettled[0].at) >= t.opt.Settle {
		t.safe = t.unsettled[0].n
		t.unsettled = t.unsettled[1:]
	}
	return nil
}

// ReadPayload reads e's payload; e must come from this Tailer.
func (t *Tailer) ReadPayload(e Entry, p []byte) error {
	if t.rd == nil {
		return fmt.Errorf("journal: ReadPayload before any entry")
	}
	return t.rd.ReadPayload(e, p)
}

// SkipTo makes the Tailer's next entry index i (for resuming): it waits
// until entry i-1 is counted and settled, walking headers only.
func (t *Tailer) SkipTo(ctx context.Context, i int64) error {
	for t.Index() < i {
		if _, err := t.Next(ctx); err != nil {
			return err
		}
	}
	return nil
}
