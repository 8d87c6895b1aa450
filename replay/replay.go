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
	// Allocate reserves the blocks of each window's writes before they
	// are written, when the target is a regular file (fallocate).
	Allocate bool
	// Writeback starts writing the bytes of applied windows to the
	// target's disk in the background (sync_file_range, at least
	// writebackBytes at a time), so that the disk works while later
	// windows are copied and a final Sync finds little left to do. It is
	// advice for a devio.Device opened without O_DIRECT: it adds no
	// guarantee, and a Sync is still needed for durability.
	Writeback bool
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

// Replayer replays a journal at rest onto a target. One goroutine walks
// the entry headers and cuts windows; the window's extents are written by
// Parallel writers, each of which reads a piece of a payload (at most
// chunkSize bytes) into a buffer of its own and writes it at once, so the
// bytes are still in the CPU's cache when they are written and a replay
// holds Parallel buffers in memory, whatever the journal.
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

// cutWindow is a window ready to apply; or, with w nil, only a cut point
// to report.
type cutWindow struct {
	w  *barrier.Window
	at *journal.Entry // the cut point this window ends at, if any
}

// bufAlign aligns payload buffers so that targets opened with O_DIRECT can
// take them as they are.
const bufAlign = 4096

// chunkSize bounds one read and one write of a Replayer: large enough for
// few system calls, small enough to stay in the CPU's cache between the
// read and the write.
const chunkSize = 1 << 20

// smallPayload: after an entry with at most this many payload bytes the
// walker reads the next header with the journal's read-ahead.
const smallPayload = 64 << 10

// Run applies entries until stop is hit (the stopping entry included) or
// the journal ends. Windows are also cut after every entry for which cut
// returns true; after such an entry has been applied, with everything before
// it, at is called with it (cut and at may be nil). Run does not sync the
// target; at may.
func (p *Replayer) Run(ctx context.Context, stop journal.Stop, cut func(journal.Entry) bool, at func(journal.Entry) error) (Stats, error) {
	var st Stats
	g, ctx := errgroup.WithContext(ctx)
	// Headers are small: the walker may run a few windows ahead.
	ready := make(chan cutWindow, 4)

	// The walker: splits entries into windows, reading headers only.
	g.Go(func() error {
		defer close(ready)
		s := barrier.NewSplitter(p.opt.Limits)
		send := func(w *barrier.Window, at *journal.Entry) error {
			select {
			case ready <- cutWindow{w: w, at: at}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// The previous entry's payload bytes; the first header is read
		// alone, as the first entry may be a large write.
		last := int64(smallPayload + 1)
		for walked := int64(1); ; walked++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			// Small entries: one read-ahead covers many headers. Large
			// ones: read the header alone, not a read-ahead of payload
			// that the writers read again.
			next := p.r.Next
			if last > smallPayload {
				next = p.r.NextHeader
			}
			e, err := next()
			last = e.PayloadLen()
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

	// The flusher, with Writeback: starts the writeback of what the
	// writer has written while the writer goes on.
	var wb *writeback
	if p.opt.Writeback {
		if wb = newWriteback(p.t); wb != nil {
			g.Go(wb.run)
		}
	}

	// The writer: applies windows in order.
	g.Go(func() error {
		defer wb.close()
		bs, free := buffers(p.opt.parallel(), chunkSize)
		defer free() // after apply: no piece holds a buffer
		bufs := make(chan []byte, len(bs))
		for _, b := range bs {
			bufs <- b
		}
		for l := range ready {
			ws, sp, err := p.apply(ctx, l.w, bufs)
			if err != nil {
				return err
			}
			wb.add(sp, ws.Written)
			st.Windows++
			st.Written += ws.Written
			st.Discarded += ws.Discarded
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

// apply writes window w's coalesced extents, cut into pieces of at most
// chunkSize bytes that Parallel writers read from the journal and write
// at once, in any order: the extents are disjoint, and so are the pieces.
// A large extent is then written by all writers at once, one piece each,
// so that reading a piece and writing another overlap.
// It also returns the span of the bytes written, from the first to the
// end of the last.
func (p *Replayer) apply(ctx context.Context, w *barrier.Window, bufs chan []byte) (Stats, span, error) {
	var st Stats
	var sp span
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(p.opt.parallel())
	xs := w.Coalesce()
	if p.opt.Allocate {
		for _, x := range xs {
			if !x.Discard {
				allocate(p.t, x.Start, x.Len)
			}
		}
	}
	for _, x := range xs {
		if x.Discard {
			if p.opt.NoDiscard {
				continue
			}
			st.Discarded += x.Len
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error { return writeExtent(p.t, x, nil) })
			continue
		}
		st.Written += x.Len
		sp = sp.union(span{x.Start, x.Start + x.Len})
		off := x.Start
		for _, part := range x.Parts {
			e := w.Entries[part.Entry]
			for done := int64(0); done < part.Len && ctx.Err() == nil; {
				n := min(part.Len-done, chunkSize)
				pc := piece{e: e, src: part.Off + done, n: n, dst: off}
				g.Go(func() error {
					buf := <-bufs
					defer func() { bufs <- buf }()
					return p.copyPiece(pc, buf)
				})
				off += n
				done += n
			}
		}
	}
	return st, sp, g.Wait()
}

// piece is a part of a write: n bytes at offset src of entry e's payload,
// to write at dst of the target.
type piece struct {
	e      journal.Entry
	src, n int64
	dst    int64
}

// copyPiece reads pc from the journal into buf and writes it.
func (p *Replayer) copyPiece(pc piece, buf []byte) error {
	b := buf[:pc.n]
	// Payload's reader reads the journal with ReadAt only, which is safe
	// beside the walker's Next.
	if m, err := p.r.Payload(pc.e).ReadAt(b, pc.src); int64(m) < pc.n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return &journal.EntryError{Index: pc.e.Index, Offset: pc.e.Offset,
			Err: fmt.Errorf("reading %d payload bytes at %d: %w", pc.n, pc.e.PayloadOffset()+pc.src, err)}
	}
	if _, err := p.t.WriteAt(b, pc.dst); err != nil {
		return fmt.Errorf("writing %d bytes at %d: %w", pc.n, pc.dst, err)
	}
	return nil
}

// heapBuffers returns n buffers of size bytes from the heap, aligned to
// bufAlign.
func heapBuffers(n, size int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = alignUp(make([]byte, size+bufAlign), bufAlign)[:size:size]
	}
	return bufs
}

// alignUp returns b from its first byte whose address is a multiple of
// align (a power of two).
func alignUp(b []byte, align int) []byte {
	a := int(uintptr(unsafe.Pointer(&b[0])) & uintptr(align-1))
	if a != 0 {
		a = align - a
	}
	return b[a:]
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
