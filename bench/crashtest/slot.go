package crashtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replay"
)

// slot is one job's copy of a state: the check image B, a loop device over
// it, and what is known about how B differs from the replay's image A.
// Only the replay goroutine materializes into a slot; a check goroutine
// owns it from then until it is back in crash.free.
type slot struct {
	b     *image
	bdev  *devio.Device // FromZero's replay writes B through it
	loop  *devio.Loop
	loopf *os.File // the loop device, for BLKFLSBUF
	dir   string   // State.Dir, for the check
	mnt   string   // the manifest's mount point
	// mounted: the manifest's mount is up (cleanup unmounts it).
	mounted bool
	// pending: the ranges the journal changed in A since B was level.
	pending spanSet
	// bDirty: the ranges the bench changed in B (explored subsets).
	bDirty spanSet
	// bTouched: a check wrote to B since it was level.
	bTouched bool
}

func (c *crash) newSlot(i int) (*slot, error) {
	s := &slot{dir: filepath.Join(c.dir, fmt.Sprintf("job%d", i)), mnt: filepath.Join(c.dir, fmt.Sprintf("mnt%d", i))}
	var err error
	if s.b, err = createImage(filepath.Join(c.dir, fmt.Sprintf("check%d.img", i)), c.sum.Size); err != nil {
		return nil, err
	}
	for _, d := range []string{s.dir, s.mnt} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return s, err
		}
	}
	if c.o.Strategy == FromZero {
		if s.bdev, err = devio.Open(s.b.path, devio.Options{Write: true}); err != nil {
			return s, err
		}
	}
	if c.o.Device == DeviceLoop || len(c.o.Manifest) > 0 {
		if s.loop, err = devio.AttachLoop(s.b.path, devio.LoopOptions{BlockSize: min(int(c.super.SectorSize), 4096)}); err != nil {
			return s, err
		}
		if s.loopf, err = os.Open(s.loop.Path()); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (s *slot) close() error {
	var errs []error
	if s.mounted {
		if err := unmount(s.mnt); err != nil {
			errs = append(errs, err)
		} else {
			s.mounted = false
		}
	}
	if s.loopf != nil {
		s.loopf.Close()
	}
	if s.loop != nil {
		errs = append(errs, s.loop.Detach())
	}
	if s.bdev != nil {
		s.bdev.Close()
	}
	s.b.close()
	return errors.Join(errs...)
}

// distribute hands the ranges the journal changed in A since the last
// point to every slot.
func (c *crash) distribute() {
	d := c.trk.take()
	if len(d) == 0 {
		return
	}
	for _, s := range c.slots {
		s.pending = append(s.pending, d...)
		if len(s.pending) >= mergeAt {
			s.pending = s.pending.merged()
		}
	}
}

// materialize puts the state after e into the slot's B.
func (c *crash) materialize(ctx context.Context, s *slot, e journal.Entry) error {
	if c.o.Strategy == FromZero {
		if err := s.b.reset(); err != nil {
			return err
		}
		if c.o.Base != "" {
			if err := copyBase(c.o.Base, c.buf, s.b); err != nil {
				return err
			}
		}
		r, err := journal.NewReader(c.jf, c.jsize)
		if err != nil {
			return c.wrap(err)
		}
		st, err := replay.New(r, s.bdev, replay.Options{Parallel: c.o.Parallel}).Run(ctx, journal.Stop{Limit: e.Index + 1}, nil, nil)
		c.addCopied(st.Written, 0)
		if err != nil {
			return c.wrap(err)
		}
		s.bDirty, s.bTouched = nil, false
		return s.ready()
	}
	var todo spanSet
	switch {
	case c.o.Refresh == RefreshFull:
		todo.add(0, s.b.size)
	case s.bTouched:
		// A check wrote to B, where is unknown: compare. Copying all of A
		// instead costs about as much here, but leaves B with every page
		// dirty, and the next check's fsync through the loop device
		// (e2fsck, mount) then writes them all back.
		d, n, err := diff(c.a, s.b, c.buf, c.buf2)
		c.addCopied(0, n)
		if err != nil {
			return err
		}
		todo = d
	default:
		todo = append(s.pending, s.bDirty...)
	}
	for _, x := range todo.merged() {
		n, err := level(s.b, c.a, x.off, x.end, c.buf)
		c.addCopied(n, 0)
		if err != nil {
			return err
		}
	}
	s.pending, s.bDirty, s.bTouched = todo[:0], nil, false
	return s.ready()
}

func (c *crash) addCopied(copied, compared int64) {
	c.mu.Lock()
	c.sum.Copied += copied
	c.sum.Compared += compared
	c.mu.Unlock()
}

// ready prepares B for a check: the mtime sentinel set and the loop
// device's cache dropped, so the check reads what B holds.
func (s *slot) ready() error {
	if err := s.b.markClean(); err != nil {
		return err
	}
	return s.flushLoop()
}

// settle runs after a check or a mount: the loop device's dirty cache is
// written to B, and B's mtime says whether anything was written.
func (s *slot) settle() error {
	if err := s.flushLoop(); err != nil {
		return err
	}
	t, err := s.b.touched()
	if err != nil {
		return err
	}
	s.bTouched = s.bTouched || t
	return nil
}

func (s *slot) flushLoop() error {
	if s.loopf == nil {
		return nil
	}
	if err := flushBuffers(s.loopf); err != nil {
		return fmt.Errorf("BLKFLSBUF %s: %w", s.loop.Path(), err)
	}
	return nil
}

func (c *crash) state(s *slot, p Point) *State {
	st := &State{Point: p, Image: s.b.path, Target: s.b.path, Dir: s.dir}
	if s.loop != nil {
		st.Device = s.loop.Path()
		if c.o.Device == DeviceLoop {
			st.Target = st.Device
		}
	}
	return st
}

// checkManifest mounts B read-only through the loop device and compares
// the files. A mount that fails is a problem of the state.
func (c *crash) checkManifest(ctx context.Context, s *slot, files []ManifestFile) ([]string, error) {
	cmd := exec.CommandContext(ctx, "mount", "-o", "ro", s.loop.Path(), s.mnt)
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("mount (Debian package mount): %w", err)
		}
		if serr := s.settle(); serr != nil {
			return nil, serr
		}
		return []string{fmt.Sprintf("mount -o ro %s: %v: %s", s.loop.Path(), err, strings.TrimSpace(string(out)))}, nil
	}
	s.mounted = true
	problems, err := checkFiles(s.mnt, files, c.o.ManifestExact)
	if uerr := unmount(s.mnt); uerr != nil {
		return nil, uerr
	}
	s.mounted = false
	if err != nil {
		return nil, err
	}
	return problems, s.settle()
}
