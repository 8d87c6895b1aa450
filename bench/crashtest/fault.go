package crashtest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/digest"
)

// FaultKind says how a Fault corrupts the replay.
type FaultKind int

// Kinds of Fault.
const (
	// DropWindow drops every write and discard of the barrier window that
	// holds entry Fault.Entry: the window is never applied.
	DropWindow FaultKind = iota + 1
	// DelayWrite moves the write Fault.Entry across barriers: its bytes
	// are kept out of its window and written only after the checks at entry
	// Fault.Until (at or after the barrier that closes the window).
	// Overlapping writes of the same window lose those bytes too.
	DelayWrite
	// DelayWindow moves the whole barrier window that holds entry
	// Fault.Entry across barriers: its writes and discards are applied
	// only after the checks at entry Fault.Until (at or after the barrier
	// that closes the window).
	DelayWindow
)

// Fault corrupts the one-pass replay on purpose. It exists for the tests
// that prove the bench can fail: a replay that breaks the order the journal
// promises must make Crashtest report a failing point.
type Fault struct {
	Kind  FaultKind
	Entry int64
	Until int64 // DelayWrite and DelayWindow only
}

// delays reports whether f applies something late (at Until).
func (f *Fault) delays() bool { return f.Kind == DelayWrite || f.Kind == DelayWindow }

// ParseFault reads "drop:ENTRY", "delay:ENTRY:UNTIL" or
// "delaywindow:ENTRY:UNTIL".
func ParseFault(s string) (*Fault, error) {
	f := strings.Split(s, ":")
	num := func(s string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("fault %q: %q is not an entry index", s, s)
		}
		return n, nil
	}
	switch {
	case len(f) == 2 && f[0] == "drop":
		n, err := num(f[1])
		return &Fault{Kind: DropWindow, Entry: n}, err
	case len(f) == 3 && (f[0] == "delay" || f[0] == "delaywindow"):
		n, err := num(f[1])
		if err != nil {
			return nil, err
		}
		u, err := num(f[2])
		k := DelayWrite
		if f[0] == "delaywindow" {
			k = DelayWindow
		}
		return &Fault{Kind: k, Entry: n, Until: u}, err
	}
	return nil, fmt.Errorf("fault %q: want drop:ENTRY, delay:ENTRY:UNTIL or delaywindow:ENTRY:UNTIL", s)
}

func (f *Fault) String() string {
	switch f.Kind {
	case DelayWrite:
		return fmt.Sprintf("delay:%d:%d", f.Entry, f.Until)
	case DelayWindow:
		return fmt.Sprintf("delaywindow:%d:%d", f.Entry, f.Until)
	}
	return fmt.Sprintf("drop:%d", f.Entry)
}

// tracked is the replay's target: image A's device, recording the ranges
// the replay writes and discards, and applying a Fault. With compare set it
// also finds out whether any byte of A changed since the last point: until
// one did, each write is compared with what A holds where it goes, and each
// discard with zeros (what a discarded range reads as).
type tracked struct {
	dev     *devio.Device
	a       *image
	compare bool
	changed atomic.Bool // a byte of A changed since takeChanged

	mu    sync.Mutex // guards the fields below; WriteAt runs concurrently
	dirty spanSet    // ranges changed since take
	drop  bool       // Fault DropWindow, DelayWindow: writes are dropped
	hold  span       // Fault DelayWrite: writes inside it are clipped out
}

func (t *tracked) WriteAt(p []byte, off int64) (int, error) {
	t.mu.Lock()
	drop, hold := t.drop, t.hold
	t.mu.Unlock()
	if drop {
		return len(p), nil
	}
	end := off + int64(len(p))
	if hold.end > hold.off && off < hold.end && end > hold.off {
		// Write what lies outside hold.
		if off < hold.off {
			if _, err := t.WriteAt(p[:hold.off-off], off); err != nil {
				return 0, err
			}
		}
		if end > hold.end {
			if _, err := t.WriteAt(p[hold.end-off:], hold.end); err != nil {
				return 0, err
			}
		}
		return len(p), nil
	}
	if t.compare && !t.changed.Load() {
		same, err := t.holds(p, off)
		if err != nil {
			return 0, err
		}
		if !same {
			t.changed.Store(true)
		}
	}
	n, err := t.dev.WriteAt(p, off)
	t.record(off, off+int64(n))
	return n, err
}

// holds reports whether A holds p at off.
func (t *tracked) holds(p []byte, off int64) (bool, error) {
	buf := make([]byte, min(len(p), 1<<20))
	for len(p) > 0 {
		b := buf[:min(len(buf), len(p))]
		if err := readFull(t.a, b, off); err != nil {
			return false, err
		}
		if !bytes.Equal(b, p[:len(b)]) {
			return false, nil
		}
		p, off = p[len(b):], off+int64(len(b))
	}
	return true, nil
}

// zeros reports whether A holds only zeros in [off, end).
func (t *tracked) zeros(off, end int64) (bool, error) {
	data, err := t.a.dataSpans(off, end)
	if err != nil {
		return false, err
	}
	var buf []byte
	for _, d := range data {
		for pos := d.off; pos < d.end; {
			if buf == nil {
				buf = make([]byte, 1<<20)
			}
			b := buf[:min(int64(len(buf)), d.end-pos)]
			if err := readFull(t.a, b, pos); err != nil {
				return false, err
			}
			if !digest.IsZero(b) {
				return false, nil
			}
			pos += int64(len(b))
		}
	}
	return true, nil
}

// takeChanged reports whether a byte of A changed since the last call.
func (t *tracked) takeChanged() bool { return t.changed.Swap(false) }

func (t *tracked) Discard(off, n int64) error {
	t.mu.Lock()
	drop, hold := t.drop, t.hold
	t.mu.Unlock()
	if drop {
		return nil
	}
	end := off + n
	if hold.end > hold.off && off < hold.end && end > hold.off {
		if off < hold.off {
			if err := t.Discard(off, hold.off-off); err != nil {
				return err
			}
		}
		if end > hold.end {
			return t.Discard(hold.end, end-hold.end)
		}
		return nil
	}
	if t.compare && !t.changed.Load() {
		same, err := t.zeros(off, end)
		if err != nil {
			return err
		}
		if !same {
			t.changed.Store(true)
		}
	}
	err := t.dev.Discard(off, n)
	t.record(off, end)
	return err
}

// mergeAt bounds the ranges recorded between two checks: past it they are
// merged, so a long stretch without checks (before a from-mark) holds a
// list no longer than the distinct ranges written.
const mergeAt = 1 << 16

func (t *tracked) record(off, end int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dirty.add(off, end)
	if len(t.dirty) >= mergeAt && len(t.dirty)%mergeAt == 0 {
		t.dirty = t.dirty.merged()
	}
}

// Sync does nothing: the scratch image is never made durable.
func (t *tracked) Sync() error { return nil }

// take returns the ranges changed since the last take.
func (t *tracked) take() spanSet {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.dirty
	t.dirty = nil
	return d
}

func (t *tracked) setFault(drop bool, hold span) {
	t.mu.Lock()
	t.drop, t.hold = drop, hold
	t.mu.Unlock()
}
