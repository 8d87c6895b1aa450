package crashtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
}

// Summary counts what Crashtest did.
type Summary struct {
	Entries   int64 // entries in the journal
	Points    int   // crash points checked
	Explored  int   // explored states checked
	Manifests int   // points whose manifest was compared
	Failed    int   // states that failed
	First     *Result
	// Total is the wall time; Prepare and Check the sums over the states
	// (the rest is the replay, overlapped with reading the journal).
	Total, Prepare, Check time.Duration
	Copied                int64 // bytes copied into the check image
	Compared              int64 // bytes compared to find what checks wrote
	Size                  int64 // bytes in each image
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
	start := time.Now()
	c.lastProgress = start
	err = c.setup()
	if err == nil {
		if o.Strategy == FromZero {
			err = c.fromZero(ctx)
		} else {
			err = c.onePass(ctx)
		}
	}
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

// crash is one run of Crashtest.
type crash struct {
	o     Options
	path  string
	jf    *os.File
	jsize int64
	super journal.Super

	// From the header scan.
	from       int64 // index of the from-mark, or -1
	nPoints    int
	faultPrev  int64 // the barrier before the fault's window, or -1
	faultClose int64 // the barrier that closes it, or -1

	dir       string
	a, b      *image
	adev      *devio.Device // A, written by the replay
	bdev      *devio.Device // B, written by FromZero's replay
	trk       *tracked
	loop      *devio.Loop
	loopf     *os.File // the loop device, for BLKFLSBUF
	mnt       string
	mounted   bool
	bDirty    spanSet // ranges the bench changed in B since it was level
	bTouched  bool    // a check wrote to B since it was level
	buf, buf2 []byte

	xr   *journal.Reader // reads the windows after points (Explore)
	xwin []journal.Entry // the last window it read
	rng  *rand.Rand

	seq          int
	sum          Summary
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
	jf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	c := &crash{o: o, path: path, jf: jf, from: -1, faultPrev: -1, faultClose: -1,
		rng: rand.New(rand.NewPCG(o.Seed, 0x6c6f6773686970))}
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
	size, err := c.jf.Seek(0, io.SeekEnd)
	if err != nil {
		return c.wrap(err)
	}
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
		case f.Kind == DelayWrite && (c.faultClose < 0 || f.Until < c.faultClose || f.Until >= r.Len()):
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

// setup creates the scratch images and the loop device.
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
	if c.b, err = createImage(filepath.Join(c.dir, "check.img"), c.sum.Size); err != nil {
		return err
	}
	if c.o.Base != "" {
		if err := copyBase(c.o.Base, c.buf, c.a, c.b); err != nil {
			return err
		}
	}
	if c.adev, err = devio.Open(c.a.path, devio.Options{Write: true}); err != nil {
		return err
	}
	if c.bdev, err = devio.Open(c.b.path, devio.Options{Write: true}); err != nil {
		return err
	}
	c.trk = &tracked{dev: c.adev}
	if c.o.Device == DeviceLoop || len(c.o.Manifest) > 0 {
		if c.loop, err = devio.AttachLoop(c.b.path, devio.LoopOptions{BlockSize: min(int(c.super.SectorSize), 4096)}); err != nil {
			return err
		}
		if c.loopf, err = os.Open(c.loop.Path()); err != nil {
			return err
		}
	}
	if len(c.o.Manifest) > 0 {
		c.mnt = filepath.Join(c.dir, "mnt")
		if err := os.Mkdir(c.mnt, 0o700); err != nil {
			return err
		}
	}
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
	if c.mounted {
		if err := unmount(c.mnt); err != nil {
			errs = append(errs, err)
		} else {
			c.mounted = false
		}
	}
	if c.loopf != nil {
		c.loopf.Close()
	}
	if c.loop != nil {
		errs = append(errs, c.loop.Detach())
	}
	for _, d := range []*devio.Device{c.adev, c.bdev} {
		if d != nil {
			d.Close()
		}
	}
	for _, im := range []*image{c.a, c.b} {
		if im != nil {
			im.close()
		}
	}
	c.jf.Close()
	if c.dir != "" && !c.mounted {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// onePass replays the journal once into A and checks each point on B.
func (c *crash) onePass(ctx context.Context) error {
	r, err := journal.NewReader(c.jf, c.jsize)
	if err != nil {
		return c.wrap(err)
	}
	f := c.o.Fault
	if f != nil && c.faultPrev < 0 {
		c.trk.setFault(f.Kind == DropWindow, c.faultHold())
	}
	cut := func(e journal.Entry) bool {
		return e.IsBarrier() || c.isPoint(e) || (f != nil && e.Index == f.Until && f.Kind == DelayWrite)
	}
	at := func(e journal.Entry) error {
		if f != nil && e.Index == c.faultClose {
			c.trk.setFault(false, span{})
		}
		if c.isPoint(e) {
			if err := c.checkPoint(ctx, e); err != nil {
				return err
			}
		}
		if f == nil {
			return nil
		}
		if e.Index == c.faultPrev {
			c.trk.setFault(f.Kind == DropWindow, c.faultHold())
		}
		if f.Kind == DelayWrite && e.Index == f.Until {
			return c.applyDelayed(ctx)
		}
		return nil
	}
	p := replay.New(r, c.trk, replay.Options{Parallel: c.o.Parallel})
	_, err = p.Run(ctx, journal.Stop{}, cut, at)
	var pe *PointError
	if errors.As(err, &pe) {
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

// applyDelayed writes the delayed write of a DelayWrite fault into A.
func (c *crash) applyDelayed(ctx context.Context) error {
	e, err := c.entry(c.o.Fault.Entry)
	if err != nil {
		return c.wrap(err)
	}
	return c.applyEntries(ctx, []journal.Entry{e}, []int{0}, c.trk.WriteAt, c.trk.Discard, nil)
}

// fromZero is the baseline: for every point, replay from entry 0.
func (c *crash) fromZero(ctx context.Context) error {
	r, err := journal.NewReader(c.jf, c.jsize)
	if err != nil {
		return c.wrap(err)
	}
	for {
		e, err := r.NextHeader()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return c.wrap(err)
		}
		if c.isPoint(e) {
			if err := c.checkPoint(ctx, e); err != nil {
				return err
			}
		}
	}
}

// materialize puts the state after e into B.
func (c *crash) materialize(ctx context.Context, e journal.Entry) error {
	if c.o.Strategy == FromZero {
		if err := c.b.reset(); err != nil {
			return err
		}
		if c.o.Base != "" {
			if err := copyBase(c.o.Base, c.buf, c.b); err != nil {
				return err
			}
		}
		r, err := journal.NewReader(c.jf, c.jsize)
		if err != nil {
			return c.wrap(err)
		}
		st, err := replay.New(r, c.bdev, replay.Options{Parallel: c.o.Parallel}).Run(ctx, journal.Stop{Limit: e.Index + 1}, nil, nil)
		c.sum.Copied += st.Written
		if err != nil {
			return c.wrap(err)
		}
		c.bDirty, c.bTouched = nil, false
		return c.ready()
	}
	var todo spanSet
	switch {
	case c.o.Refresh == RefreshFull:
		c.trk.take()
		todo.add(0, c.b.size)
	case c.bTouched:
		// A check wrote to B, where is unknown: compare. Copying all of A
		// instead costs about as much here, but leaves B with every page
		// dirty, and the next check's fsync through the loop device
		// (e2fsck, mount) then writes them all back.
		c.trk.take()
		d, n, err := diff(c.a, c.b, c.buf, c.buf2)
		c.sum.Compared += n
		if err != nil {
			return err
		}
		todo = d
	default:
		todo = append(c.trk.take(), c.bDirty...)
	}
	for _, s := range todo.merged() {
		n, err := level(c.b, c.a, s.off, s.end, c.buf)
		c.sum.Copied += n
		if err != nil {
			return err
		}
	}
	c.bDirty, c.bTouched = nil, false
	return c.ready()
}

// ready prepares B for a check: the mtime sentinel set and the loop
// device's cache dropped, so the check reads what B holds.
func (c *crash) ready() error {
	if err := c.b.markClean(); err != nil {
		return err
	}
	return c.flushLoop()
}

// settle runs after a check or a mount: the loop device's dirty cache is
// written to B, and B's mtime says whether anything was written.
func (c *crash) settle() error {
	if err := c.flushLoop(); err != nil {
		return err
	}
	t, err := c.b.touched()
	if err != nil {
		return err
	}
	c.bTouched = c.bTouched || t
	return nil
}

func (c *crash) flushLoop() error {
	if c.loopf == nil {
		return nil
	}
	if err := flushBuffers(c.loopf); err != nil {
		return fmt.Errorf("BLKFLSBUF %s: %w", c.loop.Path(), err)
	}
	return nil
}

func (c *crash) state(p Point) *State {
	s := &State{Point: p, Image: c.b.path, Target: c.b.path}
	if c.loop != nil {
		s.Device = c.loop.Path()
		if c.o.Device == DeviceLoop {
			s.Target = s.Device
		}
	}
	return s
}

// checkPoint checks the state after e, then its explored states.
func (c *crash) checkPoint(ctx context.Context, e journal.Entry) error {
	c.seq++
	p := Point{Seq: c.seq, Entry: e}
	res := Result{Point: p}
	t0 := time.Now()
	if err := c.materialize(ctx, e); err != nil {
		return err
	}
	res.Prepare = time.Since(t0)
	t1 := time.Now()
	var out strings.Builder
	if c.o.Check != nil {
		b, err := c.o.Check.Check(ctx, c.state(p))
		out.Write(b)
		failed, fatal := classify(ctx, err)
		if fatal != nil {
			return fatal
		}
		res.Err = failed
		if err := c.settle(); err != nil {
			return err
		}
	}
	if files := c.o.Manifest[e.Label]; e.IsMark() && len(files) > 0 && res.Err == nil {
		if c.bTouched {
			t := time.Now()
			if err := c.materialize(ctx, e); err != nil {
				return err
			}
			res.Prepare += time.Since(t)
		}
		problems, err := c.checkManifest(ctx, files)
		if err != nil {
			return err
		}
		c.sum.Manifests++
		res.Files = len(files)
		if len(problems) > 0 {
			res.Err = fmt.Errorf("manifest of mark %q: %s", e.Label, problems[0])
			if len(problems) > 1 {
				res.Err = fmt.Errorf("%w (and %d more problems)", res.Err, len(problems)-1)
			}
			if out.Len() > 0 && !strings.HasSuffix(out.String(), "\n") {
				out.WriteByte('\n')
			}
			out.WriteString(strings.Join(problems, "\n") + "\n")
		}
	}
	res.Check = time.Since(t1)
	res.Output = out.String()
	if err := c.report(res); err != nil {
		return err
	}
	if c.o.Explore > 0 {
		return c.explore(ctx, p)
	}
	return nil
}

// classify sorts a Checker's error: a failing state (returned as failed),
// or a check that could not run or was interrupted (returned as fatal).
func classify(ctx context.Context, err error) (failed, fatal error) {
	switch {
	case err == nil:
		return nil, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, errNotRun):
		return nil, err
	}
	return err, nil
}

// explore checks the explored states of the window after p.
func (c *crash) explore(ctx context.Context, p Point) error {
	win, err := c.windowAfter(p.Entry)
	if err != nil {
		return err
	}
	subsets := crashSubsets(win, c.o.Explore, c.rng)
	writes := 0
	for _, e := range win {
		if e.Len() > 0 && !e.IsMark() {
			writes++
		}
	}
	for k, keep := range subsets {
		q := p
		q.Explore = k + 1
		q.First, q.Last, q.Writes = win[0].Index, win[len(win)-1].Index, writes
		for _, i := range keep {
			q.Keep = append(q.Keep, win[i].Index)
		}
		res := Result{Point: q}
		t0 := time.Now()
		if err := c.materialize(ctx, p.Entry); err != nil {
			return err
		}
		err := c.applyEntries(ctx, win, keep, c.b.f.WriteAt, func(off, n int64) error { return c.b.punch(off, n) }, &c.bDirty)
		if err != nil {
			return err
		}
		if err := c.ready(); err != nil {
			return err
		}
		res.Prepare = time.Since(t0)
		t1 := time.Now()
		out, err := c.o.Check.Check(ctx, c.state(q))
		failed, fatal := classify(ctx, err)
		if fatal != nil {
			return fatal
		}
		res.Err, res.Output = failed, string(out)
		if err := c.settle(); err != nil {
			return err
		}
		res.Check = time.Since(t1)
		if err := c.report(res); err != nil {
			return err
		}
	}
	return nil
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

// checkManifest mounts B read-only through the loop device and compares
// the files. A mount that fails is a problem of the state.
func (c *crash) checkManifest(ctx context.Context, files []ManifestFile) ([]string, error) {
	cmd := exec.CommandContext(ctx, "mount", "-o", "ro", c.loop.Path(), c.mnt)
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("mount (Debian package mount): %w", err)
		}
		if serr := c.settle(); serr != nil {
			return nil, serr
		}
		return []string{fmt.Sprintf("mount -o ro %s: %v: %s", c.loop.Path(), err, strings.TrimSpace(string(out)))}, nil
	}
	c.mounted = true
	problems, err := checkFiles(c.mnt, files, c.o.ManifestExact)
	if uerr := unmount(c.mnt); uerr != nil {
		return nil, uerr
	}
	c.mounted = false
	if err != nil {
		return nil, err
	}
	return problems, c.settle()
}

// report records a result and stops the run at a failure unless KeepGoing.
func (c *crash) report(res Result) error {
	if res.Explore == 0 {
		c.sum.Points++
	} else {
		c.sum.Explored++
	}
	c.sum.Prepare += res.Prepare
	c.sum.Check += res.Check
	if res.Err != nil {
		c.sum.Failed++
		if c.sum.First == nil {
			r := res
			c.sum.First = &r
		}
	}
	if c.o.Report != nil {
		c.o.Report(res)
	}
	if c.o.Progress != nil && time.Since(c.lastProgress) >= 2*time.Second {
		c.lastProgress = time.Now()
		fmt.Fprintf(c.o.Progress, "crashtest: point %d of %d (entry %d of %d), %d explored states, %d failed\n",
			c.sum.Points, c.nPoints, res.Entry.Index, c.sum.Entries, c.sum.Explored, c.sum.Failed)
	}
	if res.Err != nil && !c.o.KeepGoing {
		return &PointError{Result: res, Failed: c.sum.Failed}
	}
	return nil
}
