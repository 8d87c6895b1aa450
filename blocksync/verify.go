package blocksync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/parallel"
)

// VerifyJournal is the journal identity a verify or recover opens the
// task with: it sends no window, so the task's position does not move.
const VerifyJournal = "logship-verify"

// VerifyConfig configures Verify.
type VerifyConfig struct {
	// Source is the device (or image file) to compare with the image of
	// task Client.Task on the server at Addr.
	Source string
	Addr   string
	Client parallel.ClientConfig
	// Granularity is the size of the pieces compared and reported
	// (DefaultVerifyGranularity if 0: the paper's 512 bytes); BlockSize
	// the unit of reading (DefaultBlockSize if 0).
	Granularity int64
	BlockSize   int64
	// Parallel is how many blocks are read at once (DefaultParallel if 0).
	Parallel int
	// Freeze, if set, is the mount point of a file system on Source,
	// frozen (FIFREEZE) while the source is read and thawed after.
	Freeze string
	// AtMark, if set, compares with the image as of a mark, while a ship
	// to the task goes on (paper section 6.2 on a live volume): once the
	// source is frozen (Freeze), Verify calls AtMark to put a mark with a
	// new label in the journal being shipped (devio.Mark on the log-writes
	// target), asks the server to wait until the ship has applied it, then
	// compares. Nothing is paused on the source; the comparison holds as
	// long as nothing writes to Source after the mark: a frozen file
	// system, or a device nothing writes to.
	AtMark func(label string) error
	// MarkWait bounds the wait for the mark (DefaultMarkWait if 0).
	MarkWait time.Duration
	// Progress, if set, is updated as the comparison goes.
	Progress *Progress
}

// DefaultMarkWait is how long Verify waits for its mark to be applied.
const DefaultMarkWait = 5 * time.Minute

// VerifyResult is what Verify found.
type VerifyResult struct {
	Task      string
	Mark      string // the mark compared at (AtMark), or ""
	Size      int64  // bytes of the source
	ImageSize int64  // bytes of the image
	// Ranges are the byte ranges that differ, in order, adjacent pieces
	// merged; when the sizes differ, the bytes past the smaller size are
	// the last range.
	Ranges []Range
	// DifferingBytes is the sum of the ranges' lengths.
	DifferingBytes int64
	Calls          int64 // block calls (digests)
	CallBytes      int64 // their request and reply payload bytes
	WireOut        int64 // bytes on the wire to the server
	WireIn         int64 // and from it
	Elapsed        time.Duration
}

// Equal reports whether the source and the image are the same.
func (r VerifyResult) Equal() bool { return len(r.Ranges) == 0 }

// Verify compares the source with the task's image (paper section 6.2):
// both sides digest their device with the same tree, and only the
// digests of what differs travel, down to Granularity. The source should
// be quiet while it is read: a snapshot, a frozen file system (Freeze),
// or a device nothing writes to.
func Verify(ctx context.Context, cfg VerifyConfig) (res VerifyResult, err error) {
	start := time.Now()
	if cfg.Granularity == 0 {
		cfg.Granularity = DefaultVerifyGranularity
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	res.Task = cfg.Client.Task
	if cfg.Source == "" || cfg.Addr == "" || cfg.Client.Task == "" {
		return res, errors.New("source: verify: no source, server address or task")
	}
	dev, err := openLocal(cfg.Source, devio.Options{})
	if err != nil {
		return res, err
	}
	defer dev.Close()
	res.Size = dev.Size()
	if cfg.Freeze != "" {
		fr, ferr := Freeze(cfg.Freeze)
		if ferr != nil {
			return res, ferr
		}
		defer func() {
			if terr := fr.Thaw(); terr != nil && err == nil {
				err = terr
			}
		}()
	}
	sess, err := parallel.Dial(ctx, cfg.Addr, cfg.Client)
	if err != nil {
		return res, err
	}
	c := &caller{sess: sess}
	defer func() {
		sess.Close()
		res.WireOut, res.WireIn = sessionWire(sess)
		res.Calls, res.CallBytes = c.calls.Load(), c.bytes.Load()
		res.Elapsed = time.Since(start)
	}()
	open := control.Open{Journal: VerifyJournal}
	octx := ctx
	if cfg.AtMark != nil {
		// The source is quiet now (frozen, or nothing writes to it): the
		// mark goes in its journal, and the server waits until the
		// session shipping it has applied the mark to the image.
		open.At, open.Live = fmt.Sprintf("logship-verify.%d", time.Now().UnixNano()), true
		if err := cfg.AtMark(open.At); err != nil {
			return res, fmt.Errorf("source: verify: putting mark %q in the journal: %w", open.At, err)
		}
		res.Mark = open.At
		if cfg.MarkWait <= 0 {
			cfg.MarkWait = DefaultMarkWait
		}
		var cancel context.CancelFunc
		octx, cancel = context.WithTimeout(ctx, cfg.MarkWait)
		defer cancel()
	}
	task, err := openBlocks(octx, sess, open)
	if err != nil {
		if open.Live && octx.Err() != nil && ctx.Err() == nil {
			return res, fmt.Errorf("source: verify: mark %q not applied to the image of task %s within %v (is a logship ship following the task?): %w", open.At, cfg.Client.Task, cfg.MarkWait, err)
		}
		return res, err
	}
	res.ImageSize = task.ImageSize
	size := min(res.Size, res.ImageSize)
	if size > 0 {
		t := digest.Tree{Size: size, Granularity: cfg.Granularity, BlockSize: cfg.BlockSize}
		if err := t.Check(); err != nil {
			return res, err
		}
		cfg.Progress.setTotal(size)
		rd := newBlockReader(dev, cfg.Source, t, cfg.Parallel, cfg.Progress)
		err = c.compareSpans(ctx, rd, 0, func(leaves []int64) error {
			for _, l := range leaves {
				off, n := t.Span(0, l)
				if k := len(res.Ranges) - 1; k >= 0 && res.Ranges[k].End() == off {
					res.Ranges[k].Length += n
				} else {
					res.Ranges = append(res.Ranges, Range{Offset: off, Length: n})
				}
				res.DifferingBytes += n
			}
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	if res.Size != res.ImageSize {
		r := Range{Offset: size, Length: max(res.Size, res.ImageSize) - size}
		res.Ranges = append(res.Ranges, r)
		res.DifferingBytes += r.Length
	}
	return res, nil
}

// String describes a range for people.
func (r Range) String() string { return fmt.Sprintf("offset %d length %d", r.Offset, r.Length) }
