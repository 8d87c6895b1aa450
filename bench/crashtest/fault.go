package crashtest

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/logship/logship/devio"
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
)

// Fault corrupts the one-pass replay on purpose. It exists for the tests
// that prove the bench can fail: a replay that breaks the order the journal
// promises must make Crashtest report a failing point.
type Fault struct {
	Kind  FaultKind
	Entry int64
	Until int64 // DelayWrite only
}

// ParseFault reads "drop:ENTRY" or "delay:ENTRY:UNTIL".
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
	case len(f) == 3 && f[0] == "delay":
		n, err := num(f[1])
		if err != nil {
			return nil, err
		}
		u, err := num(f[2])
		return &Fault{Kind: DelayWrite, Entry: n, Until: u}, err
	}
	return nil, fmt.Errorf("fault %q: want drop:ENTRY or delay:ENTRY:UNTIL", s)
}

func (f *Fault) String() string {
	if f.Kind == DelayWrite {
		return fmt.Sprintf("delay:%d:%d", f.Entry, f.Until)
	}
	return fmt.Sprintf("drop:%d", f.Entry)
}

// tracked is the replay's target: image A's device, recording the ranges
// the replay writes and discards, and applying a Fault.
type tracked struct {
	dev *devio.Device

	mu    sync.Mutex // guards the fields below; WriteAt runs concurrently
	dirty spanSet    // ranges changed since take
	drop  bool       // Fault DropWindow: writes are dropped
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
	n, err := t.dev.WriteAt(p, off)
	t.record(off, off+int64(n))
	return n, err
}

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
