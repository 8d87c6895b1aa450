// Package replay applies journal entries to a target device the way the
// design requires: window by window in journal order, and inside a window
// in parallel, with overlapping writes resolved in journal order by
// coalescing. It is the engine behind `logship replay`, the crash bench and
// the server's applier.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/journal"
)

// Target is what entries are applied to. devio.Device implements it.
type Target interface {
	io.WriterAt
	// Discard makes [off, off+length) read back as zeros.
	Discard(off, length int64) error
	Sync() error
}

// Options tune a replay. The zero value is usable.
type Options struct {
	Parallel  int            // concurrent writes inside a window; default 4
	NoDiscard bool           // skip DISCARD entries (replay-log --no-discard)
	Limits    barrier.Limits // window caps: they bound the memory of a replay
}

func (o Options) parallel() int {
	if o.Parallel <= 0 {
		return 4
	}
	return o.Parallel
}

// Stats counts what a replay did.
type Stats struct {
	Entries   int64 // entries walked
	Windows   int64 // windows applied
	Written   int64 // bytes written to the target
	Discarded int64 // bytes discarded
}

// ErrTargetTooSmall: the journal touches bytes past the end of the target.
var ErrTargetTooSmall = errors.New("replay: target too small")

// Apply writes one window's coalesced extents to t in parallel. payload(i)
// returns the payload of w.Entries[i]. The extents are disjoint, so their
// order does not matter; Apply returns when all are written.
func Apply(ctx context.Context, t Target, w *barrier.Window, payload func(i int) []byte, o Options) (Stats, error) {
	return ApplyExtents(ctx, t, w.Coalesce(), payload, o)
}

// ApplyExtents writes disjoint extents to t in parallel.
func ApplyExtents(ctx context.Context, t Target, extents []barrier.Extent, payload func(i int) []byte, o Options) (Stats, error) {
	var st Stats
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(o.parallel())
	for _, x := range extents {
		if x.Discard {
			if o.NoDiscard {
				continue
			}
			st.Discarded += x.Len
		} else {
			st.Written += x.Len
		}
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return writeExtent(t, x, payload) })
	}
	return st, g.Wait()
}

func writeExtent(t Target, x barrier.Extent, payload func(i int) []byte) error {
	if x.Discard {
		if err := t.Discard(x.Start, x.Len); err != nil {
			return fmt.Errorf("discarding %d bytes at %d: %w", x.Len, x.Start, err)
		}
		return nil
	}
	off := x.Start
	for _, p := range x.Parts {
		b := payload(p.Entry)[p.Off : p.Off+p.Len]
		if _, err := t.WriteAt(b, off); err != nil {
			return fmt.Errorf("writing %d bytes at %d: %w", len(b), off, err)
		}
		off += p.Len
	}
	return nil
}

// Replayer replays a journal at rest onto a target.
type Replayer struct {
	r   *journal.Reader
	t   Target
	opt Options
	buf []byte // payloads of the window being applied
}

// New returns a Replayer that applies the entries of r, from its current
// position, to t.
func New(r *journal.Reader, t Target, o Options) *Replayer {
	return &Replayer{r: r, t: t, opt: o}
}

// Run applies entries until stop is hit (the stopping entry included) or
// the journal ends. Windows are also cut after every entry for which cut
// returns true; after such an entry has been applied, with everything before
// it, at is called with it (cut and at may be nil). Run does not sync the
// target; at may.
func (p *Replayer) Run(ctx context.Context, stop journal.Stop, cut func(journal.Entry) bool, at func(journal.Entry) error) (Stats, error) {
	var st Stats
	s := barrier.NewSplitter(p.opt.Limits)
	apply := func(w *barrier.Window) error {
		if w == nil {
			return nil
		}
		ws, err := p.applyWindow(ctx, w)
		st.Windows++
		st.Written += ws.Written
		st.Discarded += ws.Discarded
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		e, err := p.r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, err
		}
		st.Entries++
		hit := stop.Hit(e, st.Entries)
		isCut := hit || (cut != nil && cut(e))
		for _, w := range s.Add(e) {
			if err := apply(w); err != nil {
				return st, err
			}
		}
		if isCut {
			// Close the window at e, unless e closed it already.
			if s.Pending() > 0 {
				if err := apply(s.Close()); err != nil {
					return st, err
				}
			}
			if at != nil {
				if err := at(e); err != nil {
					return st, err
				}
			}
		}
		if hit {
			return st, nil
		}
	}
	return st, apply(s.Close())
}

// applyWindow reads a window's payloads into one buffer and applies it.
func (p *Replayer) applyWindow(ctx context.Context, w *barrier.Window) (Stats, error) {
	if int64(cap(p.buf)) < w.Bytes {
		p.buf = make([]byte, w.Bytes)
	}
	buf := p.buf[:w.Bytes]
	offs := make([]int64, len(w.Entries))
	var off int64
	for i, e := range w.Entries {
		offs[i] = off
		n := e.PayloadLen()
		if n == 0 {
			continue
		}
		if err := p.r.ReadPayload(e, buf[off:off+n]); err != nil {
			return Stats{}, err
		}
		off += n
	}
	payload := func(i int) []byte { return buf[offs[i] : offs[i]+w.Entries[i].PayloadLen()] }
	return Apply(ctx, p.t, w, payload, p.opt)
}

// CheckSize walks the headers of r from its current position to the entry
// that meets stop (or the end) and returns the highest device byte any of
// them touches, without reading payloads. r is left at the end of the walk.
func CheckSize(r *journal.Reader, stop journal.Stop) (end int64, err error) {
	for walked := int64(1); ; walked++ {
		e, err := r.NextHeader()
		if err == io.EOF {
			return end, nil
		}
		if err != nil {
			return end, err
		}
		if !e.IsMark() && e.End() > end {
			end = e.End()
		}
		if stop.Hit(e, walked) {
			return end, nil
		}
	}
}
