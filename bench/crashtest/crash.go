package crashtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replay"
)

// Device says what a Command's {} stands for.
type Device int

// Devices.
const (
	DeviceLoop Device = iota // a loop device over the check image
	DeviceFile               // the check image file
)

// Strategy says how states are materialized.
type Strategy int

// Strategies.
const (
	// OnePass replays the journal once into a scratch image and copies
	// what changed into the check image at each point.
	OnePass Strategy = iota
	// FromZero replays from entry 0 into a fresh check image for every
	// point, as xfstests' replay-log loops do. It is the baseline OnePass
	// is measured against.
	FromZero
)

// Refresh says how OnePass brings the check image level with the replay.
type Refresh int

// Refresh modes.
const (
	// RefreshChanged copies the ranges the journal changed since the last
	// check, plus what the bench and the check changed in the check image.
	RefreshChanged Refresh = iota
	// RefreshFull copies every data extent of the replay's image at every
	// state. For measurements and for checkers that defeat the mtime test.
	RefreshFull
)

// Options configure Crashtest. The zero value checks nothing; set Check,
// Manifest or both.
type Options struct {
	// Check checks every state (points and explored states). It may be nil
	// when Manifest is set.
	Check Checker
	// Points selects the crash points (DefaultPoints when zero). Marks that
	// have Manifest lines are points too.
	Points Points
	// FromMark starts checking at the first mark with this label: the mark
	// is a point itself when Points has Mark (or the manifest names it), and
	// Points.Every counts from it. Entries before it are replayed unchecked.
	FromMark string
	// Base is an image the journal's device started from (a file or block
	// device); empty means zeros.
	Base string
	// Size of the images in bytes; 0 means the highest byte the journal
	// touches rounded up to 1 MiB, or Base's size if larger.
	Size int64
	// Device says what a Command's {} names.
	Device Device
	// Manifest lists files to compare at marks; ManifestExact also fails
	// regular files that the mark's lines do not list.
	Manifest      Manifest
	ManifestExact bool
	// Explore is the number of random subsets of the window after each
	// point to check as well; Seed seeds their choice.
	Explore int
	Seed    uint64
	// KeepGoing checks every state instead of stopping at the first
	// failing one.
	KeepGoing bool
	// WorkDir holds the scratch images (os.TempDir() if empty). They are
	// sparse and as large as Size; the page cache does most of the work.
	WorkDir string
	// Strategy and Refresh: see their constants.
	Strategy Strategy
	Refresh  Refresh
	// Parallel is the replay's concurrent writes inside a window.
	Parallel int
	// Jobs is the number of checks run at the same time (OnePass only;
	// 0 means 1). Each job has its own copy of its state, a sparse image
	// of Size bytes (and a loop device over it), so the scratch space is
	// at most Jobs+1 images; the replay runs ahead while they check, and
	// Report still gets the results in order.
	Jobs int
	// Dedupe skips the check of a point whose state is byte for byte the
	// state of the point before it (nothing written, discarded or changed
	// since, or only bytes rewritten with what they held): the point takes
	// that point's verdict, and Result.SameAs names it. Explored states
	// and points with manifest lines are always checked. It assumes the
	// check depends on the state only (not on LOGSHIP_ENTRY, say).
	// OnePass only.
	Dedupe bool
	// Shard checks only this shard's share of the states (OnePass only);
	// the zero value checks all. See Shard.
	Shard Shard
	// Progress, when set, gets a progress line every few seconds.
	Progress io.Writer
	// Report, when set, is called with the result of every state, in order.
	Report func(Result)
	// Fault corrupts the replay on purpose (tests only; OnePass only).
	Fault *Fault
}

// Point is a crash state: the state after Entry, or with Explore k ≥ 1 the
// k-th explored state of the window that follows it.
type Point struct {
	Seq     int           // points are numbered from 1 in journal order
	Entry   journal.Entry // the state is the one after this entry
	Explore int           // 0 for the point itself
	// Explored states only: the window after the point (journal indexes
	// First..Last), its entries that change data (Writes), and those
	// applied (Keep, journal indexes).
	First, Last int64
	Writes      int
	Keep        []int64
}

// Kind is the entry's flags, with the label of a mark.
func (p Point) Kind() string {
	if p.Entry.IsMark() {
		return fmt.Sprintf("MARK %q", p.Entry.Label)
	}
	return p.Entry.Flags.String()
}

func (p Point) String() string {
	s := fmt.Sprintf("point %d, entry %d (%s)", p.Seq, p.Entry.Index, p.Kind())
	if p.Explore > 0 {
		s += fmt.Sprintf(", explored state %d: %d of the %d writes of entries %d-%d applied %v",
			p.Explore, len(p.Keep), p.Writes, p.First, p.Last, p.Keep)
	}
	return s
}

// Result is what checking one state found.
type Result struct {
	Point
	// Err is nil when the state passed; else what failed (the check, the
	// mount, the manifest).
	Err error
	// Output is the check's output (its tail), then the manifest's problems.
	Output string
	// Files is the number of manifest files compared.
	Files int
	// Prepare is the time spent materializing the state, Check the time of
	// the check and the manifest.
	Prepare, Check time.Duration
	// SameAs is, for a point Dedupe did not check, the Seq of the earlier
	// point whose state it is and whose verdict it took; 0 otherwise.
	SameAs int
}

// Summary counts what Crashtest did.
type Summary struct {
	Entries   int64 // entries in the journal
	Points    int   // crash points checked
	Explored  int   // explored states checked
	Manifests int   // points whose manifest was compared
	Deduped   int   // points that took an earlier point's verdict (Dedupe)
	Failed    int   // states that failed
	First     *Result
	// Total is the wall time; Prepare and Check the sums over the states
	// (the rest is the replay, overlapped with reading the journal).
	Total, Prepare, Check time.Duration
	Copied                int64 // bytes copied into the check image
	Compared              int64 // bytes compared to find what checks wrote
	Size                  int64 // bytes in each image
	// RunPoints and RunStates count the points and states of the whole
	// run, every shard's (RunStates only once the run went to the end);
	// Complete says it did (no stop at a failure, no error).
	RunPoints, RunStates int
	Complete             bool
	Jobs                 int // checks run at the same time
}

// ErrFailed: a state failed its check. The error is a *PointError.
var ErrFailed = errors.New("bench: crash state failed")

// PointError reports the first failing state.
type PointError struct {
	Result Result
	Failed int // states that failed in all (with KeepGoing, more than one)
}

func (e *PointError) Error() string {
	s := fmt.Sprintf("%s failed: %v", e.Result.Point, e.Result.Err)
	if e.Failed > 1 {
		s += fmt.Sprintf(" (and %d more failing states)", e.Failed-1)
	}
	return s
}

func (e *PointError) Unwrap() error { return ErrFailed }

// ErrBadOptions: the options do not fit together or with the journal.
var ErrBadOptions = errors.New("bench: bad options")

// imageAlign rounds the default image size.
const imageAlign = 1 << 20

// Crashtest replays the journal at path and checks the state at every crash
// point, and with Explore the states inside the windows after them. It
// returns ErrFailed (a *PointError) when a state fails, after the first
// failure or, with KeepGoing, after checking all.
func Crashtest(ctx context.Context, path string, o Options) (Summary, error) {
	c, err := newCrash(path, o)
	if err != nil {
		return Summary{}, err
	}
	ctx, c.cancel = context.WithCancel(ctx)
	defer c.cancel()
	start := time.Now()
	c.started, c.lastProgress = start, start
	err = c.setup()
	if err == nil {
		if o.Strategy == FromZero {
			err = c.fromZero(ctx)
		} else {
			err = c.onePass(ctx)
		}
	}
	err = c.finish(err)
	if cerr := c.cleanup(); err == nil {
		err = cerr
	}
	c.sum.Total = time.Since(start)
	var pe *PointError
	switch {
	case errors.As(err, &pe):
	case err != nil:
		return c.sum, err
	case c.sum.First != nil:
		pe = &PointError{Result: *c.sum.First}
	default:
		return c.sum, nil
	}
	pe.Failed = c.sum.Failed
	return c.sum, pe
}

// finish waits for the checks still running and returns the run's error:
// a failing state that stopped it, else a check that could not run, else
// err (the replay's).
func (c *crash) finish(err error) error {
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stop != nil:
		return c.stop
	case c.fatal != nil:
		return c.fatal
	case err == nil:
		c.sum.Complete = true
	}
	return err
}

// crash is one run of Crashtest.
type crash struct {
	o     Options
	path  string
	jf    *devio.Journal
	jsize int64
	super journal.Super

	// From the header scan.
	from       int64 // index of the from-mark, or -1
	nPoints    int
	faultPrev  int64 // the barrier before the fault's window, or -1
	faultClose int64 // the barrier that closes it, or -1

	dir       string
	a         *image
	adev      *devio.Device // A, written by the replay
	trk       *tracked
	slots     []*slot
	free      chan *slot // slots whose check is done
	buf, buf2 []byte     // the replay goroutine's

	xr   *journal.Reader // reads the windows after points (Explore)
	xwin []journal.Entry // the last window it read
	rng  *rand.Rand

	// The replay goroutine's bookkeeping of the run's states.
	seq    int // the last point's Seq
	rep    int // the point whose state Dedupe compares with (0: none)
	repOwn bool
	unit   int // states that need a check so far, every shard's
	same   int // points Dedupe found the same as the one before, every shard's
	order  int // states of this shard dispatched so far

	cancel context.CancelFunc
	wg     sync.WaitGroup // the check goroutines

	mu           sync.Mutex // guards the fields below
	moved        sync.Cond  // next moved, or the run stops
	done         map[int]Result
	next         int    // the order of the next result to report
	lastRep      Result // the last point reported that others may be the same as
	stop         error  // a *PointError: the run stops
	fatal        error  // a check that could not run, a slot that failed
	sum          Summary
	started      time.Time
	lastProgress time.Time
}

func newCrash(path string, o Options) (*crash, error) {
	if o.Points.IsZero() {
		o.Points = DefaultPoints
	}
	if o.Check == nil && len(o.Manifest) == 0 {
		return nil, fmt.Errorf("%w: nothing to check: give a check command or a manifest", ErrBadOptions)
	}
	if o.Check == nil && o.Explore > 0 {
		return nil, fmt.Errorf("%w: explored states need a check command", ErrBadOptions)
	}
	if o.Fault != nil && o.Strategy != OnePass {
		return nil, fmt.Errorf("%w: faults apply to the one-pass replay only", ErrBadOptions)
	}
	if err := o.Shard.valid(); err != nil {
		return nil, err
	}
	if o.Strategy != OnePass {
		if !o.Shard.IsZero() {
			return nil, fmt.Errorf("%w: shards apply to the one-pass replay only", ErrBadOptions)
		}
		o.Jobs, o.Dedupe = 1, false
	}
	o.Jobs = max(o.Jobs, 1)
	jf, err := devio.OpenJournal(path, devio.JournalOptions{})
	if err != nil {
		return nil, err
	}
	c := &crash{o: o, path: path, jf: jf, from: -1, faultPrev: -1, faultClose: -1,
		rng: rand.New(rand.NewPCG(o.Seed, 0x6c6f6773686970)), done: map[int]Result{}}
	c.sum.Jobs = o.Jobs
	c.moved.L = &c.mu
	if err := c.scan(); err != nil {
		jf.Close()
		return nil, err
	}
	return c, nil
}

// wrap names the journal in an error.
func (c *crash) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", c.path, err)
}

// isPoint reports whether the state after e is checked.
func (c *crash) isPoint(e journal.Entry) bool {
	if e.Index < c.from {
		return false
	}
	if e.IsMark() && len(c.o.Manifest[e.Label]) > 0 {
		return true
	}
	return c.o.Points.hit(e, e.Index-c.from)
}

// scan walks the headers once: it finds the from-mark, counts the points,
// measures the extent the journal touches and checks the options against
// the journal.
func (c *crash) scan() error {
	size := c.jf.Size()
	c.jsize = size
	r, err := journal.NewReader(c.jf, size)
	if err != nil {
		return c.wrap(err)
	}
	c.super = r.Super()
	if c.o.FromMark != "" {
		m, err := r.SeekMark(c.o.FromMark)
		if err != nil {
			return c.wrap(err)
		}
		c.from = m.Index
		if err := r.SeekEntry(0); err != nil {
			return c.wrap(err)
		}
	}
	var end int64
	marks := map[string]bool{}
	lastBarrier := int64(-1)
	f := c.o.Fault
	var faultEntry journal.Entry
	for {
		e, err := r.NextHeader()
		if err == io.EOF {
			break
		}
		if err != nil {
			return c.wrap(err)
		}
		if !e.IsMark() && e.End() > end {
			end = e.End()
		}
		if e.IsMark() {
			marks[e.Label] = true
		}
		if c.isPoint(e) {
			c.nPoints++
		}
		c.sum.RunPoints = c.nPoints
		if f != nil && e.Index == f.Entry {
			faultEntry = e
			c.faultPrev = lastBarrier
		}
		if f != nil && e.Index >= f.Entry && c.faultClose < 0 && e.IsBarrier() {
			c.faultClose = e.Index
		}
		if e.IsBarrier() {
			lastBarrier = e.Index
		}
	}
	c.sum.Entries = r.Len()
	for _, l := range c.o.Manifest.Labels() {
		if !marks[l] {
			return fmt.Errorf("%w: the manifest names mark %q, which %s does not hold", ErrBadOptions, l, c.path)
		}
	}
	if f != nil {
		switch {
		case f.Entry >= r.Len():
			return fmt.Errorf("%w: fault %v: the journal has %d entries", ErrBadOptions, f, r.Len())
		case f.Kind == DelayWrite && !faultEntry.IsWrite():
			return fmt.Errorf("%w: fault %v: entry %d is a %s, not a write", ErrBadOptions, f, f.Entry, faultEntry.Flags)
		case f.delays() && (c.faultClose < 0 || f.Until < c.faultClose || f.Until >= r.Len()):
			return fmt.Errorf("%w: fault %v: the write must be delayed to the barrier that closes its window (%d) or later", ErrBadOptions, f, c.faultClose)
		}
	}

	size = c.o.Size
	var baseSize int64
	if c.o.Base != "" {
		if baseSize, err = fileSize(c.o.Base); err != nil {
			return err
		}
	}
	if size == 0 {
		size = max((end+imageAlign-1)/imageAlign*imageAlign, baseSize, imageAlign)
	}
	ss := int64(c.super.SectorSize)
	switch {
	case size%ss != 0:
		return fmt.Errorf("%w: size %d is not a multiple of the journal's %d-byte sectors", ErrBadOptions, size, ss)
	case size < end:
		return fmt.Errorf("%w: size %d: the journal writes up to byte %d", replay.ErrTargetTooSmall, size, end)
	case size < baseSize:
		return fmt.Errorf("%w: size %d is smaller than the base image %s (%d bytes)", ErrBadOptions, size, c.o.Base, baseSize)
	}
	c.sum.Size = size
	return nil
}

func fileSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// setup creates the scratch images and the slots.
func (c *crash) setup() error {
	var err error
	if c.dir, err = os.MkdirTemp(c.o.WorkDir, "logship-crashtest-"); err != nil {
		return err
	}
	c.buf = devio.AlignedBuffer(1<<20, 4096)
	c.buf2 = devio.AlignedBuffer(1<<20, 4096)
	if c.a, err = createImage(filepath.Join(c.dir, "replay.img"), c.sum.Size); err != nil {
		return err
	}
	c.free = make(chan *slot, c.o.Jobs)
	for i := range c.o.Jobs {
		s, err := c.newSlot(i)
		if s != nil {
			c.slots = append(c.slots, s)
		}
		if err != nil {
			return err
		}
		c.free <- s
	}
	if c.o.Base != "" {
		dst := []*image{c.a}
		for _, s := range c.slots {
			dst = append(dst, s.b)
		}
		if err := copyBase(c.o.Base, c.buf, dst...); err != nil {
			return err
		}
	}
	if c.adev, err = devio.Open(c.a.path, devio.Options{Write: true}); err != nil {
		return err
	}
	c.trk = &tracked{dev: c.adev, a: c.a, compare: c.o.Dedupe}
	if c.o.Explore > 0 {
		if c.xr, err = journal.NewReader(c.jf, c.jsize); err != nil {
			return c.wrap(err)
		}
	}
	return nil
}

// cleanup undoes setup, as far as it got.
func (c *crash) cleanup() error {
	var errs []error
	busy := false
	for _, s := range c.slots {
		errs = append(errs, s.close())
		busy = busy || s.mounted
	}
	if c.adev != nil {
		c.adev.Close()
	}
	if c.a != nil {
		c.a.close()
	}
	c.jf.Close()
	if c.dir != "" && !busy {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// onePass replays the journal once into A and checks each point on a
// slot's copy.
func (c *crash) onePass(ctx context.Context) error {
	r, err := journal.NewReader(c.jf, c.jsize)
	if err != nil {
		return c.wrap(err)
	}
	f := c.o.Fault
	if f != nil && c.faultPrev < 0 {
		c.trk.setFault(f.Kind != DelayWrite, c.faultHold())
	}
	cut := func(e journal.Entry) bool {
		return e.IsBarrier() || c.isPoint(e) || (f != nil && e.Index == f.Until && f.delays())
	}
	at := func(e journal.Entry) error {
		if f != nil && e.Index == c.faultClose {
			c.trk.setFault(false, span{})
		}
		if c.isPoint(e) {
			if err := c.point(ctx, e); err != nil {
				return err
			}
		}
		if f == nil {
			return nil
		}
		if e.Index == c.faultPrev {
			c.trk.setFault(f.Kind != DelayWrite, c.faultHold())
		}
		if f.delays() && e.Index == f.Until {
			return c.applyDelayed(ctx)
		}
		return nil
	}
	p := replay.New(r, c.trk, replay.Options{Parallel: c.o.Parallel})
	_, err = p.Run(ctx, journal.Stop{}, cut, at)
	if err == nil {
		c.mu.Lock()
		c.sum.RunStates = c.unit + c.same
		c.mu.Unlock()
	}
	var pe *PointError
	if errors.As(err, &pe) || errors.Is(err, context.Canceled) {
		return err
	}
	return c.wrap(err)
}

// faultHold is the range a DelayWrite fault clips out of its window.
func (c *crash) faultHold() span {
	if c.o.Fault.Kind != DelayWrite {
		return span{}
	}
	e, err := c.entry(c.o.Fault.Entry)
	if err != nil {
		return span{}
	}
	return span{e.Start(), e.End()}
}

// entry reads the header of entry i.
func (c *crash) entry(i int64) (journal.Entry, error) {
	r, err := journal.NewReader(c.jf, c.jsize)
	if err != nil {
		return journal.Entry{}, err
	}
	if err := r.SeekEntry(i); err != nil {
		return journal.Entry{}, err
	}
	return r.NextHeader()
}

// applyDelayed writes what a DelayWrite or DelayWindow fault delayed into
// A: the write, or the window's entries (after faultPrev up to faultClose).
func (c *crash) applyDelayed(ctx context.Context) error {
	first, last := c.o.Fault.Entry, c.o.Fault.Entry
	if c.o.Fault.Kind == DelayWindow {
		first, last = c.faultPrev+1, c.faultClose
	}
	var win []journal.Entry
	var keep []int
	for i := first; i <= last; i++ {
		e, err := c.entry(i)
		if err != nil {
			return c.wrap(err)
		}
		if e.IsWrite() || e.IsDiscard() {
			keep = append(keep, len(win))
		}
		win = append(win, e)
	}
	return c.applyEntries(ctx, win, keep, c.trk.WriteAt, c.trk.Discard, nil)
}

// fromZero is the baseline: for every point, replay from entry 0 into the
// one slot's image, and check there.
func (c *crash) fromZero(ctx context.Context) error {
	r, err := journal.NewReader(c.jf, c.jsize)
	if err != nil {
		return c.wrap(err)
	}
	for {
		e, err := r.NextHeader()
		if err == io.EOF {
			c.mu.Lock()
			c.sum.RunStates = c.unit
			c.mu.Unlock()
			return nil
		}
		if err != nil {
			return c.wrap(err)
		}
		if c.isPoint(e) {
			if err := c.point(ctx, e); err != nil {
				return err
			}
		}
	}
}

// windowAfter returns the entries after e up to and including the next
// barrier (or the journal's end).
func (c *crash) windowAfter(e journal.Entry) ([]journal.Entry, error) {
	next := e.Index + 1
	if n := len(c.xwin); n > 0 && next > c.xwin[0].Index && next <= c.xwin[n-1].Index {
		return c.xwin[next-c.xwin[0].Index:], nil
	}
	if next >= c.xr.Len() {
		return nil, nil
	}
	if err := c.xr.SeekEntry(next); err != nil {
		return nil, c.wrap(err)
	}
	c.xwin = c.xwin[:0]
	for {
		x, err := c.xr.NextHeader()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, c.wrap(err)
		}
		c.xwin = append(c.xwin, x)
		if x.IsBarrier() {
			break
		}
	}
	return c.xwin, nil
}

// applyEntries applies the entries of win at keep, coalesced, through
// write and discard, reading payloads from the journal. The ranges go to
// dirty when it is not nil.
func (c *crash) applyEntries(ctx context.Context, win []journal.Entry, keep []int,
	write func([]byte, int64) (int, error), discard func(off, n int64) error, dirty *spanSet) error {
	for _, x := range barrier.CoalesceSubset(win, keep) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if dirty != nil {
			dirty.add(x.Start, x.End())
		}
		if x.Discard {
			if err := discard(x.Start, x.Len); err != nil {
				return err
			}
			continue
		}
		off := x.Start
		for _, p := range x.Parts {
			e := win[p.Entry]
			for done := int64(0); done < p.Len; {
				b := c.buf[:min(int64(len(c.buf)), p.Len-done)]
				if _, err := c.jf.ReadAt(b, e.PayloadOffset()+p.Off+done); err != nil {
					return c.wrap(fmt.Errorf("entry %d: reading payload: %w", e.Index, err))
				}
				if _, err := write(b, off); err != nil {
					return err
				}
				off += int64(len(b))
				done += int64(len(b))
			}
		}
	}
	return nil
}
