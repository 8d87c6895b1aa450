package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replay"
)

// A task's history is its staging logs from number 1 on, all retained
// (State.History): every window ever applied to the image, in order, each
// closed by its window mark. Replaying them onto zeros up to a source
// mark rebuilds the image as it was at that mark, which is what an open
// at a mark (control.Open.At, logship recover --at) reads.

// atPrefix names the temporary files of states at a mark, in the task's
// directory; openTask removes those a crash left behind.
const atPrefix = ".at-"

// MaxAtLabel bounds control.Open.At.
const MaxAtLabel = journal.MaxSectorSize

// openAt rebuilds the state of t's image at the first MARK entry labeled
// label, from t's history, in a temporary file beside the image, and makes
// it what the block calls read (t.view). It returns the staging log and
// entry where the mark was found.
func (t *task) openAt(ctx context.Context, label string, par int) (at string, err error) {
	st := t.state()
	if !st.History {
		return "", fmt.Errorf("%w: task %s: its staging logs do not reach back to its creation (the server must run with --retain, and without --sync-per-window, from the task's creation on)", ErrNoHistory, t.name)
	}
	ns, err := stagingFiles(t.dir)
	if err != nil {
		return "", err
	}
	for i, n := range ns {
		if n != uint64(i+1) {
			return "", fmt.Errorf("%w: task %s: staging log %s is missing (the history has a hole)", ErrNoHistory, t.name, stagingName(uint64(i+1)))
		}
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	p := filepath.Join(t.dir, atPrefix+hex.EncodeToString(rnd[:])+".img")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", ioErr("creating", p, err)
	}
	err = f.Truncate(st.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var dev *devio.Device
	if err == nil {
		dev, err = devio.Open(p, devio.Options{Write: true})
	}
	if err != nil {
		os.Remove(p)
		return "", ioErr("sizing", p, err)
	}
	defer func() {
		if err != nil {
			dev.Close()
			os.Remove(p)
		}
	}()
	for _, n := range ns {
		found, where, err := replayHistory(ctx, filepath.Join(t.dir, stagingName(n)), label, dev, par)
		if err != nil {
			return "", fmt.Errorf("task %s: rebuilding the state at mark %q: %w", t.name, label, err)
		}
		if found {
			t.at, t.atPath = dev, p
			return where, nil
		}
	}
	return "", fmt.Errorf("%w: task %s: no mark %q in its %d staging logs", ErrNoHistory, t.name, label, len(ns))
}

// replayHistory applies the intact windows of staging log p to dev, up to
// the first source MARK entry labeled label in one of them, and says
// whether it found that mark, and where.
func replayHistory(ctx context.Context, p, label string, dev *devio.Device, par int) (found bool, where string, err error) {
	f, err := os.Open(p)
	if err != nil {
		return false, "", ioErr("opening", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, "", ioErr("stat", p, err)
	}
	r, err := journal.NewReaderClamped(f, fi.Size())
	if err != nil {
		return false, "", fmt.Errorf("%w: %s: %w", ErrCorrupt, p, err)
	}
	end, markAt, err := scanHistory(f, r, label)
	if err != nil {
		return false, "", fmt.Errorf("%s: %w", p, err)
	}
	limit := end
	if markAt > 0 {
		limit = markAt
	}
	if limit > 1 {
		if err := r.SeekEntry(1); err != nil {
			return false, "", fmt.Errorf("%w: %s: %w", ErrCorrupt, p, err)
		}
		if _, err := replay.New(r, dev, replay.Options{Parallel: par}).Run(ctx, journal.Stop{Limit: limit - 1}, nil, nil); err != nil {
			return false, "", fmt.Errorf("replaying %s (entries 1-%d): %w", p, limit-1, err)
		}
	}
	if markAt > 0 {
		return true, fmt.Sprintf("%s entry %d", filepath.Base(p), markAt), nil
	}
	return false, "", nil
}

// scanHistory walks the staging log r (of file f) from its begin mark and
// returns the index after its last intact window (1 when there is none)
// and, when a source MARK entry labeled label is in an intact window, its
// index (0 otherwise; the walk stops there). A torn tail ends the walk, as
// in recovery.
func scanHistory(f *os.File, r *journal.Reader, label string) (end, markAt int64, err error) {
	e, err := r.Next()
	if err != nil || !e.IsMark() || !strings.HasPrefix(e.Label, beginLabel) {
		return 0, 0, fmt.Errorf("%w: no %q mark at entry 0 (%v)", ErrCorrupt, beginLabel, err)
	}
	end = r.Index()
	h := newEntryHash()
	buf := make([]byte, 1<<20)
	pending := int64(0) // the mark, seen in the window being read
	for {
		e, err := r.Next()
		if err == io.EOF {
			return end, 0, nil
		}
		if err != nil {
			var ee *journal.EntryError
			if !errors.As(err, &ee) || errors.Is(err, journal.ErrCorrupt) || errors.Is(err, io.ErrUnexpectedEOF) {
				return end, 0, nil // a torn tail
			}
			return 0, 0, err
		}
		if m, ok := parseWindowMark(e.Label); ok && e.IsMark() && m.n == h.n && m.sum == h.sum() {
			end = r.Index()
			if pending > 0 {
				return end, pending, nil
			}
			h.reset()
			continue
		}
		if pending == 0 && e.IsMark() && e.Label == label {
			pending = e.Index
		}
		h.header(e)
		if n := e.PayloadLen(); n > 0 {
			if _, err := io.CopyBuffer(h.d, io.NewSectionReader(f, e.PayloadOffset(), n), buf); err != nil {
				return 0, 0, ioErr("reading", f.Name(), err)
			}
		}
	}
}

// removeAtFiles removes the states at a mark that a crash left in dir.
func removeAtFiles(dir string) error {
	ms, err := filepath.Glob(filepath.Join(dir, atPrefix+"*.img"))
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return ioErr("removing", m, err)
		}
	}
	return nil
}

// appliedMarks remembers the labels of the last source marks applied to
// a task's image, for live opens at a mark (control.Open.Live) that wait
// for one. A source that ticks marks every 200 ms makes many: only the
// last maxAppliedMarks are kept.
type appliedMarks struct {
	mu      sync.Mutex
	labels  []string // a ring of the last labels applied
	next    int      // where the next label goes in labels
	changed chan struct{}
}

const maxAppliedMarks = 4096

// note records the marks of window w, applied to the image.
func (m *appliedMarks) note(w *window) {
	m.mu.Lock()
	defer m.mu.Unlock()
	noted := false
	for _, e := range w.entries {
		if !e.IsMark() {
			continue
		}
		if len(m.labels) < maxAppliedMarks {
			m.labels = append(m.labels, e.Label)
		} else {
			m.labels[m.next] = e.Label
			m.next = (m.next + 1) % maxAppliedMarks
		}
		noted = true
	}
	if noted && m.changed != nil {
		close(m.changed)
		m.changed = nil
	}
}

// wait waits until a mark labeled label has been applied, or ctx ends.
func (m *appliedMarks) wait(ctx context.Context, label string) error {
	for {
		m.mu.Lock()
		if slices.Contains(m.labels, label) {
			m.mu.Unlock()
			return nil
		}
		if m.changed == nil {
			m.changed = make(chan struct{})
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for mark %q to be applied: %w", ErrShutdown, label, ctx.Err())
		}
	}
}

// marksOf returns the marks applied to the image of task name.
func (srv *Server) marksOf(name string) *appliedMarks {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	m := srv.marks[name]
	if m == nil {
		m = &appliedMarks{}
		srv.marks[name] = m
	}
	return m
}

// release gives up the claim ss holds on task name, if it holds it.
func (srv *Server) release(ss *session, name string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if ss.claimed && srv.claims[name] == ss {
		delete(srv.claims, name)
		ss.claimed = false
		close(srv.idle)
		srv.idle = make(chan struct{})
	}
}
