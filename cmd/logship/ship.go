package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/source"
)

func init() {
	register(command{name: "ship", summary: "ship a journal (or follow a live log) to a logship server", run: runShip})
}

// defaultSizeRound rounds the default image size of a journal file.
const defaultSizeRound = 1 << 20

func runShip(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ship", "JOURNAL --to ADDR --task NAME (--tls-cert F --tls-key F [--ca F] | --psk-file F | --insecure) [flags]",
		`Ships the entries of a dm-log-writes journal to the task NAME of a logship
server, over --streams parallel TCP streams, window by window: a window ends
at every FLUSH, FUA and MARK entry (and at a size cap), and the server
applies windows strictly in order, each durable before it is acked.

A journal file is shipped to its last entry. With --follow, JOURNAL is a live
log (the log device of a dm-log-writes target, or a file that grows) and is
tailed until the target is removed (its end mark) or logship is stopped
(SIGINT, SIGTERM: what was read is still sent and acked). A log device is read
with O_DIRECT. The kernel only rewrites the log's entry count after a FUA or
MARK entry: with --dm-name NAME, logship sends a mark to the target every
--tick while it logged new entries, so that they become visible, and stops with
an error when the target reports logging_disabled (its log is full).

The task is created when it does not exist: with --size, or by default for a
journal file with the highest byte it touches rounded up to 1 MiB, or with
--follow --dm-name with the size of the target's device. An existing task is
used as it is (with --size, its size must match).

On start and after any lost connection, logship asks the server where the
image stands and resends from there; it reconnects by itself, with backoff,
until no window has been acked for --retry-for. With --from-mark M the
entries up to the first mark M are not shipped (for a task whose image was
synced at that mark).

Log rotation: the kernel's log is linear and stops logging when it is full.
Give every log device of the target with --log (JOURNAL may then be left
out): ship drains each log to its end mark and goes on with the one that
'logship rotate' (or ship itself, past --rotate-at) swapped in, each log its
own journal on the server, window numbers going on. With --resync-on-gap, a
target that reports logging_disabled is repaired: a fresh log, a
differential sync of /dev/mapper/NAME, then shipping from the fresh log's
rotation mark. docs/production.md has the whole setup.

Progress goes to stderr when it is a terminal; a summary line to stdout.`)
	cf := addClientFlags(fs)
	var (
		sizeS     = fs.String("size", "", "image size when the task is created (e.g. 10GiB)")
		fromMark  = fs.String("from-mark", "", "start after the first mark with this label")
		bwS       = fs.String("bwlimit", "", "limit the data sent per second, e.g. 20MiB (or 20MiB/s)")
		follow    = fs.Bool("follow", false, "tail a live log until its end mark or until stopped")
		dmName    = fs.String("dm-name", "", "device-mapper name of the log-writes target (with --follow)")
		tick      = fs.Duration("tick", source.DefaultTick, "with --dm-name: how often to send a mark while entries are logged (0: never)")
		retryFor  = fs.Duration("retry-for", source.DefaultRetryFor, "give up after this long without an acked window (0: never retry)")
		winEnt    = fs.Int("window-entries", barrier.DefaultMaxEntries, "most entries in a window")
		winBytesS = fs.String("window-bytes", sizeDefault(barrier.DefaultMaxBytes), "most payload bytes in a window (also capped at a quarter of the server's credit)")
		direct    = fs.Bool("direct", false, "read a journal file with O_DIRECT too (a device always is)")
		jsonOut   = fs.Bool("json", false, "print the summary as a JSON object")
		verbose   = fs.BoolP("verbose", "v", false, "log what happens (sessions, positions) on stderr")
		metrics   = fs.String("metrics", "", "serve Prometheus metrics on this address (host:port), at /metrics")
	)
	pf := addProgressFlags(fs)
	ff := addFollowFlags(fs) // shipfollow.go
	lf := addLogFlags(fs)
	prof := addProfileFlags(fs)
	stopProfiles, err := parseProfiled(e, fs, args, prof)
	if err != nil {
		return err
	}
	defer stopProfiles()
	if fs.NArg() != 1 && !(ff.on() && fs.NArg() == 0) {
		return usagef("want one JOURNAL, got %d arguments", fs.NArg())
	}
	addr, client, err := cf.config()
	if err != nil {
		return err
	}
	if *dmName != "" && !*follow {
		return usagef("--dm-name goes with --follow")
	}
	if err := ff.check(*follow, *dmName, fs.Arg(0)); err != nil {
		return err
	}
	if *winEnt < 1 {
		return usagef("--window-entries %d: want at least 1", *winEnt)
	}
	winBytes, err := humanize.ParseBytes(*winBytesS)
	if err != nil || winBytes == 0 || winBytes > 1<<40 {
		return usagef("--window-bytes %q: want a size", *winBytesS)
	}
	cfg := source.Config{
		Journal:  ff.journal(fs.Arg(0)),
		Addr:     addr,
		Client:   client,
		FromMark: *fromMark,
		Follow:   *follow,
		Direct:   *direct,
		Limits:   barrier.Limits{MaxEntries: *winEnt, MaxBytes: int64(winBytes)},
		DMName:   *dmName,
		Tick:     *tick,
		RetryFor: *retryFor,
	}
	if *tick == 0 {
		cfg.Tick = -1 // status only
	} else if *tick < 10*time.Millisecond {
		return usagef("--tick %v: want 10ms or more (or 0)", *tick)
	}
	if *retryFor == 0 {
		cfg.RetryFor = -1
	}
	if *bwS != "" {
		bw, err := humanize.ParseBytes(strings.TrimSuffix(*bwS, "/s"))
		if err != nil || bw == 0 || bw > 1<<50 {
			return usagef("--bwlimit %q: want a rate in bytes per second, e.g. 20MiB", *bwS)
		}
		cfg.BytesPerSecond = int64(bw)
	}
	if *sizeS != "" {
		if cfg.Size, err = parseImageSize("size", *sizeS); err != nil {
			return err
		}
	}
	if err := pf.check(); err != nil {
		return err
	}
	if cfg.Log, err = lf.logger(e.stderr, *verbose); err != nil {
		return err
	}

	if cfg.Size == 0 {
		switch {
		case !*follow:
			if cfg.DefaultSize, err = source.ImageSize(cfg.Journal, defaultSizeRound); err != nil {
				return err
			}
		case *dmName != "":
			if cfg.DefaultSize, err = source.DeviceSize(*dmName); err != nil {
				return err
			}
		}
	}

	var sm *shipMetrics
	if *metrics != "" {
		reg := newRegistry()
		sm = newShipMetrics(reg)
		cfg.Hooks = sm.hooks()
		mctx, stopMetrics := context.WithCancel(ctx)
		wait, err := startMetrics(mctx, *metrics, reg, cfg.Log)
		if err != nil {
			stopMetrics()
			return err
		}
		defer func() {
			stopMetrics()
			wait()
		}()
	}
	if ff.on() {
		return runFollow(ctx, e, cfg, ff, fs.Arg(0), pf, *jsonOut, sm)
	}
	s, err := source.New(cfg)
	if err != nil {
		return err
	}
	if sm != nil {
		sm.setStats(s.Stats, nil)
	}
	stop := shipProgress(e, pf, s.Stats, *follow)
	st, err := s.Run(ctx)
	stop()
	stopped := err != nil && *follow && errors.Is(err, context.Canceled)
	if err != nil && !stopped {
		if st.Windows > 0 || st.Durable.NextEntry > 0 {
			printShipSummary(e.stdout, st, *jsonOut, "failed")
		}
		return err
	}
	state := "done"
	if stopped {
		state = "stopped"
	}
	printShipSummary(e.stdout, st, *jsonOut, state)
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// shipProgress draws the progress of a ship: journal bytes read of the
// journal's size (unknown when following a live log) and how far the
// server's durable position is.
func shipProgress(e *env, pf progressFlags, stats func() source.Stats, follow bool) (stop func()) {
	return pf.start(e, "ship", bytesUnit, func() (int64, int64, string) {
		st := stats()
		total := st.LogSize
		if follow {
			total = 0
		}
		extra := fmt.Sprintf("%d entries, durable to entry %d", st.Entries, st.Durable.NextEntry)
		if st.Reconnects > 0 {
			extra += fmt.Sprintf(", %d reconnects", st.Reconnects)
		}
		return st.ReadOffset, total, extra
	})
}

func printShipSummary(w io.Writer, st source.Stats, asJSON bool, state string) {
	sum := st.Summary(state)
	if asJSON {
		b, _ := json.Marshal(sum)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "ship %s: %d entries in %d windows, %s (%s on the wire) in %v: %s/s over %d streams",
		state, st.Entries, st.Windows, humanize.IBytes(uint64(st.Bytes)), humanize.IBytes(uint64(st.WireBytes)),
		st.Elapsed.Round(time.Millisecond), humanize.IBytes(uint64(sum.BytesPerSec)), st.Streams)
	if st.Skipped > 0 {
		fmt.Fprintf(w, ", %d entries skipped (--from-mark)", st.Skipped)
	}
	if st.Reconnects > 0 {
		fmt.Fprintf(w, ", %d reconnects", st.Reconnects)
	}
	fmt.Fprintf(w, "; task %s durable up to entry %d (window %d)\n", st.Task, st.Durable.NextEntry, st.Durable.NextWindow)
}
