package blocksync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/retry"
)

// SyncMode says what a sync sends.
type SyncMode int

const (
	// SyncDiff compares digests first (hierarchically, see digest.go) and
	// sends only the leaves that differ.
	SyncDiff SyncMode = iota
	// SyncFull sends every block.
	SyncFull
)

func (m SyncMode) String() string {
	if m == SyncFull {
		return "full"
	}
	return "diff"
}

// SyncDoneLabel is the label of the MARK that ends a complete sync: its
// entry index is the number of blocks, so a sync journal whose durable
// position is past it is complete.
const SyncDoneLabel = "logship-sync-done"

// SyncConfig configures Sync.
type SyncConfig struct {
	// Source is the device (or image file) to copy.
	Source string
	// Addr is the server's host:port; Client configures the session
	// (Task, Streams, authentication, Compress).
	Addr   string
	Client parallel.ClientConfig
	Mode   SyncMode
	// BlockSize is the unit of reading and scheduling, and the block of
	// the entries' HEAD (DefaultBlockSize if 0); Granularity the unit of
	// comparison and of transfer (DefaultSyncGranularity if 0).
	BlockSize   int64
	Granularity int64
	// Parallel is how many blocks are read at once (DefaultParallel if 0).
	Parallel int
	// MarkFirst puts a mark in the journal of the log-writes target DMName
	// before anything is read, so that shipping that journal from the mark
	// (ship --from-mark) makes the image converge on a live device.
	MarkFirst bool
	DMName    string
	// Freeze, if set, is the mount point of a file system on Source,
	// frozen (FIFREEZE) for the whole sync, so that the copy is
	// consistent, and thawed after (writers to it block meanwhile).
	Freeze string
	// Restart starts over even when the task holds an interrupted sync of
	// the same source shape (which is otherwise resumed).
	Restart bool
	// RetryFor is how long Sync keeps reconnecting while nothing gets
	// acked (DefaultRetryFor if 0; negative: never).
	RetryFor time.Duration
	// MaxInFlight bounds the bytes read and not yet sent (64 MiB if 0).
	MaxInFlight int64
	// Progress, if set, is updated as the sync goes.
	Progress *Progress
	// Log receives retries and warnings (slog.Default() if nil).
	Log *slog.Logger

	mark func(name, label string) error // devio.Mark; tests replace it
}

// SyncStats says what a Sync did.
type SyncStats struct {
	Task    string
	Journal string   // the sync journal's identity
	Mode    SyncMode // as run: full when the task was created by this sync
	Mark    string   // with MarkFirst: the mark to ship from
	Size    int64    // bytes of the source
	Blocks  int64
	// StartBlock is where this run started: past 0 when it resumed an
	// interrupted sync (Resumed) or reconnected.
	StartBlock int64
	Resumed    bool
	Complete   bool // the server holds the whole sync (its done mark)

	BlocksSent   int64 // blocks with something sent
	Frames       int64 // DATA frames
	WriteBytes   int64 // data bytes of writes
	DiscardBytes int64 // bytes sent as discards (zeros)
	Windows      int64
	Calls        int64 // block calls (digests)
	CallBytes    int64 // their request and reply payload bytes
	WireOut      int64 // bytes on the wire to the server, all sessions
	WireIn       int64 // and from it
	Sessions     int
	Elapsed      time.Duration
}

// syncer runs one Sync.
type syncer struct {
	cfg  SyncConfig
	log  *slog.Logger
	dev  *devio.Device
	tree digest.Tree

	bufs *alignedPool // block buffers of the workers

	id   string // the sync journal, once chosen
	mark string

	mu sync.Mutex // guards st
	st SyncStats
}

// Sync copies cfg.Source to the image of task cfg.Client.Task (created
// with the source's size when missing): every block (SyncFull), or what
// differs (SyncDiff). Blocks go as windows of a sync journal (see
// control.SyncJournalPrefix): the entry index is the block number, writes
// carry the sub-ranges that hold data and discards those that are zeros,
// so the server makes them durable and acks them like any window. An
// interrupted sync resumes after the last durable block, whether Sync
// reconnects by itself or is run again.
func Sync(ctx context.Context, cfg SyncConfig) (st SyncStats, err error) {
	start := time.Now()
	s, err := newSyncer(cfg)
	if err != nil {
		return SyncStats{}, err
	}
	defer s.dev.Close()
	if cfg.Freeze != "" {
		fr, ferr := Freeze(cfg.Freeze)
		if ferr != nil {
			return s.stats(), ferr
		}
		defer func() {
			if terr := fr.Thaw(); terr != nil && err == nil {
				err = terr
			}
		}()
	}
	err = s.run(ctx)
	st = s.stats()
	st.Elapsed = time.Since(start)
	return st, err
}

func newSyncer(cfg SyncConfig) (*syncer, error) {
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.Granularity == 0 {
		cfg.Granularity = DefaultSyncGranularity
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.RetryFor == 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64 << 20
	}
	if cfg.mark == nil {
		cfg.mark = devio.Mark
	}
	switch {
	case cfg.Source == "":
		return nil, errors.New("source: sync: no source")
	case cfg.Addr == "" || cfg.Client.Task == "":
		return nil, errors.New("source: sync: no server address or task")
	case cfg.MarkFirst && cfg.DMName == "":
		return nil, errors.New("source: sync: a mark first needs the device-mapper name of the log-writes target")
	case cfg.Mode != SyncDiff && cfg.Mode != SyncFull:
		return nil, fmt.Errorf("source: sync: mode %d", cfg.Mode)
	}
	s := &syncer{cfg: cfg, log: cfg.Log}
	if s.log == nil {
		s.log = slog.Default()
	}
	dev, err := openLocal(cfg.Source, devio.Options{})
	if err != nil {
		return nil, err
	}
	size := dev.Size()
	s.tree = digest.Tree{Size: size, Granularity: cfg.Granularity, BlockSize: cfg.BlockSize}
	switch {
	case size <= 0 || size%BlockSectorSize != 0:
		dev.Close()
		return nil, fmt.Errorf("%w: %s has %d bytes, not a positive multiple of %d", ErrSize, cfg.Source, size, BlockSectorSize)
	case s.tree.Check() != nil:
		dev.Close()
		return nil, s.tree.Check()
	}
	s.dev = dev
	s.bufs = newAlignedPool(cfg.Parallel, cfg.BlockSize)
	s.st = SyncStats{Task: cfg.Client.Task, Mode: cfg.Mode, Size: size, Blocks: s.tree.Blocks()}
	cfg.Progress.setTotal(size)
	return s, nil
}

func (s *syncer) stats() SyncStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

func (s *syncer) update(f func(st *SyncStats)) {
	s.mu.Lock()
	f(&s.st)
	s.mu.Unlock()
}

// run makes sessions until the sync is complete, retrying what a new
// session may cure.
func (s *syncer) run(ctx context.Context) error {
	var failSince time.Time
	wait := 200 * time.Millisecond
	for {
		progressed, err := s.session(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if !retryable(err) || s.cfg.RetryFor < 0 {
			return err
		}
		now := time.Now()
		if progressed || failSince.IsZero() {
			failSince, wait = now, 200*time.Millisecond
		}
		left := s.cfg.RetryFor - now.Sub(failSince)
		if left <= 0 {
			return &retry.GaveUp{Addr: s.cfg.Addr, After: now.Sub(failSince), Err: err}
		}
		s.log.Warn("sync: "+retry.Waiting(s.cfg.Addr, err, left), "server", s.cfg.Addr, "task", s.cfg.Client.Task, "kind", retry.Classify(err), "in", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(min(wait, left)):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// syncID is what the journal identity of a sync records.
type syncID struct {
	blockSize, size int64
	run             uint64
	mark            string
}

func (id syncID) String() string {
	s := fmt.Sprintf("%sv1 bs=%d size=%d run=%016x", control.SyncJournalPrefix, id.blockSize, id.size, id.run)
	if id.mark != "" {
		s += " mark=" + id.mark
	}
	return s
}

// parseSyncID parses what syncID.String wrote.
func parseSyncID(s string) (syncID, bool) {
	rest, ok := strings.CutPrefix(s, control.SyncJournalPrefix+"v1 ")
	if !ok {
		return syncID{}, false
	}
	var id syncID
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "bs":
			id.blockSize, err = strconv.ParseInt(v, 10, 64)
		case "size":
			id.size, err = strconv.ParseInt(v, 10, 64)
		case "run":
			id.run, err = strconv.ParseUint(v, 16, 64)
		case "mark":
			id.mark = v
		default:
			return syncID{}, false
		}
		if err != nil {
			return syncID{}, false
		}
	}
	return id, id.String() == s
}

// choose picks the sync journal: the interrupted sync the task holds, if
// it is of this source's shape, or a new one (after the mark, with
// MarkFirst).
func (s *syncer) choose(ctx context.Context, sess *parallel.Session) error {
	cfg := &s.cfg
	ts, ok, err := TaskStatus(ctx, sess, cfg.Client.Task)
	if err != nil {
		return err
	}
	if ok && !cfg.Restart {
		if id, ok := parseSyncID(ts.Durable.Journal); ok && id.blockSize == cfg.BlockSize && id.size == s.tree.Size &&
			(id.mark != "" || !cfg.MarkFirst) && ts.Durable.NextEntry <= s.tree.Blocks() {
			s.id, s.mark = ts.Durable.Journal, id.mark
			s.update(func(st *SyncStats) { st.Resumed = true })
			s.log.Info("sync: resuming an interrupted sync", "task", cfg.Client.Task, "journal", s.id, "block", ts.Durable.NextEntry)
			return nil
		}
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	id := syncID{blockSize: cfg.BlockSize, size: s.tree.Size, run: binary.LittleEndian.Uint64(rnd[:])}
	if cfg.MarkFirst {
		id.mark = fmt.Sprintf("logship-sync-%016x", id.run)
		if err := cfg.mark(cfg.DMName, id.mark); err != nil {
			return &LocalError{Path: cfg.DMName, Err: fmt.Errorf("putting mark %s in the journal: %w", id.mark, err)}
		}
	}
	s.id, s.mark = id.String(), id.mark
	return nil
}

// session runs one session of the sync. progressed says whether a window
// got acked.
func (s *syncer) session(ctx context.Context) (progressed bool, err error) {
	cfg := &s.cfg
	sess, err := parallel.Dial(ctx, cfg.Addr, cfg.Client)
	if err != nil {
		return false, err
	}
	c := &caller{sess: sess}
	s.update(func(st *SyncStats) { st.Sessions++ })
	defer func() {
		sess.Close()
		out, in := sessionWire(sess)
		_, progressed = sess.Acked()
		s.update(func(st *SyncStats) {
			st.WireOut += out
			st.WireIn += in
			st.Calls += c.calls.Load()
			st.CallBytes += c.bytes.Load()
		})
	}()
	if s.id == "" {
		if err := s.choose(ctx, sess); err != nil {
			return false, err
		}
	}
	task, err := openBlocks(ctx, sess, control.Open{Size: s.tree.Size, Journal: s.id})
	if err != nil {
		return false, err
	}
	if task.ImageSize != s.tree.Size {
		return false, fmt.Errorf("%w: task %q has a %d-byte image, %s has %d bytes", ErrSize, cfg.Client.Task, task.ImageSize, cfg.Source, s.tree.Size)
	}
	mode := cfg.Mode
	if task.Created {
		mode = SyncFull // nothing to compare with
	}
	from := task.Durable.NextEntry
	s.update(func(st *SyncStats) {
		st.Journal, st.Mark, st.Mode, st.StartBlock = s.id, s.mark, mode, from
	})
	if from > s.tree.Blocks() {
		s.update(func(st *SyncStats) { st.Complete = true })
		return false, nil // the done mark is durable
	}
	if p := cfg.Progress; p != nil {
		p.total.Store(max(0, s.tree.Size-from*s.tree.BlockSize))
		p.scanned.Store(0)
	}
	s.log.Debug("sync: session open", "task", task.Name, "created", task.Created, "mode", mode, "from_block", from, "window", task.Durable.NextWindow)
	// Sending uses its own context: when ctx ends, the blocks sent are
	// still made durable (the open window is ended and acked) for up to
	// DefaultDrain, so that the next run resumes after them.
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	stopDrain := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(DefaultDrain, cancelSend)
		context.AfterFunc(sendCtx, func() { t.Stop() })
	})
	defer func() {
		stopDrain()
		cancelSend()
	}()
	w := &syncSender{s: s, sess: sess, ctx: sendCtx, seq: task.Durable.NextWindow, first: task.Durable.NextWindow}
	if err := s.pipeline(ctx, c, w, mode, from); err != nil {
		// Stopped, or a failure of our own (a read error): what was sent
		// in whole blocks is made durable if the session still works.
		if sess.Err() == nil {
			if derr := w.drain(); derr != nil {
				s.log.Warn("sync: the last window sent may not be durable", "err", derr)
			}
		}
		return false, err
	}
	// The done mark, in a window of its own.
	done := control.AppendEntry(nil, journal.Entry{Flags: journal.FlagMark, Label: SyncDoneLabel}, nil)
	if err := sess.SendFrame(sendCtx, parallel.Frame{Type: parallel.TypeData, Window: w.seq, Entry: uint64(s.tree.Blocks()), Payload: done}); err != nil {
		return false, err
	}
	if err := w.end(); err != nil {
		return false, err
	}
	if err := sess.WaitAck(sendCtx, w.seq-1); err != nil {
		return false, err
	}
	s.update(func(st *SyncStats) { st.Complete = true })
	return true, nil
}

// blockJob is a block to send: the byte ranges of it that go, and, once
// a worker has read them, its pieces.
type blockJob struct {
	block int64
	runs  []Range
	cost  int64         // bytes reserved in the in-flight budget
	out   chan blockOut // 1-buffered: the worker's result
}

type blockOut struct {
	pieces []piece
	err    error
}

// piece is one entry frame: its payload (an entry header and, for a
// write, the data), and the bytes it writes or discards.
type piece struct {
	payload []byte
	n       int64
	discard bool
}

// maxPiece bounds the data of one write frame.
const maxPiece = 4 << 20

// pipeline reads, compares and sends the blocks from block from on: a
// producer finds what to send (every block, or what the comparison
// finds), workers read it in parallel, and the blocks go out in order.
func (s *syncer) pipeline(ctx context.Context, c *caller, w *syncSender, mode SyncMode, from int64) error {
	g, gctx := errgroup.WithContext(ctx)
	order := make(chan *blockJob, 1024)
	budget := semaphore.NewWeighted(s.cfg.MaxInFlight)
	g.Go(func() error {
		defer close(order)
		var workers errgroup.Group
		workers.SetLimit(s.cfg.Parallel)
		err := s.produce(gctx, c, mode, from, func(block int64, runs []Range) error {
			_, n := s.tree.Span(s.tree.BlockLevel(), block)
			n = min(n, s.cfg.MaxInFlight)
			if err := budget.Acquire(gctx, n); err != nil {
				return err
			}
			job := &blockJob{block: block, runs: runs, cost: n, out: make(chan blockOut, 1)}
			select {
			case order <- job:
			case <-gctx.Done():
				budget.Release(n)
				return gctx.Err()
			}
			workers.Go(func() error {
				ps, err := s.pieces(gctx, job, mode == SyncFull)
				job.out <- blockOut{ps, err}
				return nil
			})
			return nil
		})
		workers.Wait()
		return err
	})
	g.Go(func() error {
		for job := range order {
			out, err := w.wait(gctx, job)
			if err == nil {
				err = out.err
			}
			if err == nil {
				err = w.send(job.block, out.pieces)
			}
			budget.Release(job.cost)
			if err != nil {
				return err
			}
		}
		if gctx.Err() != nil {
			return gctx.Err()
		}
		return w.flush()
	})
	return g.Wait()
}

// produce calls emit for every block from block from on that has
// something to send, in order, with the ranges to send.
func (s *syncer) produce(ctx context.Context, c *caller, mode SyncMode, from int64, emit func(int64, []Range) error) error {
	t := s.tree
	if mode == SyncFull {
		for b := from; b < t.Blocks(); b++ {
			off, n := t.Span(t.BlockLevel(), b)
			if err := emit(b, []Range{{off, n}}); err != nil {
				return err
			}
		}
		return nil
	}
	rd := newBlockReader(s.dev, s.cfg.Source, t, s.cfg.Parallel, s.cfg.Progress)
	firstSpan := from * t.BlockSize / t.Unit(SpanLevel(t))
	return c.compareSpans(ctx, rd, firstSpan, func(leaves []int64) error {
		runs := leafRuns(t, leaves)
		for len(runs) > 0 {
			b := runs[0].Offset / t.BlockSize
			k := 1
			for k < len(runs) && runs[k].Offset/t.BlockSize == b {
				k++
			}
			if b >= from {
				if err := emit(b, runs[:k]); err != nil {
					return err
				}
			}
			runs = runs[k:]
		}
		return nil
	})
}

// pieces reads the block of job and cuts its runs into pieces: runs of
// Granularity-sized pieces that hold data become writes, those that hold
// only zeros discards. scanned says whether the read counts as scanning
// progress (a full sync reads nothing else).
func (s *syncer) pieces(ctx context.Context, job *blockJob, scanned bool) ([]piece, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := s.tree
	boff, bn := t.Span(t.BlockLevel(), job.block)
	block := s.bufs.get()[:bn]
	if err := readAt(s.dev, s.cfg.Source, block, boff); err != nil {
		s.bufs.put(block)
		return nil, err
	}
	if scanned {
		s.cfg.Progress.scan(bn)
	}
	g := t.Granularity
	type run struct {
		off, n int64
		zero   bool
	}
	var rs []run
	for _, r := range job.runs {
		for at := r.Offset; at < r.End(); at += g {
			n := min(g, r.End()-at)
			zero := digest.IsZero(block[at-boff : at-boff+n])
			if k := len(rs) - 1; k >= 0 && rs[k].off+rs[k].n == at && rs[k].zero == zero && (zero || rs[k].n+n <= maxPiece) {
				rs[k].n += n
				continue
			}
			rs = append(rs, run{at, n, zero})
		}
	}
	ps := make([]piece, len(rs))
	for i, r := range rs {
		e := journal.Entry{Sector: uint64(r.off / BlockSectorSize), NrSectors: uint64(r.n / BlockSectorSize)}
		var data []byte
		if r.zero {
			e.Flags = journal.FlagDiscard
		} else {
			data = block[r.off-boff : r.off-boff+r.n]
		}
		ps[i] = piece{payload: control.AppendEntry(make([]byte, 0, control.EntryHeader+len(data)), e, data), n: r.n, discard: r.zero}
	}
	s.bufs.put(block)
	return ps, nil
}

// syncSender sends blocks as windows of the sync journal, in order. A
// window ends on a block boundary: the pieces of a block are never split
// over two windows, so the durable position is always a block boundary.
type syncSender struct {
	s     *syncer
	sess  *parallel.Session
	ctx   context.Context // for sending: outlives the sync's ctx by a drain
	seq   uint64          // the open window
	first uint64          // the session's first window

	frames  int   // frames in the open window
	cost    int64 // their credit cost
	partial bool  // a block's pieces were not all sent: the window must not end
}

// idleFlush: when the next block is not ready within it, the open window
// is sent, so that what was sent becomes durable while the comparison
// goes on.
const idleFlush = 50 * time.Millisecond

// wait waits for job's pieces, ending the open window if they are slow.
func (w *syncSender) wait(ctx context.Context, job *blockJob) (blockOut, error) {
	if w.frames > 0 {
		t := time.NewTimer(idleFlush)
		defer t.Stop()
		select {
		case out := <-job.out:
			return out, nil
		case <-t.C:
			if err := w.end(); err != nil {
				return blockOut{}, err
			}
		case <-ctx.Done():
			return blockOut{}, ctx.Err()
		}
	}
	select {
	case out := <-job.out:
		return out, nil
	case <-ctx.Done():
		return blockOut{}, ctx.Err()
	}
}

// maxWindow bounds the cost of a window.
func (w *syncSender) maxWindow() int64 { return min(w.sess.Credit()/4, 8<<20) }

// send sends the pieces of block as frames of the open window, ending it
// first when they would make it too large.
func (w *syncSender) send(block int64, ps []piece) error {
	if len(ps) == 0 {
		return nil
	}
	var bytes int64
	for _, p := range ps {
		bytes += int64(len(p.payload))
	}
	need := w.sess.WindowCost(len(ps), bytes)
	if need > w.sess.Credit() {
		return fmt.Errorf("%w: block %d needs %d bytes of credit in one window, the server grants %d (use a smaller block size)",
			ErrEntryTooLarge, block, need, w.sess.Credit())
	}
	if w.frames > 0 && w.cost+need > w.maxWindow() {
		if err := w.end(); err != nil {
			return err
		}
	}
	var data, discard int64
	w.partial = true
	for _, p := range ps {
		if p.discard {
			discard += p.n
		} else {
			data += p.n
		}
		if err := w.sess.SendFrame(w.ctx, parallel.Frame{Type: parallel.TypeData, Window: w.seq, Entry: uint64(block), Payload: p.payload}); err != nil {
			return err
		}
		w.frames++
		if !p.discard {
			w.s.cfg.Progress.move(p.n)
		}
	}
	w.partial = false
	w.cost += need - w.sess.WindowCost(0, 0)
	w.s.update(func(st *SyncStats) {
		st.BlocksSent++
		st.Frames += int64(len(ps))
		st.WriteBytes += data
		st.DiscardBytes += discard
	})
	return nil
}

// end ends the open window.
func (w *syncSender) end() error { return w.endCtx(w.ctx) }

func (w *syncSender) endCtx(ctx context.Context) error {
	if err := w.sess.EndWindow(ctx, w.seq); err != nil {
		return err
	}
	w.seq++
	w.frames, w.cost = 0, 0
	w.s.update(func(st *SyncStats) { st.Windows++ })
	return nil
}

// flush ends the open window if it has frames.
func (w *syncSender) flush() error {
	if w.frames == 0 {
		return nil
	}
	return w.end()
}

// drain, after a stop or a failure of the pipeline, ends the open window
// unless a block in it is incomplete, and waits until the server acks
// what was sent, for at most DefaultDrain.
func (w *syncSender) drain() error {
	if w.partial {
		return errors.New("a block was cut short: its window is not sent")
	}
	ctx, cancel := context.WithTimeout(w.ctx, DefaultDrain)
	defer cancel()
	if w.frames > 0 {
		if err := w.endCtx(ctx); err != nil {
			return err
		}
	}
	if w.seq == w.first {
		return nil
	}
	return w.sess.WaitAck(ctx, w.seq-1)
}
