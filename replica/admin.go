package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// Task management: removing a task and growing its image, over the
// protocol (control.OpRemove, control.OpResize on a session that names
// the task and holds it) or on a server directory no server uses
// (RemoveTask, ResizeTask: logship task rm|resize --dir).

// rmPrefix starts the name a removed task's directory gets in DIR before
// it is deleted; a server removes any it finds at start (a crash in the
// middle of a removal).
const rmPrefix = ".rm-"

// handleAdmin answers OpRemove and OpResize. The session must name the
// task and hold it (it claimed the task at its start: no other session
// can open the task meanwhile), and must not have opened it. Its
// identity's grants were checked by Handle, as for every call of a
// session that names a task.
func (srv *Server) handleAdmin(ctx context.Context, ps *parallel.Session, r control.Request) ([]byte, error) {
	name := ps.Task()
	if name == "" {
		return nil, remote(fmt.Errorf("%w: %s on a session that names no task", ErrBadRequest, r.Op))
	}
	if err := CheckTask(name); err != nil {
		return nil, remote(err)
	}
	var size int64
	if r.Op == control.OpResize {
		if r.Resize == nil {
			return nil, remote(fmt.Errorf("%w: resize without its fields", ErrBadRequest))
		}
		size = r.Resize.Size
	}
	ss, err := srv.acceptedSession(ctx, ps)
	if err != nil {
		return nil, remote(err)
	}
	if ss.claimErr != nil {
		return nil, remote(ss.claimErr)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.t != nil {
		return nil, remote(fmt.Errorf("%w: %s of task %s, which this session has opened", ErrBadRequest, r.Op, name))
	}
	if r.Op == control.OpRemove {
		old, err := srv.removeTask(name)
		if err != nil {
			return nil, remote(err)
		}
		return control.Marshal(control.Removed{Name: name, ImageSize: old}), nil
	}
	old, err := srv.resizeTask(ctx, name, size)
	if err != nil {
		return nil, remote(err)
	}
	return control.Marshal(control.Resized{Name: name, OldSize: old, ImageSize: max(old, size)}), nil
}

// removeTask removes task name: its directory is renamed out of the way
// (DIR/.rm-NAME-RANDOM) and DIR synced, so that the task is gone for
// good, then deleted. It returns the image size the task had (0 if its
// state did not load). No session may hold the task but the caller's.
func (srv *Server) removeTask(name string) (int64, error) {
	root := srv.cfg.Dir
	dir := filepath.Join(root, name)
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) || err == nil && !fi.IsDir() {
		return 0, fmt.Errorf("%w: %s", ErrNoTask, name)
	}
	if err != nil {
		return 0, ioErr("stat", dir, err)
	}
	var size int64
	if st, err := loadState(dir); err == nil {
		size = st.Size
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(root, rmPrefix+name+"-"+hex.EncodeToString(rnd[:]))
	if err := os.Rename(dir, tmp); err != nil {
		return 0, ioErr("renaming", dir, err)
	}
	if err := syncDir(root); err != nil {
		return 0, err
	}
	srv.forgetTask(name)
	if err := os.RemoveAll(tmp); err != nil {
		// The task is gone; what is left is removed at the next start.
		srv.log.Warn("removing a removed task's files failed", "task", name, "path", tmp, "err", err)
	}
	srv.log.Info("task removed", "task", name, "image_size", size)
	return size, nil
}

// forgetTask drops what the server keeps in memory about task name.
func (srv *Server) forgetTask(name string) {
	srv.mu.Lock()
	delete(srv.lastErr, name)
	delete(srv.corrupt, name)
	delete(srv.marks, name)
	srv.mu.Unlock()
	b := &srv.book
	b.mu.Lock()
	delete(b.reports, name)
	delete(b.moved, name)
	b.mu.Unlock()
}

// resizeTask grows the image of task name to size bytes, after running
// its recovery. It returns the size the image had; a size equal to it
// changes nothing. No session may hold the task but the caller's.
//
// A crash in the middle leaves the state file naming the new size in
// State.Resize; opening the task finishes the resize (finishResize).
func (srv *Server) resizeTask(ctx context.Context, name string, size int64) (int64, error) {
	t, err := openTask(srv.cfg.Dir, name)
	if err != nil {
		return 0, err
	}
	defer t.close()
	if _, err := t.recover(ctx, srv.cfg.Retain, srv.cfg.Parallel); err != nil {
		return 0, err
	}
	st := t.state()
	old := st.Size
	switch {
	case size < old:
		return old, fmt.Errorf("%w: task %s is %s; it cannot shrink to %s (images only grow)", ErrMismatch, name, sizeName(old), sizeName(size))
	case size%journal.MinSectorSize != 0 || size%int64(st.SectorSize) != 0:
		return old, fmt.Errorf("%w: resize: %d bytes is not a multiple of the task's sector size (%d)", ErrBadRequest, size, max(st.SectorSize, journal.MinSectorSize))
	case size == old:
		return old, nil
	}
	st.Resize = size
	if err := t.save(st); err != nil {
		return old, err
	}
	if err := growImage(filepath.Join(t.dir, imageFile), size); err != nil {
		return old, err
	}
	st.Size, st.Resize = size, 0
	if err := t.save(st); err != nil {
		return old, err
	}
	srv.log.Info("task resized", "task", name, "old_size", old, "image_size", size)
	return old, nil
}

// finishResize completes a resize a crash interrupted: st (the state of
// the task in dir) has Resize set; the image is grown to it (again) and
// the state saved with the new size.
func finishResize(dir string, st *State) error {
	if err := growImage(filepath.Join(dir, imageFile), st.Resize); err != nil {
		return err
	}
	st.Size, st.Resize = st.Resize, 0
	return saveState(dir, *st)
}

// growImage extends the image file at p to size bytes (a hole) and
// fsyncs it.
func growImage(p string, size int64) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return ioErr("opening", p, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() >= size {
		size = fi.Size() // grow only: a longer image keeps its length
	}
	if err == nil {
		err = sizeImage(f, size)
	} else {
		f.Close()
	}
	if err != nil {
		return ioErr("growing", p, err)
	}
	return nil
}

// sizeImage sets the open image f to size bytes (a hole where it grows),
// fsyncs and closes it; the first error wins.
func sizeImage(f *os.File, size int64) error {
	err := f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// RemoveTask removes task name from the server directory dir, which no
// server may be using (its lock is taken: ErrDirBusy otherwise). It
// returns the image size the task had. This is logship task rm --dir.
func RemoveTask(ctx context.Context, dir, name string) (int64, error) {
	var size int64
	err := offline(ctx, dir, name, func(srv *Server) (err error) {
		size, err = srv.removeTask(name)
		return err
	})
	return size, err
}

// ResizeTask grows the image of task name in the server directory dir,
// which no server may be using, to size bytes, and returns the size it
// had. This is logship task resize --dir.
func ResizeTask(ctx context.Context, dir, name string, size int64) (int64, error) {
	var old int64
	err := offline(ctx, dir, name, func(srv *Server) (err error) {
		old, err = srv.resizeTask(ctx, name, size)
		return err
	})
	return old, err
}

// offline runs f on a Server of dir that serves nothing and recovers
// nothing at its start.
func offline(ctx context.Context, dir, name string, f func(*Server) error) error {
	if err := CheckTask(name); err != nil {
		return err
	}
	if _, err := os.Stat(dir); err != nil {
		return ioErr("stat", dir, err)
	}
	// Retain: recovery keeps the staging logs, as a server with --retain
	// would; the next server start decides.
	srv, err := Open(ctx, Config{Dir: dir, Retain: true, offline: true})
	if err != nil {
		return err
	}
	err = f(srv)
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	return err
}

// reportFresh: a report older than this, from the session holding the
// task, does not make it CaughtUp: its source, which reports every second,
// stopped reporting.
const reportFresh = 10 * time.Second

// stateOf decides the state word of ts (control.TaskState): ss is the
// session holding the task (nil if none), rep the source's last report if
// haveRep. The lag in ts must be computed.
func stateOf(ts *control.TaskStatus, ss *session, rep report, haveRep bool) control.TaskState {
	if ts.Corrupt != "" || ts.ImageSize <= 0 { // ImageSize: the state file did not load
		return control.StateCorrupt
	}
	if ss != nil && ss.task.Load() != nil {
		var j string
		if p := ss.journal.Load(); p != nil {
			j = *p
		}
		switch {
		case control.IsSyncJournal(j):
			return control.StateSyncing
		case j == control.VerifyJournal:
			return control.StateReading
		case haveRep && !rep.at.Before(ss.started) && ts.Lag != nil && ts.Lag.Entries == 0 &&
			time.Since(rep.at) < reportFresh:
			return control.StateCaughtUp
		}
		return control.StateShipping
	}
	switch {
	case ts.LastError != "":
		return control.StateError
	case ts.Lag != nil && ts.Lag.Entries != 0:
		return control.StateBehind
	}
	return control.StateIdle
}
