package crashtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/logship/logship/journal"
)

// The replay goroutine calls point at every crash point, with A holding
// the point's state. It decides, the same way in every shard, which states
// need a check (Dedupe) and which shard checks them; for each of this
// shard's it takes a free slot, materializes the state there and starts
// the check in a goroutine of its own, then lets the replay go on. The
// results come back in any order; deliver reports them in order.

// point handles the crash point after e: the point's state, then the
// explored states of the window after it.
func (c *crash) point(ctx context.Context, e journal.Entry) error {
	if err := c.stopped(); err != nil {
		return err
	}
	changed := c.trk.takeChanged()
	c.distribute()
	c.seq++
	p := Point{Seq: c.seq, Entry: e}
	var files []ManifestFile
	if e.IsMark() {
		files = c.o.Manifest[e.Label]
	}
	if c.o.Dedupe && c.rep > 0 && !changed && len(files) == 0 {
		c.same++
		if c.repOwn {
			if err := c.waitWindow(); err != nil {
				return err
			}
			c.deliver(c.order, Result{Point: p, SameAs: c.rep})
			c.order++
		}
	} else {
		own := c.o.Shard.owns(c.unit)
		c.unit++
		c.rep, c.repOwn = p.Seq, own
		if len(files) > 0 {
			c.rep = 0 // its verdict is the manifest's too
		}
		if own {
			if err := c.dispatch(ctx, Result{Point: p}, files, nil, nil); err != nil {
				return err
			}
		}
	}
	if c.o.Explore > 0 {
		return c.explore(ctx, p)
	}
	return nil
}

// explore handles the explored states of the window after p. Every shard
// draws the same subsets.
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
		own := c.o.Shard.owns(c.unit)
		c.unit++
		if !own {
			continue
		}
		q := p
		q.Explore = k + 1
		q.First, q.Last, q.Writes = win[0].Index, win[len(win)-1].Index, writes
		for _, i := range keep {
			q.Keep = append(q.Keep, win[i].Index)
		}
		if err := c.dispatch(ctx, Result{Point: q}, nil, win, keep); err != nil {
			return err
		}
	}
	return nil
}

// dispatch materializes a state in a free slot and checks it: in a
// goroutine of its own, or, when the point has manifest lines, at once
// (a check that wrote must be undone from A before the mount, and A must
// still hold the point's state for that).
func (c *crash) dispatch(ctx context.Context, res Result, files []ManifestFile, win []journal.Entry, keep []int) error {
	if err := c.waitWindow(); err != nil {
		return err
	}
	if c.o.Check == nil && len(files) == 0 {
		// Only the manifest's marks are checked; the other points pass.
		c.deliver(c.order, res)
		c.order++
		return nil
	}
	var s *slot
	select {
	case s = <-c.free:
	case <-ctx.Done():
		return c.stoppedOr(ctx.Err())
	}
	if err := c.stopped(); err != nil {
		c.free <- s
		return err
	}
	order := c.order
	c.order++
	t0 := time.Now()
	err := c.materialize(ctx, s, res.Entry)
	if err == nil && res.Explore > 0 {
		err = c.applyEntries(ctx, win, keep, s.b.f.WriteAt, func(off, n int64) error { return s.b.punch(off, n) }, &s.bDirty)
		if err == nil {
			err = s.ready()
		}
	}
	res.Prepare = time.Since(t0)
	if err != nil {
		c.free <- s
		return err
	}
	if len(files) > 0 {
		res, err := c.checkManifestPoint(ctx, s, res, files)
		if err == nil {
			c.deliver(order, res)
		}
		c.free <- s
		return err
	}
	// The slot goes back after the result is delivered: with one job, a
	// failing state stops the run before the next is materialized.
	c.wg.Go(func() {
		res, err := c.check(ctx, s, res)
		if err != nil {
			c.fail(err)
		} else {
			c.deliver(order, res)
		}
		c.free <- s
	})
	return nil
}

// check runs the Checker on the state in s.
func (c *crash) check(ctx context.Context, s *slot, res Result) (Result, error) {
	t1 := time.Now()
	out, err := c.o.Check.Check(ctx, c.state(s, res.Point))
	failed, fatal := classify(ctx, err)
	if fatal != nil {
		return res, fatal
	}
	res.Err, res.Output = failed, string(out)
	if err := s.settle(); err != nil {
		return res, err
	}
	res.Check = time.Since(t1)
	return res, nil
}

// checkManifestPoint checks a point with manifest lines: the Checker, then
// (when it passed) the manifest, on the state as the journal left it.
func (c *crash) checkManifestPoint(ctx context.Context, s *slot, res Result, files []ManifestFile) (Result, error) {
	t1 := time.Now()
	var out strings.Builder
	if c.o.Check != nil {
		r, err := c.check(ctx, s, res)
		if err != nil {
			return res, err
		}
		res = r
		out.WriteString(res.Output)
	}
	if res.Err == nil {
		if s.bTouched {
			t := time.Now()
			if err := c.materialize(ctx, s, res.Entry); err != nil {
				return res, err
			}
			res.Prepare += time.Since(t)
		}
		problems, err := c.checkManifest(ctx, s, files)
		if err != nil {
			return res, err
		}
		c.mu.Lock()
		c.sum.Manifests++
		c.mu.Unlock()
		res.Files = len(files)
		if len(problems) > 0 {
			res.Err = fmt.Errorf("manifest of mark %q: %s", res.Entry.Label, problems[0])
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
	return res, nil
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

// window bounds the results held for reporting in order, per job: a slow
// check holds back the report of the states after it, and, past the
// window, the replay.
const window = 4

// waitWindow waits until the next state to dispatch is within the window
// of the next to report, or the run stops.
func (c *crash) waitWindow() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.order-c.next >= window*c.o.Jobs && c.stop == nil && c.fatal == nil {
		c.moved.Wait()
	}
	if c.stop != nil {
		return c.stop
	}
	return c.fatal
}

// deliver takes the result of the state dispatched order-th and reports
// every result that is now next in order. A point Dedupe did not check
// takes the verdict of the point it is the same as, reported before it.
func (c *crash) deliver(order int, res Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.moved.Broadcast()
	c.done[order] = res
	for {
		r, ok := c.done[c.next]
		if !ok {
			return
		}
		delete(c.done, c.next)
		c.next++
		if c.stop != nil || c.fatal != nil {
			continue
		}
		switch {
		case r.SameAs != 0 && r.SameAs != c.lastRep.Seq:
			c.fatal = fmt.Errorf("bench: point %d is the same as point %d, whose result is not at hand (internal error)", r.Seq, r.SameAs)
			c.cancel()
			continue
		case r.SameAs != 0:
			r.Err, r.Output, r.Files = c.lastRep.Err, c.lastRep.Output, c.lastRep.Files
		case r.Explore == 0:
			c.lastRep = r
		}
		if err := c.report(r); err != nil {
			c.stop = err
			c.cancel()
		}
	}
}

// fail records a check that could not run, and stops the run.
func (c *crash) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop == nil && c.fatal == nil {
		c.fatal = err
	}
	c.cancel()
	c.moved.Broadcast()
}

// stopped returns why the run stops, or nil.
func (c *crash) stopped() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		return c.stop
	}
	return c.fatal
}

func (c *crash) stoppedOr(err error) error {
	if s := c.stopped(); s != nil {
		return s
	}
	return err
}

// report records a result and stops the run at a failure unless
// KeepGoing. c.mu is held.
func (c *crash) report(res Result) error {
	switch {
	case res.Explore > 0:
		c.sum.Explored++
	default:
		c.sum.Points++
	}
	if res.SameAs != 0 {
		c.sum.Deduped++
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
		fmt.Fprintf(c.o.Progress, "crashtest: %s (entry %d of %d), %d explored states, %d the same as the point before, %d failed\n",
			progressLine(res.Seq, c.nPoints, c.lastProgress.Sub(c.started)), res.Entry.Index, c.sum.Entries, c.sum.Explored, c.sum.Deduped, c.sum.Failed)
	}
	if res.Err != nil && !c.o.KeepGoing {
		return &PointError{Result: res, Failed: c.sum.Failed}
	}
	return nil
}

// progressLine says how far a run is, in the style of the other commands'
// progress: "point 12 of 264 (4.5%), 3.1 points/s, ETA 1m21s" (no rate
// before the first point, no percentage while the total is unknown).
func progressLine(done, total int, elapsed time.Duration) string {
	s := fmt.Sprintf("point %d", done)
	if total > 0 {
		s += fmt.Sprintf(" of %d (%.1f%%)", total, 100*float64(min(done, total))/float64(total))
	}
	if secs := elapsed.Seconds(); secs > 0 && done > 0 {
		rate := float64(done) / secs
		s += fmt.Sprintf(", %.1f points/s", rate)
		if left := total - done; total > 0 && left > 0 {
			s += fmt.Sprintf(", ETA %v", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	return s
}
