package barrier

import (
	"fmt"
	"iter"

	"github.com/logship/logship/journal"
)

// Default caps on a window, used for zero fields of Limits.
const (
	DefaultMaxEntries = 4096
	DefaultMaxBytes   = 16 << 20
)

// Reason says why a window closed.
type Reason int

// Reasons a window closes.
const (
	Flush Reason = iota + 1 // its last entry is a FLUSH
	FUA                     // its last entry is a FUA write
	Mark                    // its last entry is a MARK
	Cap                     // it reached Limits, or the next entry did not fit
	End                     // the input ended (Splitter.Close)
)

var reasonNames = [...]string{Flush: "FLUSH", FUA: "FUA", Mark: "MARK", Cap: "CAP", End: "END"}

func (r Reason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// reasonOf is why barrier entry e closes its window. An entry with several
// barrier bits gets the strongest: a mark, then a flush, then FUA.
func reasonOf(e journal.Entry) Reason {
	switch {
	case e.IsMark():
		return Mark
	case e.Flags&journal.FlagFlush != 0:
		return Flush
	default:
		return FUA
	}
}

// Limits caps a window. Zero (or negative) fields mean the defaults.
type Limits struct {
	MaxEntries int   // entries in a window
	MaxBytes   int64 // payload bytes in a window
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

// Window is a run of entries that ends at a barrier, a cap or the end of the
// input. A window is never empty.
type Window struct {
	Seq     uint64          // windows are numbered from 0 in journal order
	Entries []journal.Entry // in journal order; a barrier that closed the window is the last one
	Bytes   int64           // sum of the entries' PayloadLen
	Reason  Reason          // why the window closed
}

// First is the journal index of the window's first entry.
func (w *Window) First() int64 { return w.Entries[0].Index }

// Last is the journal index of the window's last entry.
func (w *Window) Last() int64 { return w.Entries[len(w.Entries)-1].Index }

func (w *Window) String() string {
	return fmt.Sprintf("window %d: entries %d-%d, %d bytes, closed by %s",
		w.Seq, w.First(), w.Last(), w.Bytes, w.Reason)
}

// Splitter cuts a stream of entries into windows. It holds at most one open
// window, so its memory is bounded by Limits whatever the journal's size.
// A Splitter is not safe for concurrent use.
type Splitter struct {
	lim  Limits
	seq  uint64  // Seq of the next window to close
	open *Window // the window being filled, or nil
	last int     // entries in the window closed last
}

// NewSplitter returns a Splitter whose first window has Seq 0.
func NewSplitter(l Limits) *Splitter { return &Splitter{lim: l.withDefaults()} }

// Add appends e to the open window and returns the windows that closed, in
// order: none, one or two. Windows close as early as possible:
//   - before e, with Reason Cap, when e's payload would take the open window
//     past MaxBytes (e then starts the next window);
//   - after e, when e is a barrier (Reason Flush, FUA or Mark), or when the
//     window now holds MaxEntries entries or at least MaxBytes bytes
//     (Reason Cap).
//
// So an entry whose payload alone exceeds MaxBytes gets a window of its own,
// and a barrier that did not fit closes two windows: the one before it and
// its own. The windows are the caller's; the Splitter keeps no reference.
func (s *Splitter) Add(e journal.Entry) []*Window {
	var closed []*Window
	if s.open != nil && s.open.Bytes+e.PayloadLen() > s.lim.MaxBytes {
		closed = append(closed, s.close(Cap))
	}
	if s.open == nil {
		// Windows tend to be as long as the one before.
		s.open = &Window{Entries: make([]journal.Entry, 0, min(max(s.last, 4), s.lim.MaxEntries))}
	}
	s.open.Entries = append(s.open.Entries, e)
	s.open.Bytes += e.PayloadLen()
	switch {
	case e.IsBarrier():
		closed = append(closed, s.close(reasonOf(e)))
	case len(s.open.Entries) >= s.lim.MaxEntries || s.open.Bytes >= s.lim.MaxBytes:
		closed = append(closed, s.close(Cap))
	}
	return closed
}

// Close closes the open window with Reason End and returns it, or nil when
// no window is open. The Splitter may go on: the next entry starts a new
// window with the next Seq.
func (s *Splitter) Close() *Window {
	if s.open == nil {
		return nil
	}
	return s.close(End)
}

// Pending is the number of entries in the open window.
func (s *Splitter) Pending() int {
	if s.open == nil {
		return 0
	}
	return len(s.open.Entries)
}

func (s *Splitter) close(r Reason) *Window {
	w := s.open
	w.Seq, w.Reason = s.seq, r
	s.seq++
	s.last = len(w.Entries)
	s.open = nil
	return w
}

// Split reads the rest of r and yields its windows in order; the last one,
// unless it ends at a barrier or a cap, has Reason End. A read error is
// yielded with a nil window and ends the sequence; the entries of the window
// that was open at that point are not yielded (use a Splitter to keep them).
// Windows hold entries, not payloads: read those with r.ReadPayload.
func Split(r *journal.Reader, l Limits) iter.Seq2[*Window, error] {
	return func(yield func(*Window, error) bool) {
		s := NewSplitter(l)
		for e, err := range r.All() {
			if err != nil {
				yield(nil, err)
				return
			}
			for _, w := range s.Add(e) {
				if !yield(w, nil) {
					return
				}
			}
		}
		if w := s.Close(); w != nil {
			yield(w, nil)
		}
	}
}
