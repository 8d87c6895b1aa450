package blocksync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/parallel"
)

// ErrNotSupported: the server does not do what was asked (an older
// version).
var ErrNotSupported = errors.New("source: not supported by the server")

// RecoverConfig configures Recover.
type RecoverConfig struct {
	// Target is the device (or file, created if missing) to restore the
	// image of task Client.Task on the server at Addr into.
	Target string
	Addr   string
	Client parallel.ClientConfig
	// Full copies the whole image; otherwise only the pieces whose digests
	// differ are pulled.
	Full bool
	// Granularity is the unit of comparison and transfer
	// (DefaultSyncGranularity if 0); BlockSize the unit of reading
	// (DefaultBlockSize if 0).
	Granularity int64
	BlockSize   int64
	// Parallel is how many blocks are read, and pieces fetched, at once
	// (DefaultParallel if 0).
	Parallel int
	// At recovers the state of the image at the first mark with this
	// label that the source shipped (everything written before it, nothing
	// after), rather than the image as it is: the server rebuilds it from
	// its staging logs, which it must have retained since the task was
	// created (logship serve --retain).
	At string
	// Progress, if set, is updated as the recovery goes.
	Progress *Progress
}

// RecoverStats says what Recover did.
type RecoverStats struct {
	Task       string
	Size       int64 // bytes of the image, all restored into the target
	TargetSize int64 // bytes of the target (at least Size; a file is cut to Size)
	Full       bool  // everything was pulled (Full, or a target created empty)
	Ranges     int64 // ranges fetched
	DataBytes  int64 // bytes of data received (zeros do not travel)
	ZeroBytes  int64 // bytes zeroed (discarded) in the target
	Calls      int64 // block calls (digests and reads)
	CallBytes  int64 // their request and reply payload bytes
	WireOut    int64
	WireIn     int64
	Elapsed    time.Duration
}

// Recover restores the image of the task into Target (paper section 3):
// it locks Target (an exclusive open: a block device that is mounted or
// held is refused with devio.ErrBusy; a file gets a lock), pulls what
// differs (or everything, Full), writes it, syncs, and unlocks.
func Recover(ctx context.Context, cfg RecoverConfig) (st RecoverStats, err error) {
	start := time.Now()
	if cfg.Granularity == 0 {
		cfg.Granularity = DefaultSyncGranularity
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	st.Task, st.Full = cfg.Client.Task, cfg.Full
	switch {
	case cfg.Target == "" || cfg.Addr == "" || cfg.Client.Task == "":
		return st, errors.New("source: recover: no target, server address or task")
	}
	_, statErr := os.Stat(cfg.Target)
	existed := statErr == nil
	dev, err := openLocal(cfg.Target, devio.Options{Write: true, Exclusive: true, Create: true})
	if err != nil {
		return st, err
	}
	created := dev.Kind() == devio.File && dev.Size() == 0
	defer func() {
		if cerr := dev.Close(); cerr != nil && err == nil {
			err = &LocalError{Path: cfg.Target, Err: cerr}
		}
		if err != nil && !existed && st.DataBytes+st.ZeroBytes == 0 {
			os.Remove(cfg.Target) // made for nothing
		}
	}()
	sess, err := parallel.Dial(ctx, cfg.Addr, cfg.Client)
	if err != nil {
		return st, err
	}
	c := &caller{sess: sess}
	defer func() {
		sess.Close()
		st.WireOut, st.WireIn = sessionWire(sess)
		st.Calls, st.CallBytes = c.calls.Load(), c.bytes.Load()
		st.Elapsed = time.Since(start)
	}()
	task, err := openBlocks(ctx, sess, control.Open{Journal: VerifyJournal, At: cfg.At})
	if err != nil {
		return st, err
	}
	st.Size = task.ImageSize
	t := digest.Tree{Size: st.Size, Granularity: cfg.Granularity, BlockSize: cfg.BlockSize}
	if err := t.Check(); err != nil {
		return st, err
	}
	if err := fitTarget(dev, st.Size); err != nil {
		return st, err
	}
	st.TargetSize = dev.Size()
	if lbs := int64(dev.LogicalBlockSize()); cfg.Granularity%lbs != 0 {
		return st, fmt.Errorf("%w: granularity %d is not a multiple of the logical block size %d of %s", ErrSize, cfg.Granularity, lbs, cfg.Target)
	}
	r := &restorer{cfg: &cfg, dev: dev, c: c, t: t, st: &st}
	cfg.Progress.setTotal(st.Size)
	if cfg.Full || created {
		st.Full = true
		err = r.full(ctx)
	} else {
		err = r.diff(ctx)
	}
	if err != nil {
		return st, err
	}
	if err := dev.Sync(); err != nil {
		return st, &LocalError{Path: cfg.Target, Err: err}
	}
	return st, nil
}

// fitTarget makes the target hold size bytes: a file is cut or extended
// to size; a block device must have at least size bytes.
func fitTarget(dev *devio.Device, size int64) error {
	have := dev.Size()
	switch {
	case have == size:
		return nil
	case dev.Kind() == devio.File:
		if err := unix.Ftruncate(int(dev.Fd()), size); err != nil {
			return &LocalError{Path: dev.Path(), Err: fmt.Errorf("sizing to %d bytes: %w", size, err)}
		}
		return nil
	case have < size:
		return fmt.Errorf("%w: %s has %d bytes, the image %d", ErrSize, dev.Path(), have, size)
	}
	return nil // a larger device: the bytes past the image stay as they are
}

// restorer copies pieces of the image into the target.
type restorer struct {
	cfg *RecoverConfig
	dev *devio.Device
	c   *caller
	t   digest.Tree
	st  *RecoverStats // counters, summed by fetch after its goroutines
}

// full pulls every block.
func (r *restorer) full(ctx context.Context) error {
	t := r.t
	var rs []Range
	for b := range t.Blocks() {
		off, n := t.Span(t.BlockLevel(), b)
		rs = append(rs, Range{off, n})
	}
	return r.fetch(ctx, rs, true)
}

// diff compares the target with the image and pulls what differs.
func (r *restorer) diff(ctx context.Context) error {
	t := r.t
	rd := newBlockReader(r.dev, r.cfg.Target, t, r.cfg.Parallel, r.cfg.Progress)
	return r.c.compareSpans(ctx, rd, 0, func(leaves []int64) error {
		var rs []Range
		for _, l := range leaves {
			off, n := t.Span(0, l)
			if k := len(rs) - 1; k >= 0 && rs[k].End() == off && rs[k].Length+n <= control.MaxReadLength {
				rs[k].Length += n
			} else {
				rs = append(rs, Range{off, n})
			}
		}
		return r.fetch(ctx, rs, false)
	})
}

// fetch reads the ranges from the image (at most MaxReadLength each), in
// parallel, and writes them into the target: data as it comes, zero
// pieces as discards.
func (r *restorer) fetch(ctx context.Context, rs []Range, scanned bool) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Parallel)
	type counts struct{ ranges, data, zero int64 }
	var res []*counts
	for _, rg := range rs {
		for off := rg.Offset; off < rg.End(); off += control.MaxReadLength {
			n := min(control.MaxReadLength, rg.End()-off)
			cnt := &counts{}
			res = append(res, cnt)
			g.Go(func() error {
				req := &control.Read{Offset: off, Length: n, Granularity: r.t.Granularity}
				resp, err := r.c.call(gctx, control.Request{Op: control.OpRead, Read: req})
				if err != nil {
					return err
				}
				data := devio.AlignedBuffer(int(n), directAlign)
				bm, err := req.ParseRead(resp, data)
				if err != nil {
					return fmt.Errorf("source: task %q: %w", r.c.sess.Task(), err)
				}
				cnt.ranges = 1
				cnt.data, cnt.zero, err = r.write(off, data, bm)
				if err != nil {
					return err
				}
				r.cfg.Progress.move(cnt.data)
				if scanned {
					r.cfg.Progress.scan(n)
				}
				return nil
			})
		}
	}
	err := g.Wait()
	for _, x := range res {
		r.st.Ranges += x.ranges
		r.st.DataBytes += x.data
		r.st.ZeroBytes += x.zero
	}
	return err
}

// write writes data (the bytes at off) into the target, discarding the
// runs of zero pieces that bm marks, and returns the bytes written and
// discarded.
func (r *restorer) write(off int64, data, bm []byte) (written, zeroed int64, err error) {
	g := r.t.Granularity
	n := int64(len(data))
	for at := int64(0); at < n; {
		zero := control.BitSet(bm, at/g)
		end := at
		for end < n && control.BitSet(bm, end/g) == zero {
			end = min(end+g, n)
		}
		if zero {
			err = r.dev.Discard(off+at, end-at)
			zeroed += end - at
		} else {
			_, err = r.dev.WriteAt(data[at:end], off+at)
			written += end - at
		}
		if err != nil {
			return written, zeroed, &LocalError{Path: r.cfg.Target, Err: err}
		}
		at = end
	}
	return written, zeroed, nil
}
