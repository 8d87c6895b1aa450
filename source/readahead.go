package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/semaphore"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// DATA payloads of more than minPooled bytes come from pools of buffers
// and go back to them once a stream's writer has written them
// (parallel.ClientConfig.Written): shipping hundreds of megabytes a second
// would otherwise allocate, and the kernel or the runtime zero, every byte
// of them only to read the journal over the zeros. Buffers in use are
// bounded by the server's credit (frames queued on the streams) plus the
// read-ahead budget; a pool holds only buffers not in use. The pools are
// per capacity class: 5/4, 6/4, 7/4 and 8/4 of each power of two, so that
// a payload of an entry header and a power of two of data (the common
// case) wastes a quarter of its buffer at most.
const (
	minPooledShift = 16 // 64 KiB
	minPooled      = 1 << minPooledShift
	maxPooledShift = 23 // parallel.MaxPayload (TestPayloadPool checks it)
)

var payloadPools [(maxPooledShift - minPooledShift) * 4]sync.Pool

// poolClass returns the pool index and the buffer capacity for a payload
// of n bytes, minPooled < n ≤ parallel.MaxPayload.
func poolClass(n int) (index, size int) {
	k := bits.Len(uint(n-1)) - 1 // 2^k < n ≤ 2^(k+1)
	step := 1 << (k - 2)
	i := (n - 1<<k + step - 1) / step // 1..4
	return (k-minPooledShift)*4 + i - 1, 1<<k + i*step
}

// getPayload returns a buffer of n bytes whose contents are undefined.
func getPayload(n int) []byte {
	if n <= minPooled || n > parallel.MaxPayload {
		return make([]byte, n)
	}
	c, size := poolClass(n)
	if b, ok := payloadPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, size)
}

// putPayload gives b back to its pool; b must not be used afterwards.
// Buffers that getPayload did not make (their capacity is not a class's)
// are left to the garbage collector.
func putPayload(b []byte) {
	n := cap(b)
	if n <= minPooled || n > parallel.MaxPayload {
		return
	}
	c, size := poolClass(n)
	if size != n {
		return
	}
	b = b[:0]
	payloadPools[c].Put(&b)
}

// readEntry is an entry read ahead, with the DATA payloads that carry it.
type readEntry struct {
	e      journal.Entry
	frames []payload // DATA payloads: entry header (and label, or data), in order
	head   int64     // entries the journal was known to hold when e was read
	at     time.Time // when e was read
	held   int64     // read-ahead budget held until done
	err    error     // instead of an entry: why there is none (io.EOF at the end)
}

// readAhead reads the journal's entries and their payloads in a goroutine
// of its own, up to budget bytes ahead of the sender, so that the journal
// is read while the windows before are on the wire or the sender waits for
// credit. It also makes the checks of an entry that need no session
// state, before reading its payload.
type readAhead struct {
	w      *windowSender
	ch     chan *readEntry
	budget int64
	sem    *semaphore.Weighted
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// readAheadEntries bounds the entries read ahead, whatever their size.
const readAheadEntries = 256

// startReadAhead starts reading entries from w.src, up to budget bytes of
// payload ahead; stop must be called.
func (w *windowSender) startReadAhead(ctx context.Context, budget int64) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	ra := &readAhead{w: w, ch: make(chan *readEntry, readAheadEntries), budget: budget,
		sem: semaphore.NewWeighted(budget), cancel: cancel}
	ra.wg.Go(func() { ra.run(ctx) })
	return ra
}

// stop ends the reading and gives back the buffers of the entries read
// and not taken.
func (ra *readAhead) stop() {
	ra.cancel()
	ra.wg.Wait()
	for {
		select {
		case re := <-ra.ch:
			for _, p := range re.frames {
				putPayload(p.b)
			}
		default:
			return
		}
	}
}

// done releases the budget held by re once its frames are handed over.
func (ra *readAhead) done(re *readEntry) {
	if re.held > 0 {
		ra.sem.Release(re.held)
		re.held = 0
	}
}

// next returns the next entry read; with idle, errIdle when none comes
// within IdleFlush.
func (ra *readAhead) next(ctx context.Context, idle bool) (*readEntry, error) {
	if err := ctx.Err(); err != nil {
		// Entries may be ready: a stop must not wait for the backlog.
		return nil, err
	}
	var timeout <-chan time.Time
	if idle {
		t := time.NewTimer(ra.w.s.cfg.IdleFlush)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case re := <-ra.ch:
		if re.err != nil {
			return nil, re.err
		}
		return re, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timeout:
		return nil, errIdle
	}
}

// run is the reading goroutine. It ends after handing over an error
// (io.EOF at the end of the journal), or when ctx ends.
func (ra *readAhead) run(ctx context.Context) {
	w := ra.w
	follow := w.s.cfg.Follow
	for {
		e, err := ra.nextEntry(ctx, follow)
		re := &readEntry{e: e, err: err, at: time.Now()}
		if err == nil {
			re.head = headOf(w.src)
			if err := w.check(e); err != nil {
				re.err = err
			} else {
				re.held = min(w.payloadBytes(e), ra.budget)
				if err := ra.sem.Acquire(ctx, re.held); err != nil {
					return
				}
				re.frames, re.err = w.readFrames(e)
				if re.err != nil {
					ra.done(re)
				}
			}
		} else if !errors.Is(err, io.EOF) && ctx.Err() == nil {
			re.err = w.j.wrap(err)
		}
		select {
		case ra.ch <- re:
		case <-ctx.Done():
			ra.done(re)
			for _, p := range re.frames {
				putPayload(p.b)
			}
			return
		}
		if re.err != nil {
			return
		}
	}
}

// nextEntry returns the next entry of the journal. Following a live
// journal, it notes the journal's head every IdleFlush while it waits.
func (ra *readAhead) nextEntry(ctx context.Context, follow bool) (journal.Entry, error) {
	w := ra.w
	if !follow {
		return w.src.Next(ctx)
	}
	for {
		ictx, cancel := context.WithTimeout(ctx, w.s.cfg.IdleFlush)
		e, err := w.src.Next(ictx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			w.s.noteHead(headOf(w.src))
			continue
		}
		return e, err
	}
}

// payloadBytes is what the frames of e take.
func (w *windowSender) payloadBytes(e journal.Entry) int64 {
	total := int64(0)
	if e.IsWrite() {
		total = e.PayloadLen()
	}
	chunk := maxFrameData(int64(e.SectorSize))
	frames := max(1, (total+chunk-1)/chunk)
	return total + frames*control.EntryHeader + int64(len(e.Label))
}

// payload is one DATA payload read ahead, with its xxhash64.
type payload struct {
	b   []byte
	sum uint64
}

// readFrames checks that e fits in one window of the session's credit and
// reads it into DATA payloads: one, or several sub-range writes when its
// data does not fit one frame. Each payload is hashed for the frame
// checksum as it is read, while its bytes are still in the CPU's cache
// (parallel.Frame.Sum).
func (w *windowSender) readFrames(e journal.Entry) ([]payload, error) {
	total := e.PayloadLen()
	if !e.IsWrite() {
		total = 0
	}
	ss := int64(e.SectorSize)
	chunk := maxFrameData(ss)
	frames := max(1, (total+chunk-1)/chunk)
	if cost := w.sess.WindowCost(int(frames), total+frames*control.EntryHeader+int64(len(e.Label))); cost > w.sess.Credit() {
		return nil, fmt.Errorf("%w: entry %d (%s of %d bytes at journal offset %d) needs %d bytes of credit in one window, the server grants %d",
			ErrEntryTooLarge, e.Index, e.Flags, total, e.Offset, cost, w.sess.Credit())
	}
	if total <= hashChunk {
		// Small: through the source, which may have it read ahead.
		buf := getPayload(control.EntryHeader + len(e.Label) + int(total))
		control.AppendEntry(buf[:0], e, nil)
		if total > 0 {
			if err := w.src.ReadPayload(e, buf[control.EntryHeader:]); err != nil {
				putPayload(buf)
				return nil, w.j.wrap(err)
			}
		}
		return []payload{{buf, xxhash.Sum64(buf)}}, nil
	}
	out := make([]payload, 0, frames)
	var d xxhash.Digest
	for off := int64(0); off < total; off += chunk {
		n := min(chunk, total-off)
		sub := e
		if total > chunk {
			sub.Sector = e.Sector + uint64(off/ss)
			sub.NrSectors = uint64(n / ss)
		}
		buf := getPayload(control.EntryHeader + int(n))
		control.AppendEntry(buf[:0], sub, nil)
		d.Reset()
		d.Write(buf[:control.EntryHeader])
		if err := w.readHashed(&d, buf[control.EntryHeader:], e.PayloadOffset()+off); err != nil {
			putPayload(buf)
			for _, p := range out {
				putPayload(p.b)
			}
			return nil, w.j.wrap(&journal.EntryError{Index: e.Index, Offset: e.Offset,
				Err: fmt.Errorf("reading %d payload bytes at %d: %w", n, e.PayloadOffset()+off, err)})
		}
		out = append(out, payload{buf, d.Sum64()})
	}
	return out, nil
}

// hashChunk is how much readHashed reads before it hashes: a fraction of
// a core's L2 cache.
const hashChunk = 256 << 10

// readHashed fills p from the journal at off, hashing into d each piece
// just read.
func (w *windowSender) readHashed(d *xxhash.Digest, p []byte, off int64) error {
	for len(p) > 0 {
		n := min(len(p), hashChunk)
		if m, err := w.j.r.ReadAt(p[:n], off); m < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		d.Write(p[:n])
		p, off = p[n:], off+int64(n)
	}
	return nil
}
