package replica

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/replay"
)

// session is the server's side of one parallel session: the task it
// claimed, once opened, and what the next window must look like.
type session struct {
	srv      *Server
	ps       *parallel.Session
	accepted chan struct{} // closed by serveSession once claimed and claimErr are set
	claimed  bool          // the task name is this session's (serveSession only)
	claimErr error         // why the task could not be claimed; read after accepted

	// Lock order: session.mu, then Server.mu, then task.mu.
	mu     sync.Mutex   // guards the fields below; held by open throughout
	t      *task        // the opened task, nil before open
	opened control.Open // the request that opened t
	exp    expect       // the next window

	task atomic.Pointer[task] // t, for status, which must not wait for mu

	started time.Time              // when the server accepted the session
	journal atomic.Pointer[string] // the journal t was opened with, for status
}

// open handles the open call: it opens or creates the task, recovers it
// and says where the source must resume.
func (ss *session) open(ctx context.Context, o control.Open) (control.Task, error) {
	name := ss.ps.Task()
	if name == "" {
		return control.Task{}, fmt.Errorf("%w: open on a session that names no task", ErrBadRequest)
	}
	if err := checkOpen(o); err != nil {
		return control.Task{}, err
	}
	if o.Live {
		return ss.openLive(ctx, o)
	}
	if ss.claimErr != nil {
		return control.Task{}, ss.claimErr
	}
	srv := ss.srv
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.t != nil {
		return ss.reopen(o, resumeAt(ss.t.position(), o.Journal))
	}
	created := false
	t, err := openTask(srv.cfg.Dir, name)
	if errors.Is(err, ErrNoTask) && o.Size > 0 && o.At == "" {
		if err = createTask(srv.cfg.Dir, name, o.Size, o.Journal, o.SectorSize); err == nil {
			created = true
			srv.log.Info("task created", "task", name, "image_size", o.Size)
			t, err = openTask(srv.cfg.Dir, name)
		}
		if err == nil && srv.cfg.Retain && !srv.cfg.SyncPerWindow {
			// Every window of this task will stay in its staging logs.
			st := t.state()
			st.History = true
			if err = t.save(st); err != nil {
				t.close()
			}
		}
	}
	if errors.Is(err, ErrNoTask) {
		return control.Task{}, fmt.Errorf("%w (open with a size to create it)", err)
	}
	if err != nil {
		srv.noteCorrupt(name, err)
		return control.Task{}, err
	}
	res, err := t.recover(ctx, srv.cfg.Retain, srv.cfg.Parallel)
	if err != nil {
		t.close()
		srv.noteCorrupt(name, err)
		return control.Task{}, err
	}
	srv.noteCorrupt(name, nil)
	if res.Windows > 0 {
		srv.log.Info("recovered from the staging log", "task", name, "windows", res.Windows, "position", fmtPos(t.position()), "stop", res.Stop)
	}
	st := t.state()
	pos := t.position()
	switch {
	case o.Size != 0 && o.Size != st.Size:
		t.close()
		return control.Task{}, fmt.Errorf("%w: task %s is %s, this open asks for %s", ErrMismatch, name, sizeName(st.Size), sizeName(o.Size))
	case pos.Journal == o.Journal && o.SectorSize != st.SectorSize:
		t.close()
		return control.Task{}, fmt.Errorf("%w: task %s: journal %s has %d-byte sectors, open says %d", ErrMismatch, name, o.Journal, st.SectorSize, o.SectorSize)
	}
	if o.At != "" {
		where, err := t.openAt(ctx, o.At, srv.cfg.Parallel)
		if err != nil {
			t.close()
			return control.Task{}, err
		}
		srv.log.Info("task open at a mark", "task", name, "mark", o.At, "found", where)
	}
	pos = resumeAt(pos, o.Journal)
	ss.t, ss.opened = t, o
	ss.task.Store(t)
	ss.journal.Store(&o.Journal)
	ss.exp = expect{pos: pos, sectorSize: o.SectorSize, size: st.Size}
	srv.mu.Lock()
	delete(srv.lastErr, name)
	srv.mu.Unlock()
	srv.log.Info("task open", "task", name, "journal", pos.Journal, "next_entry", pos.NextEntry, "next_window", pos.NextWindow)
	return control.Task{Name: name, ImageSize: st.Size, Created: created, Durable: pos, At: o.At}, nil
}

// reopen answers an open of the task this session has opened already
// (ss.mu held): the same fields again get the reply again, with the
// durable position pos.
func (ss *session) reopen(o control.Open, pos control.Position) (control.Task, error) {
	if o != ss.opened {
		return control.Task{}, fmt.Errorf("%w: task %s is already open in this session with other fields", ErrBadRequest, ss.ps.Task())
	}
	return control.Task{Name: ss.ps.Task(), ImageSize: ss.exp.size, Durable: pos, At: o.At}, nil
}

// openLive handles an open at a mark, live: it waits until a session
// shipping to the task (this server's sessions, whichever they are: a ship
// changes sessions when it follows a new log) has applied the mark to the
// image, then reads the image as it is, through a read-only handle of its
// own. The session does not hold the task, so the ship goes on; it sends
// no windows.
func (ss *session) openLive(ctx context.Context, o control.Open) (control.Task, error) {
	name := ss.ps.Task()
	if ss.claimErr != nil && !errors.Is(ss.claimErr, ErrTaskBusy) {
		return control.Task{}, ss.claimErr
	}
	srv := ss.srv
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.t != nil {
		return ss.reopen(o, control.Position{})
	}
	// The claim this session got at its start, when no ship held the task
	// at that moment (it may be between two logs), would keep the ship out.
	srv.release(ss, name)
	if err := srv.marksOf(name).wait(ctx, o.At); err != nil {
		return control.Task{}, fmt.Errorf("task %s: %w", name, err)
	}
	dir := filepath.Join(srv.cfg.Dir, name)
	st, err := loadState(dir)
	if err != nil {
		return control.Task{}, err
	}
	p := filepath.Join(dir, imageFile)
	img, err := devio.Open(p, devio.Options{})
	if err != nil {
		return control.Task{}, ioErr("opening", p, err)
	}
	if img.Size() != st.Size {
		img.Close()
		return control.Task{}, fmt.Errorf("%w: %s has %d bytes, the state says %d", ErrCorrupt, p, img.Size(), st.Size)
	}
	ss.t = &task{name: name, dir: dir, at: img, st: st, durable: st.Durable}
	ss.opened = o
	ss.exp = expect{size: st.Size}
	srv.log.Info("task open at a mark, live", "task", name, "mark", o.At)
	return control.Task{Name: name, ImageSize: st.Size, Durable: st.Durable, At: o.At}, nil
}

// resumeAt is where a source shipping journalID resumes on a task at
// durable: where it stands, or entry 0 of a new journal.
func resumeAt(durable control.Position, journalID string) control.Position {
	if durable.Journal != journalID {
		return control.Position{Journal: journalID, NextWindow: durable.NextWindow}
	}
	return durable
}

// receive takes the session's windows, checks each and hands it to the
// applier, until the session ends. It returns the error to tell the client
// about, nil when the client ended the session.
func (ss *session) receive(ctx context.Context) (err error) {
	var ap applier
	defer func() {
		if ap != nil {
			if ferr := ap.finish(); err == nil {
				err = ferr
			}
		}
	}()
	for {
		pw, err := ss.ps.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %w", ErrShutdown, ctx.Err())
			}
			return nil // the client closed or failed: the transport told it
		}
		ss.mu.Lock()
		t, exp, at := ss.t, ss.exp, ss.opened.At
		ss.mu.Unlock()
		if t == nil {
			pw.Release()
			return fmt.Errorf("%w: window %d arrived before open", ErrNotOpen, pw.Seq)
		}
		if at != "" {
			pw.Release()
			return fmt.Errorf("%w: window %d on a session that opened task %s at mark %q", ErrReadOnly, pw.Seq, t.name, at)
		}
		w, err := decodeWindow(pw.Seq, pw.Frames, exp)
		if err != nil {
			pw.Release()
			return err
		}
		w.pw = pw
		ss.srv.received(t, w)
		ss.mu.Lock()
		ss.exp.pos = w.pos()
		ss.mu.Unlock()
		if ap == nil {
			if ap, err = ss.srv.newApplier(ss.ps, t, exp); err != nil {
				w.release()
				return err
			}
		}
		if err := ap.put(ctx, w); err != nil {
			return err
		}
	}
}

// applier makes windows durable, applies them and acks them.
type applier interface {
	// put takes a checked window, next in sequence, and becomes
	// responsible for releasing it. It returns the applier's first error.
	put(ctx context.Context, w *window) error
	// finish waits until every window put is durable, applied and
	// released (or abandoned after an error) and returns the first error.
	finish() error
}

// newApplier starts the applier of a session whose first window is exp.
func (srv *Server) newApplier(ps *parallel.Session, t *task, exp expect) (applier, error) {
	if st := t.state(); st.History && (srv.cfg.SyncPerWindow || !srv.cfg.Retain) {
		// These windows will not all stay in the staging logs.
		st.History = false
		if err := t.save(st); err != nil {
			return nil, fmt.Errorf("task %s: %w", t.name, err)
		}
	}
	if srv.cfg.SyncPerWindow {
		return &syncApplier{srv: srv, ps: ps, t: t, ss: exp.sectorSize}, nil
	}
	ga, err := srv.newGroupApplier(ps, t, exp)
	if err != nil {
		// A nil *groupApplier in the interface would not be nil, and
		// receive would call finish on it.
		return nil, err
	}
	return ga, nil
}

// syncApplier is the simple mode: apply, fdatasync the image, save the
// state, ack; one window at a time, in the receiving goroutine.
type syncApplier struct {
	srv *Server
	ps  *parallel.Session
	t   *task
	ss  uint32 // the journal's sector size
	err error
}

func (a *syncApplier) put(ctx context.Context, w *window) error {
	if a.err != nil || a.srv.abandon.Load() {
		w.release()
		return a.err
	}
	// A window is finished even when the server is shutting down.
	start := time.Now()
	err := w.apply(context.WithoutCancel(ctx), a.t.img, a.srv.cfg.Parallel)
	w.release()
	if err == nil {
		a.srv.applied(a.t, w, time.Since(start))
	}
	if err == nil {
		err = a.t.img.Sync()
	}
	if err == nil {
		st := a.t.state()
		st.Durable, st.SectorSize, st.Checkpoint = w.pos(), a.ss, Checkpoint{}
		err = a.t.save(st)
	}
	if err != nil {
		a.err = fmt.Errorf("task %s: %w", a.t.name, err)
		a.ps.Fail(codeOf(a.err), a.srv.redact(a.err.Error()))
		return a.err
	}
	a.t.setDurable(w.pos())
	a.srv.durable(a.t, w) // before the ack, so that status agrees with what was acked
	a.ps.Ack(w.seq)
	return nil
}

func (a *syncApplier) finish() error { return a.err }

// groupApplier is group commit: a committer goroutine appends windows to
// the staging log and acks each batch after one fsync; an applier
// goroutine writes them to the image and moves the checkpoint after each
// image sync.
type groupApplier struct {
	srv *Server
	ps  *parallel.Session
	t   *task
	ss  uint32 // the journal's sector size
	stg *stagingLog

	commitQ chan *window // received, to append to the staging log
	applyQ  chan *window // durable, to apply to the image
	g       errgroup.Group

	failOnce sync.Once
	failed   chan struct{} // closed on the first error
	err      error         // the first error; set before failed is closed
}

// queueLen bounds the windows queued between the goroutines; the credit
// bounds their bytes.
const queueLen = 4096

func (srv *Server) newGroupApplier(ps *parallel.Session, t *task, exp expect) (*groupApplier, error) {
	ns, err := stagingFiles(t.dir)
	if err != nil {
		return nil, err
	}
	num := uint64(1)
	if len(ns) > 0 {
		num = ns[len(ns)-1] + 1
	}
	stg, err := createStaging(t.dir, num, exp.pos.Journal, int(exp.sectorSize), srv.cfg.StagingRotate)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.name, err)
	}
	// From now on recovery replays this staging log.
	st := t.state()
	st.Checkpoint = Checkpoint{Staging: num, Entry: 1}
	if err := t.save(st); err != nil {
		stg.close()
		return nil, fmt.Errorf("task %s: %w", t.name, err)
	}
	a := &groupApplier{
		srv: srv, ps: ps, t: t, ss: exp.sectorSize, stg: stg,
		commitQ: make(chan *window, queueLen),
		applyQ:  make(chan *window, queueLen),
		failed:  make(chan struct{}),
	}
	a.g.Go(a.commit)
	a.g.Go(a.apply)
	return a, nil
}

// fail records the first error and tells the client at once.
func (a *groupApplier) fail(err error) {
	a.failOnce.Do(func() {
		a.err = fmt.Errorf("task %s: %w", a.t.name, err)
		close(a.failed)
		a.ps.Fail(codeOf(a.err), a.srv.redact(a.err.Error()))
	})
}

func (a *groupApplier) dead() bool {
	select {
	case <-a.failed:
		return true
	default:
		return a.srv.abandon.Load()
	}
}

func (a *groupApplier) put(ctx context.Context, w *window) error {
	select {
	case a.commitQ <- w:
		return nil
	case <-a.failed:
		w.release()
		return a.err
	case <-ctx.Done():
		w.release()
		return fmt.Errorf("%w: %w", ErrShutdown, ctx.Err())
	}
}

func (a *groupApplier) finish() error {
	close(a.commitQ)
	a.g.Wait()
	select {
	case <-a.failed:
		return a.err
	default:
		return nil
	}
}

// commit is the committer goroutine: each batch is every window queued
// when the previous fsync ended. Windows written through (WriteThrough)
// split a batch: the windows before one are staged and acked first.
func (a *groupApplier) commit() error {
	defer close(a.applyQ)
	defer a.stg.close()
	var batch []*window
	for w := range a.commitQ {
		batch = append(batch[:0], w)
	more:
		for {
			select {
			case w, ok := <-a.commitQ:
				if !ok {
					break more
				}
				batch = append(batch, w)
			default:
				break more
			}
		}
		start := 0
		for i, w := range batch {
			if !a.writeThrough(w) {
				continue
			}
			if !a.stage(batch[start:i]) || !a.through(w) {
				releaseAll(batch[i+1:])
				start = len(batch)
				break
			}
			start = i + 1
		}
		a.stage(batch[start:])
	}
	return nil
}

func releaseAll(ws []*window) {
	for _, w := range ws {
		w.release()
	}
}

// writeThrough says whether w goes straight to the image.
func (a *groupApplier) writeThrough(w *window) bool {
	cfg := &a.srv.cfg
	return cfg.WriteThrough > 0 && !cfg.Retain && w.bytes >= cfg.WriteThrough
}

// stage appends ws to the staging log, syncs it, acks the last and hands
// them to the applier. It reports whether the applier is still healthy;
// it releases ws when not.
func (a *groupApplier) stage(ws []*window) bool {
	if len(ws) == 0 {
		return !a.dead()
	}
	if a.dead() {
		releaseAll(ws)
		return false
	}
	var err error
	start := time.Now()
	var bytes int64
	for _, w := range ws {
		if err = a.stg.append(w); err != nil {
			break
		}
		bytes += w.bytes
	}
	appended := time.Now()
	if err == nil {
		err = a.stg.sync()
	}
	a.srv.log.Debug("windows staged", "task", a.t.name, "windows", len(ws), "last", ws[len(ws)-1].seq, "bytes", bytes,
		"append", appended.Sub(start), "sync", time.Since(appended))
	if err != nil {
		a.fail(err)
		releaseAll(ws)
		return false
	}
	last := ws[len(ws)-1]
	a.t.setDurable(last.pos())
	a.srv.durable(a.t, ws...) // before the ack, so that status agrees with what was acked
	a.ps.Ack(last.seq)
	for _, w := range ws {
		a.applyQ <- w
	}
	return true
}

// through has the applier write w straight to the image, after the
// windows before it, and acks it once the image is synced and the
// checkpoint is past it. Nothing is staged meanwhile: a later window in
// the staging log before w is durable would break its sequence.
func (a *groupApplier) through(w *window) bool {
	if a.dead() {
		w.release()
		return false
	}
	w.stagingFile, w.stagingNext = a.stg.num, int64(a.stg.w.Entries())
	w.written = make(chan struct{})
	a.applyQ <- w
	<-w.written
	if a.dead() {
		return false
	}
	a.t.setDurable(w.pos())
	a.srv.durable(a.t, w) // before the ack, so that status agrees with what was acked
	a.ps.Ack(w.seq)
	return true
}

// apply is the applier goroutine.
func (a *groupApplier) apply() error {
	cfg := &a.srv.cfg
	tick := time.NewTicker(cfg.CheckpointEvery)
	defer tick.Stop()
	var last *window // applied and not yet checkpointed
	var unsynced int64
	checkpoint := func() {
		if last == nil || a.srv.abandon.Load() {
			return
		}
		if err := a.checkpoint(last); err != nil {
			a.fail(err)
		}
		last, unsynced = nil, 0
	}
	for {
		select {
		case w, ok := <-a.applyQ:
			if !ok {
				checkpoint()
				return nil
			}
			if a.dead() {
				w.release()
				w.wrote()
				continue
			}
			start := time.Now()
			var img replay.Target = a.t.img
			if w.written != nil {
				img = eager{a.t.img}
			}
			err := w.apply(context.Background(), img, cfg.Parallel)
			w.release()
			if err != nil {
				a.fail(err)
				w.wrote()
				continue
			}
			a.srv.applied(a.t, w, time.Since(start))
			if w.written != nil {
				// Written through: durable once the image is synced
				// and the checkpoint is past it.
				wrote := time.Now()
				if err := a.checkpoint(w); err != nil {
					a.fail(err)
				}
				a.srv.log.Debug("window written through", "task", a.t.name, "window", w.seq, "bytes", w.bytes,
					"queued", start.Sub(w.recv), "write", wrote.Sub(start), "sync_and_checkpoint", time.Since(wrote))
				last, unsynced = nil, 0
				w.wrote()
				continue
			}
			last = w
			if unsynced += w.bytes; unsynced >= cfg.CheckpointBytes {
				checkpoint()
			}
		case <-tick.C:
			checkpoint()
		}
	}
}

// checkpoint syncs the image and moves the checkpoint after w, then drops
// the staging logs before it (unless retained).
func (a *groupApplier) checkpoint(w *window) error {
	if err := a.t.img.Sync(); err != nil {
		return err
	}
	st := a.t.state()
	st.Durable, st.SectorSize = w.pos(), a.ss
	st.Checkpoint = Checkpoint{Staging: w.stagingFile, Entry: w.stagingNext}
	if err := a.t.save(st); err != nil {
		return err
	}
	if !a.srv.cfg.Retain {
		return removeStaging(a.t.dir, w.stagingFile)
	}
	return nil
}
