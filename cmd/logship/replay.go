package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replay"
)

func init() {
	register(command{name: "replay", summary: "apply a journal to a device or image file (replay-log parity)", run: runReplay})
}

// checkPoints decides where --check runs the --fsck command.
type checkPoints struct {
	flush, fua, mark, discard bool
	every                     int64 // every N entries replayed
}

func parseCheck(s string) (checkPoints, error) {
	var c checkPoints
	for _, p := range strings.Split(s, ",") {
		switch p {
		case "flush":
			c.flush = true
		case "fua":
			c.fua = true
		case "mark":
			c.mark = true
		case "discard":
			c.discard = true
		default:
			n, err := strconv.ParseInt(p, 0, 64)
			if err != nil || n <= 0 {
				return c, usagef("--check %q: want flush, fua, mark, discard or a positive entry count", p)
			}
			c.every = n
		}
	}
	return c, nil
}

func (c checkPoints) hit(e journal.Entry, replayed int64) bool {
	return (c.flush && e.Flags&journal.FlagFlush != 0) ||
		(c.fua && e.Flags&journal.FlagFUA != 0) ||
		(c.mark && e.IsMark()) ||
		(c.discard && e.IsDiscard()) ||
		(c.every > 0 && replayed%c.every == 0)
}

func runReplay(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "replay", "JOURNAL TARGET [flags]",
		`Applies the entries of a dm-log-writes journal to TARGET, a block device or
an image file, with the meaning of xfstests' replay-log options. Entries are
applied window by window (a window ends at every FLUSH, FUA and MARK); inside
a window they are written in parallel, overlapping writes resolved in journal
order. Discards become BLKDISCARD/BLKZEROOUT on devices and punched holes in
files, zeros as the last resort; no range is ever skipped.

Before writing anything, replay refuses a TARGET smaller than the highest
byte the journal touches. TARGET is synced before each check and at the end;
without --direct, the writeback of what is written starts as the replay goes
(sync_file_range), so that the disk works while later windows are copied.

--check flush|fua|mark|discard|N (comma-separated) with --fsck 'CMD' runs
CMD through sh after each such entry; {} in CMD stands for TARGET. A failing
CMD stops the replay with "fsck errored out on entry N" and exit status 1.
An entry that stops the replay (--limit, --end-mark, --next-*) gets a check
only if it is a check point, as with replay-log.

Where replay-log's answer is a trap, replay refuses (exit 3, TARGET
untouched): an --end-mark that is not in the journal after the start (replay-
log replays everything), a start past the end, a TARGET too small. With an
--end-mark, --next-flush and --next-fua count for nothing (replay-log's rule).
'logship replay-log' is replay-log answer for answer: see docs/xfstests.md.`)
	var sf stopFlags
	sf.register(fs, true)
	var (
		noDiscard = fs.Bool("no-discard", false, "skip DISCARD entries")
		check     = fs.String("check", "", "run --fsck at these points: flush, fua, mark, discard or every N entries")
		fsck      = fs.String("fsck", "", "command run at each --check point; {} is TARGET")
		par       = fs.Int("parallel", 0, "concurrent writes inside a window (0: 2 through the page cache, 8 with --direct)")
		direct    = fs.Bool("direct", false, "write TARGET with O_DIRECT")
	)
	pf := addProgressFlags(fs, "print nothing on success (no progress either)")
	quiet := pf.quiet
	prof := addProfileFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	stopProfiles, err := startProfiles(e, prof)
	if err != nil {
		return err
	}
	defer stopProfiles()
	if fs.NArg() != 2 {
		return usagef("want JOURNAL and TARGET, got %d arguments", fs.NArg())
	}
	if err := pf.check(); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if *par < 0 || *par > 1024 {
		return usagef("--parallel %d: want 1 to 1024 (0: the default)", *par)
	}
	if *par == 0 {
		// Through the page cache the kernel takes one write to a file or
		// device at a time (the inode lock): two writers overlap one's
		// read with the other's write, more only wait for the lock. With
		// O_DIRECT each write goes to the disk, and eight keep its queue
		// busy.
		*par = 2
		if *direct {
			*par = 8
		}
	}
	if (*check == "") != (*fsck == "") {
		return usagef("--check and --fsck go together")
	}
	var cp checkPoints
	if *check != "" {
		var err error
		if cp, err = parseCheck(*check); err != nil {
			return err
		}
	}
	j, err := openJournal(fs.Arg(0))
	if err != nil {
		return err
	}
	defer j.Close()
	target := fs.Arg(1)

	// First pass, headers only: find the extent the replay will touch, and
	// refuse an end mark the walk never meets before touching the target.
	if err := sf.position(j.r); err != nil {
		return j.wrap(err)
	}
	start := j.r.Index()
	need, hit, err := measure(j.r, sf.stop)
	if err != nil {
		return j.wrap(err)
	}
	if sf.stop.EndMark != "" && !hit {
		return j.wrap(fmt.Errorf("%w: --end-mark %q: no such mark after entry %d (replay-log would replay everything)",
			journal.ErrNoMark, sf.stop.EndMark, start))
	}
	dev, err := devio.Open(target, devio.Options{Write: true, Direct: *direct})
	if err != nil {
		return err
	}
	defer dev.Close()
	if dev.Size() < need {
		return fmt.Errorf("%s: %w: %s holds %d bytes, the journal writes up to byte %d",
			target, replay.ErrTargetTooSmall, dev.Kind(), dev.Size(), need)
	}
	if err := j.r.SeekEntry(start); err != nil {
		return j.wrap(err)
	}

	// The check runs after each check point, the entry that stops the
	// replay included when it is one, and nowhere else: the engine also
	// reports the stop entry, which is no check point by itself.
	var cut func(journal.Entry) bool
	if *fsck != "" {
		cut = func(en journal.Entry) bool { return cp.hit(en, en.Index-start+1) }
	}
	t0 := time.Now()
	// Writeback: the disk writes the first windows while the later ones
	// are copied, and the final sync finds little left to do.
	p := replay.New(j.r, dev, replay.Options{Parallel: *par, NoDiscard: *noDiscard, Writeback: true})
	j.read.Store(0) // the first pass read the headers
	stopProgress := pf.start(e, "replay", bytesUnit, func() (int64, int64, string) {
		return j.read.Load(), j.size, "of the journal read"
	})
	st, err := p.Run(ctx, sf.stop, cut, func(en journal.Entry) error {
		if *fsck == "" || !cp.hit(en, en.Index-start+1) {
			return nil
		}
		if err := dev.Sync(); err != nil {
			return err
		}
		return runCheck(ctx, e, *fsck, target, en)
	})
	stopProgress()
	if err != nil {
		return j.wrap(err)
	}
	if err := dev.Sync(); err != nil {
		return err
	}
	el := time.Since(t0)
	if !*quiet {
		fmt.Fprintf(e.stderr, "replayed entries %d..%d (%d windows) onto %s: %s written, %s discarded in %v (%s/s)\n",
			start, start+st.Entries-1, st.Windows, target, humanize.IBytes(uint64(st.Written)),
			humanize.IBytes(uint64(st.Discarded)), el.Round(time.Millisecond), humanize.IBytes(uint64(float64(st.Written)/el.Seconds())))
	}
	return nil
}

// measure walks the headers of r from its current position to the entry
// that meets stop (or the end) and returns the highest device byte any of
// them touches and whether stop was met, without reading payloads.
func measure(r *journal.Reader, stop journal.Stop) (end int64, hit bool, err error) {
	for walked := int64(1); ; walked++ {
		e, err := r.NextHeader()
		if err == io.EOF {
			return end, false, nil
		}
		if err != nil {
			return end, false, err
		}
		if !e.IsMark() && e.End() > end {
			end = e.End()
		}
		if stop.Hit(e, walked) {
			return end, true, nil
		}
	}
}

// runCheck runs the user's check command on target after entry en.
func runCheck(ctx context.Context, e *env, cmdline, target string, en journal.Entry) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(cmdline, "{}", target))
	cmd.Stdout, cmd.Stderr = e.stderr, e.stderr
	cmd.Env = append(os.Environ(), fmt.Sprintf("LOGSHIP_ENTRY=%d", en.Index))
	if err := cmd.Run(); err != nil {
		return checkFailed{fmt.Sprintf("fsck errored out on entry %d (%s): %v", en.Index, en.Flags, err)}
	}
	return nil
}
