package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/logship/logship/blocksync"
)

// Progress, one style for every long-running command (ship, replay, diff,
// sync, verify, recover; crashtest can use it too):
//
//	WHAT: DONE of TOTAL (P%), RATE/s, ETA D[, EXTRA]
//
// on stderr, never stdout. On a terminal the line is redrawn in place
// every progressEvery and erased at the end; elsewhere (--progress always
// into a file or a pipe) a plain line is printed every progressEveryPlain
// and once more at the end, so a log holds no control characters. Without
// a known total the line is WHAT: DONE, RATE/s[, EXTRA]. The code is a
// few dozen lines on top of go-humanize, which formats the sizes already:
// the progress-bar libraries draw bars with cursor movement that does not
// suit a log file or a pipe.

// progressFlags are the flags --progress and -q of a long-running command.
type progressFlags struct {
	quiet *bool
	mode  *string
}

// addProgressFlags adds --progress and -q; quietHelp says what -q
// silences (every command's -q silences the progress at least).
func addProgressFlags(fs *pflag.FlagSet, quietHelp ...string) progressFlags {
	qh := "no progress on stderr"
	if len(quietHelp) > 0 {
		qh = quietHelp[0]
	}
	return progressFlags{
		quiet: fs.BoolP("quiet", "q", false, qh),
		mode:  fs.String("progress", "auto", "progress on stderr: auto (when stderr is a terminal), always or never"),
	}
}

// check validates --progress.
func (f progressFlags) check() error {
	switch *f.mode {
	case "auto", "always", "never":
		return nil
	}
	return usagef("--progress %q: want auto, always or never", *f.mode)
}

// show says whether to draw progress.
func (f progressFlags) show(e *env) (bool, error) {
	if err := f.check(); err != nil {
		return false, err
	}
	switch {
	case *f.quiet || *f.mode == "never":
		return false, nil
	case *f.mode == "always":
		return true, nil
	}
	return isTerminal(e.stderr), nil
}

// Redraw intervals.
const (
	progressEvery      = 500 * time.Millisecond
	progressEveryPlain = 2 * time.Second
)

// unit formats an amount of progress.
type unit func(int64) string

// bytesUnit: "1.5 GiB".
func bytesUnit(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// countUnit: "1234 entries".
func countUnit(noun string) unit {
	return func(n int64) string { return fmt.Sprintf("%d %s", n, noun) }
}

// sample reports the progress now: done of total (total ≤ 0: unknown),
// and anything else worth a word ("durable to entry 12").
type sample func() (done, total int64, extra string)

// start draws progress on e.stderr when f says so, until the returned stop
// is called. It never fails: an invalid --progress is refused by show,
// which callers run with their other checks.
func (f progressFlags) start(e *env, what string, u unit, s sample) (stop func()) {
	show, err := f.show(e)
	if err != nil || !show {
		return func() {}
	}
	return startMeter(e.stderr, isTerminal(e.stderr), what, u, s)
}

// startMeter draws progress on w (redrawn in place when tty) until stop.
func startMeter(w io.Writer, tty bool, what string, u unit, s sample) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	every := progressEveryPlain
	if tty {
		every = progressEvery
	}
	line := func(now time.Time) string {
		d, t, extra := s()
		return progressLine(what, d, t, u, now.Sub(start), extra)
	}
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprint(w, "\r\033[K")
				} else {
					fmt.Fprintln(w, line(time.Now()))
				}
				return
			case now := <-tick.C:
				if tty {
					fmt.Fprint(w, "\r\033[K"+line(now))
				} else {
					fmt.Fprintln(w, line(now))
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// progressLine formats one progress line.
func progressLine(what string, done, total int64, u unit, elapsed time.Duration, extra string) string {
	s := what + ": " + u(done)
	if total > 0 {
		s += fmt.Sprintf(" of %s (%.1f%%)", u(total), 100*float64(min(done, total))/float64(total))
	}
	if secs := elapsed.Seconds(); secs > 0 && done > 0 {
		rate := float64(done) / secs
		s += ", " + u(int64(rate)) + "/s"
		if left := total - done; total > 0 && left > 0 {
			s += fmt.Sprintf(", ETA %v", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	if extra != "" {
		s += ", " + extra
	}
	return s
}

// startProgress draws the progress of a block command (sync, verify,
// recover): bytes scanned of the total, and the bytes moved.
func (f progressFlags) startBlocks(e *env, what, moved string, p *blocksync.Progress) (stop func()) {
	return f.start(e, what, bytesUnit, func() (int64, int64, string) {
		return p.Scanned(), p.Total(), bytesUnit(p.Moved()) + " " + moved
	})
}
