package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replay"
)

// task is an open task: its image, its state file, its durable position.
// The session holding the task owns it; Status reads it concurrently.
type task struct {
	name string
	dir  string
	img  *devio.Device

	// at, when the task was opened at a mark, is the state at that mark,
	// rebuilt in the temporary file atPath; the block calls read it
	// instead of img.
	at     *devio.Device
	atPath string

	mu      sync.Mutex       // guards st, durable, and img and at for view and close
	st      State            // as last saved
	durable control.Position // every window before it is durable
}

// position returns the durable position.
func (t *task) position() control.Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.durable
}

func (t *task) setDurable(p control.Position) {
	t.mu.Lock()
	t.durable = p
	t.mu.Unlock()
}

func (t *task) state() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

// save writes st as the task's state file.
func (t *task) save(st State) error {
	if err := saveState(t.dir, st); err != nil {
		return err
	}
	t.mu.Lock()
	t.st = st
	t.mu.Unlock()
	return nil
}

// view is what the block calls read: the state at the mark the task was
// opened at, or the image.
func (t *task) view() *devio.Device {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at != nil {
		return t.at
	}
	return t.img
}

func (t *task) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var err error
	if t.at != nil {
		err = t.at.Close()
		t.at = nil
	}
	if t.atPath != "" {
		if rerr := os.Remove(t.atPath); rerr != nil && err == nil {
			err = ioErr("removing", t.atPath, rerr)
		}
		t.atPath = ""
	}
	if t.img == nil {
		return err
	}
	if cerr := t.img.Close(); err == nil {
		err = cerr
	}
	t.img = nil
	return err
}

// createTask makes the directory of a new task atomically: image and state
// are made in a temporary directory that is then renamed into place.
func createTask(root, name string, size int64, journalID string, sectorSize uint32) error {
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(root, ".new-"+name+"-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return ioErr("creating", tmp, err)
	}
	err := func() error {
		p := filepath.Join(tmp, imageFile)
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return ioErr("creating", p, err)
		}
		if err := sizeImage(f, size); err != nil {
			return ioErr("sizing", p, err)
		}
		st := State{Size: size, SectorSize: sectorSize, Durable: control.Position{Journal: journalID}}
		if err := saveState(tmp, st); err != nil {
			return err
		}
		dst := filepath.Join(root, name)
		if err := os.Rename(tmp, dst); err != nil {
			if errors.Is(err, os.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
				return fmt.Errorf("%w: task %s appeared while it was being created", ErrTaskBusy, name)
			}
			return ioErr("renaming into place", dst, err)
		}
		return syncDir(root)
	}()
	if err != nil {
		os.RemoveAll(tmp)
	}
	return err
}

// openTask opens the existing task name in root: its state and its image
// (locked against any other opener).
func openTask(root, name string) (*task, error) {
	dir := filepath.Join(root, name)
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoTask, name)
	}
	if err != nil {
		return nil, ioErr("stat", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrCorrupt, dir)
	}
	st, err := loadState(dir)
	if err != nil {
		return nil, err
	}
	if st.Resize > 0 {
		if err := finishResize(dir, &st); err != nil { // admin.go
			return nil, err
		}
	}
	p := filepath.Join(dir, imageFile)
	img, err := devio.Open(p, devio.Options{Write: true, Exclusive: true})
	if err != nil {
		if errors.Is(err, devio.ErrBusy) {
			return nil, fmt.Errorf("%w: %s is locked by another process: %w", ErrTaskBusy, p, err)
		}
		return nil, ioErr("opening", p, err)
	}
	if img.Kind() != devio.File || img.Size() != st.Size {
		img.Close()
		return nil, fmt.Errorf("%w: %s is a %v of %d bytes, the state says a file of %d", ErrCorrupt, p, img.Kind(), img.Size(), st.Size)
	}
	if err := removeAtFiles(dir); err != nil {
		img.Close()
		return nil, err
	}
	return &task{name: name, dir: dir, img: img, st: st, durable: st.Durable}, nil
}

// recoverResult says what recovery did.
type recoverResult struct {
	Windows int64  // windows replayed from the staging log
	Stop    string // where the staging log ended
}

// recover brings the image to the end of the intact windows in the
// staging log from the checkpoint, syncs it, and saves the state with no
// checkpoint in the staging log (later windows go to a new staging log).
// Staging logs are then removed unless retain. It is what opening a task
// does first, after a crash or not.
func (t *task) recover(ctx context.Context, retain bool, par int) (recoverResult, error) {
	st := t.state()
	if st.History && !retain {
		st.History = false // the staging logs are about to go
		if err := t.save(st); err != nil {
			return recoverResult{}, err
		}
	}
	if st.Checkpoint.Staging == 0 {
		if !retain {
			if err := removeStaging(t.dir, 0); err != nil {
				return recoverResult{}, err
			}
		}
		return recoverResult{}, nil
	}
	sc, err := scanStaging(t.dir, st.Checkpoint, st.Durable)
	if err != nil {
		return recoverResult{}, err
	}
	res := recoverResult{Windows: sc.windows, Stop: sc.stop}
	for i, seg := range sc.segments {
		if err := t.replaySegment(ctx, seg, par); err != nil {
			return res, err
		}
		if err := t.img.Sync(); err != nil {
			return res, fmt.Errorf("recovering task %s: %w", t.name, err)
		}
		st.Durable, st.SectorSize = seg.pos, sc.sectorSize
		if i == len(sc.segments)-1 {
			break
		}
		// Checkpoint after each staging log but the last, and drop the
		// ones before: on a full disk this frees space as recovery goes.
		st.Checkpoint = Checkpoint{Staging: seg.num, Entry: seg.to}
		if err := t.save(st); err != nil {
			return res, err
		}
		if !retain {
			if err := removeStaging(t.dir, seg.num); err != nil {
				return res, err
			}
		}
	}
	st.Checkpoint = Checkpoint{}
	if err := t.save(st); err != nil {
		return res, err
	}
	t.setDurable(st.Durable)
	if !retain {
		if err := removeStaging(t.dir, 0); err != nil {
			return res, err
		}
	}
	return res, nil
}

// replaySegment applies entries [seg.from, seg.to) of a staging log to the
// image, window by window, in parallel inside windows.
func (t *task) replaySegment(ctx context.Context, seg segment, par int) error {
	p := filepath.Join(t.dir, stagingName(seg.num))
	f, err := os.Open(p)
	if err != nil {
		return ioErr("opening", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ioErr("stat", p, err)
	}
	r, err := journal.NewReaderClamped(f, fi.Size())
	if err == nil {
		err = r.SeekEntry(seg.from)
	}
	if err == nil {
		_, err = replay.New(r, t.img, replay.Options{Parallel: par}).Run(ctx, journal.Stop{Limit: seg.to - seg.from}, nil, nil)
	}
	if err != nil {
		return fmt.Errorf("recovering task %s from %s (entries %d-%d): %w", t.name, p, seg.from, seg.to-1, err)
	}
	return nil
}
