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

// progressFlags are the progress flags of sync, verify and recover.
type progressFlags struct {
	quiet *bool
	mode  *string
}

func addProgressFlags(fs *pflag.FlagSet) progressFlags {
	return progressFlags{
		quiet: fs.BoolP("quiet", "q", false, "no progress line"),
		mode:  fs.String("progress", "auto", "progress on stderr: auto (when stdout and stderr are terminals), always or never"),
	}
}

// show says whether to draw the progress line.
func (f progressFlags) show(e *env) (bool, error) {
	switch *f.mode {
	case "auto":
		return !*f.quiet && isTerminal(e.stdout) && isTerminal(e.stderr), nil
	case "always":
		return !*f.quiet, nil
	case "never":
		return false, nil
	}
	return false, usagef("--progress %q: want auto, always or never", *f.mode)
}

// progressEvery is how often the progress line is redrawn.
const progressEvery = 500 * time.Millisecond

// startProgress draws, on w, a line with the bytes scanned of the total,
// the rate, the time left and the bytes moved (sent or received), every
// progressEvery, until the returned stop is called; stop erases it.
func startProgress(w io.Writer, what, moved string, p *blocksync.Progress) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case now := <-t.C:
				fmt.Fprint(w, "\r\033[K"+progressLine(what, moved, p.Scanned(), p.Total(), p.Moved(), now.Sub(start)))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// progressLine formats one progress line.
func progressLine(what, moved string, scanned, total, movedBytes int64, elapsed time.Duration) string {
	s := fmt.Sprintf("%s %s of %s", what, humanize.IBytes(uint64(scanned)), humanize.IBytes(uint64(total)))
	if total > 0 {
		s += fmt.Sprintf(" (%.1f%%)", 100*float64(scanned)/float64(total))
	}
	if secs := elapsed.Seconds(); secs > 0 && scanned > 0 {
		rate := float64(scanned) / secs
		s += fmt.Sprintf(", %s/s", humanize.IBytes(uint64(rate)))
		if left := total - scanned; left > 0 {
			s += fmt.Sprintf(", ETA %v", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	return s + fmt.Sprintf(", %s %s", humanize.IBytes(uint64(movedBytes)), moved)
}
