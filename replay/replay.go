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
	"unsafe"

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

// Replayer replays a journal at rest onto a target. While one window is
// being written, the next one is read: a Replayer holds at most three
// windows' payloads in memory, whatever the journal's size.
type Replayer struct {
	r   *journal.Reader
	t   Target
	opt Options
}

// New returns a Replayer that applies the entries of r, from its current
// position, to t.
func New(r *journal.Reader, t Target, o Options) *Replayer {
	return &Replayer{r: r, t: t, opt: o}
}

// loaded is a window with its payloads read, ready to apply; or, with w nil,
// only a cut point to report.
type loaded struct {
	w    *barrier.Window
	buf  []byte
	offs []int64        // offset in buf of each entry's payload
	at   *journal.Entry // the cut point this window ends at, if any
}

// bufAlign aligns payload buffers so that targets opened with O_DIRECT can
// take them as they are.
const bufAlign = 4096

// Run applies entries until stop is hit (the stopping entry included) or
// the journal ends. Windows are also cut after every entry for which cut
// returns true; after such an entry has been applied, with everything before
// it, at is called with it (cut and at may be nil). Run does not sync the
// target; at may.
func (p *Replayer) Run(ctx context.Context, stop journal.Stop, cut func(journal.Entry) bool, at func(journal.Entry) error) (Stats, error) {
	var st Stats
	g, ctx := errgroup.WithContext(ctx)
	ready := make(chan loaded, 1)
	free := make(chan []byte, 2)
	free <- nil
	free <- nil

	// The reader: splits entries into windows and reads their payloads.
	g.Go(func() error {
		defer close(ready)
		s := barrier.NewSplitter(p.opt.Limits)
		send := func(w *barrier.Window, at *journal.Entry) error {
			l := loaded{w: w, at: at}
			if w != nil {
				var buf []byte
				select {
				case buf = <-free:
				case <-ctx.Done():
					return ctx.Err()
				}
				var err error
				if l.buf, l.offs, err = p.load(w, buf); err != nil {
					return err
				}
			}
			select {
			case ready <- l:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for walked := int64(1); ; walked++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			e, err := p.r.Next()
			if err == io.EOF {
				if w := s.Close(); w != nil {
					return send(w, nil)
				}
				return nil
			}
			if err != nil {
				return err
			}
			st.Entries++
			hit := stop.Hit(e, walked)
			isCut := hit || (cut != nil && cut(e))
			ws := s.Add(e)
			if isCut && s.Pending() > 0 {
				ws = append(ws, s.Close())
			}
			for i, w := range ws {
				var point *journal.Entry
				if isCut && i == len(ws)-1 {
					point = &e
				}
				if err := send(w, point); err != nil {
					return err
				}
			}
			if hit {
				return nil
			}
		}
	})

	// The writer: applies windows in order.
	g.Go(func() error {
		for l := range ready {
			payload := func(i int) []byte { return l.buf[l.offs[i] : l.offs[i]+l.w.Entries[i].PayloadLen()] }
			ws, err := Apply(ctx, p.t, l.w, payload, p.opt)
			if err != nil {
				return err
			}
			st.Windows++
			st.Written += ws.Written
			st.Discarded += ws.Discarded
			free <- l.buf
			if l.at != nil && at != nil {
				if err := at(*l.at); err != nil {
					return err
				}
			}
		}
		return nil
	})
	err := g.Wait()
	return st, err
}

// load reads a window's payloads into buf (grown as needed).
func (p *Replayer) load(w *barrier.Window, buf []byte) ([]byte, []int64, error) {
	if int64(cap(buf)) < w.Bytes {
		buf = alignedBuffer(int(w.Bytes))
	}
	buf = buf[:w.Bytes]
	offs := make([]int64, len(w.Entries))
	var off int64
	for i, e := range w.Entries {
		offs[i] = off
		n := e.PayloadLen()
		if n == 0 {
			continue
		}
		if err := p.r.ReadPayload(e, buf[off:off+n]); err != nil {
			return buf, nil, err
		}
		off += n
	}
	return buf, offs, nil
}

// alignedBuffer returns n bytes whose address is a multiple of bufAlign.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+bufAlign)
	a := int(uintptr(unsafe.Pointer(&b[0])) & (bufAlign - 1))
	if a != 0 {
		a = bufAlign - a
	}
	return b[a : a+n : a+n]
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
