package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/bench/crashtest"
)

func init() {
	register(command{name: "crashtest", summary: "check the state at every crash point of a journal, in one pass", run: runCrashtest})
}

// pointJSON is a line of the --json report.
type pointJSON = crashtest.Record

func runCrashtest(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "merge" {
		return runCrashtestMerge(ctx, e, args[1:])
	}
	fs := newFlags(e, "crashtest", "JOURNAL --check 'CMD'|ext4|xfs|btrfs [flags]\n       logship crashtest merge [--json] [--junit FILE] SHARD.json...",
		`Replays JOURNAL once and, at every crash point, materializes the state the
device had there and runs CMD on it through sh; {} in CMD is a loop device
over a copy of the state (--device loop) or the copy's image file (--device
file). CMD may write (mount, fsck -y): each check gets its own copy, and
its writes never reach the next point. A point fails when CMD exits non-zero.

Crash points (--points): every FLUSH, FUA and MARK entry (default), or
every:N entries; --from-mark M checks from the first mark M on, as xfstests
starts at its "mkfs" mark (M is the first point when --points has mark, and
every:N counts from it). Marks named in --manifest are always points.

--device file needs no root; loop devices and --manifest do.

--manifest FILE lists files per mark, one "MARK PATH MD5" per line (lines
may start with MANIFEST, as the kernel VM scenarios print them). At each
such mark the state is mounted read-only through a loop device (which lets
ext4 replay its own journal into the copy) and every file's md5 compared;
a difference fails the point. --manifest needs root and mount(8).

--explore K also checks K random subsets of the window that follows each
point, applied on top of the point's state: states the source could have
crashed into between two barriers (CrashMonkey's idea). They are reported
as sub-points (POINT.K).

The report, one line per state, goes to stdout (--json: one object per
line, then a summary object); progress goes to stderr. Exit status 1 at the
first failing state, after printing its entry index and CMD's output;
--keep-going checks them all and exits 1 at the end if any failed.

Presets: --check ext4, xfs or btrfs replays the file system's own log
into the copy first (as mounting it after the crash would), then runs its
read-only check; a plain e2fsck -fn gives false failures on states whose
log is not replayed yet:
  ext4   e2fsck -p -E journal_only DEV (exit 0 or 1 passes); e2fsck -fn DEV
  xfs    mount -t xfs -o nouuid DEV DIR && umount DIR; xfs_repair -n DEV
  btrfs  mount -t btrfs DEV DIR && umount DIR; btrfs check --readonly DEV
A state fails when the log replay or mount fails or the check exits
non-zero. They need --device loop (and root); the tools come in the Debian
packages e2fsprogs, xfsprogs and btrfs-progs.

--jobs N runs N checks at the same time while the replay runs ahead (the
report stays in point order). Each job checks its own copy of its state:
scratch space is at most N+1 sparse images of the device's size in
--workdir (N+1 loop devices with --device loop), holding data only where
the journal wrote; memory is a few MiB of buffers plus at most 4N results
waiting to be reported in order (64 KiB of output each at most).

A point whose state is byte for byte the state of the point before it
(nothing written, discarded or changed since, or only bytes rewritten with
what they held; every write is compared with the image) is not checked
again: it takes that point's verdict, marked "same as point N" in the
table and "same_as" in --json. Explored states and points with manifest
lines are always checked. This assumes CMD depends on the state only; a
CMD that mentions $LOGSHIP_ turns it off, as does --no-dedupe.

--shard K/N (1 <= K <= N) checks only shard K's share of the states, so
that N CI jobs check every state exactly once (counts differ by at most
one); every shard replays the whole journal. Without the flag,
CI_NODE_INDEX/CI_NODE_TOTAL (GitLab's parallel:, 1-based) are used when
set. 'logship crashtest merge A.json B.json ...' combines the shards'
--json reports into the run's: exit 1 if a state failed, 3 if the shards
do not cover every state exactly once (use --keep-going in shards).

--junit FILE writes a JUnit XML report, a test case per state.

The cost is one pass over the journal plus the checks. --strategy
from-zero instead replays from entry 0 for every point, as xfstests'
replay-log loops do: the baseline to measure against (one job, every
point checked, no shards).`)
	var (
		check     = fs.String("check", "", "command run on each state, {} the device or image (see --device); or a preset: ext4, xfs, btrfs")
		points    = fs.String("points", "flush,fua,mark", "crash points: flush, fua, mark (comma-separated) or every:N")
		fromMark  = fs.String("from-mark", "", "check from the first mark labelled `LABEL` on")
		base      = fs.String("base", "", "`IMG` the journal's device started from (default: zeros)")
		sizeS     = fs.String("size", "", "image size, e.g. 256MiB (default: the highest byte the journal touches, rounded up to 1 MiB, or the base's size)")
		device    = fs.String("device", "loop", "what {} is: loop (a loop device over the state) or file (its image file)")
		manifest  = fs.String("manifest", "", "`FILE` of \"MARK PATH MD5\" lines to compare at marks")
		exact     = fs.Bool("manifest-exact", false, "also fail regular files that a mark's manifest does not list")
		explore   = fs.Int("explore", 0, "also check `K` random subsets of the window after each point")
		seed      = fs.Uint64("seed", 1, "seed of --explore's choices")
		keepGoing = fs.Bool("keep-going", false, "check every state; exit 1 at the end if any failed")
		asJSON    = fs.Bool("json", false, "one JSON object per state, then a summary")
		workdir   = fs.String("workdir", "", "`DIR` for the two sparse scratch images (default $TMPDIR)")
		timeout   = fs.Duration("timeout", 10*time.Minute, "time limit of one check (0: none)")
		strategy  = fs.String("strategy", "one-pass", "one-pass, or from-zero (replay from entry 0 for every point: the replay-log baseline)")
		refresh   = fs.String("refresh", "changed", "how the check copy is refreshed: changed (what differs) or full (every extent)")
		par       = fs.Int("parallel", 8, "concurrent writes inside a window")
		jobs      = fs.IntP("jobs", "j", runtime.NumCPU(), "checks run at the same time, each on its own copy (scratch: jobs+1 sparse images)")
		noDedupe  = fs.Bool("no-dedupe", false, "check a point even when its state is the same as the point before")
		shardS    = fs.String("shard", "", "check only shard `K/N` of the states (default: $CI_NODE_INDEX/$CI_NODE_TOTAL when set)")
		junit     = fs.String("junit", "", "write a JUnit XML report, a test case per state, to `FILE`")
		verbose   = fs.BoolP("verbose", "v", false, "print the check's output for passing states too")
		quiet     = fs.BoolP("quiet", "q", false, "no progress on stderr")
		fault     = fs.String("fault", "", "corrupt the replay on purpose: drop:ENTRY, delay:ENTRY:UNTIL or delaywindow:ENTRY:UNTIL (tests)")
	)
	fs.MarkHidden("fault")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one JOURNAL, got %d arguments", fs.NArg())
	}
	o := crashtest.Options{
		FromMark: *fromMark, Base: *base, ManifestExact: *exact, Explore: *explore, Seed: *seed,
		KeepGoing: *keepGoing, WorkDir: *workdir, Parallel: *par, Jobs: *jobs,
		Dedupe: !*noDedupe && !strings.Contains(*check, "LOGSHIP_"),
	}
	var err error
	if o.Points, err = crashtest.ParsePoints(*points); err != nil {
		return usagef("--%v", err)
	}
	if *jobs < 1 {
		return usagef("--jobs %d: want 1 or more", *jobs)
	}
	if o.Shard, err = crashtestShard(fs.Changed("shard"), *shardS); err != nil {
		return err
	}
	switch {
	case slices.Contains(crashtest.Presets, *check):
		if *device != "loop" {
			return usagef("--check %s needs --device loop", *check)
		}
		if o.Check, err = crashtest.Preset(*check, *timeout); err != nil {
			return err
		}
	case *check != "":
		o.Check = crashtest.Command{Line: *check, Timeout: *timeout}
	}
	if *sizeS != "" {
		n, err := humanize.ParseBytes(*sizeS)
		if err != nil || n == 0 {
			return usagef("--size %q: want a size such as 256MiB", *sizeS)
		}
		o.Size = int64(n)
	}
	if o.Device, err = choose("device", *device, []named[crashtest.Device]{{"loop", crashtest.DeviceLoop}, {"file", crashtest.DeviceFile}}); err != nil {
		return err
	}
	if o.Strategy, err = choose("strategy", *strategy, []named[crashtest.Strategy]{{"one-pass", crashtest.OnePass}, {"from-zero", crashtest.FromZero}}); err != nil {
		return err
	}
	if o.Refresh, err = choose("refresh", *refresh, []named[crashtest.Refresh]{{"changed", crashtest.RefreshChanged}, {"full", crashtest.RefreshFull}}); err != nil {
		return err
	}
	if *explore < 0 {
		return usagef("--explore %d: want 0 or more", *explore)
	}
	if *fault != "" {
		if o.Fault, err = crashtest.ParseFault(*fault); err != nil {
			return usagef("--%v", err)
		}
	}
	if *manifest != "" {
		f, err := os.Open(*manifest)
		if err != nil {
			return err
		}
		o.Manifest, err = crashtest.ParseManifest(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *manifest, err)
		}
		if len(o.Manifest) == 0 {
			return usagef("--manifest %s lists no files", *manifest)
		}
	}
	if o.Check == nil && o.Manifest == nil {
		return usagef("want --check 'CMD', --manifest FILE or both")
	}
	if o.Check == nil && o.Explore > 0 {
		return usagef("--explore needs --check")
	}
	if !*quiet {
		o.Progress = e.stderr
	}

	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	if !*asJSON {
		fmt.Fprintf(out, "%7s %9s  %-24s %-6s %9s %9s  %s\n", "POINT", "ENTRY", "KIND", "RESULT", "PREPARE", "CHECK", "NOTE")
	}
	var records []crashtest.Record
	o.Report = func(r crashtest.Result) {
		rec := crashtest.NewRecord(r, *verbose)
		if *junit != "" {
			records = append(records, rec)
		}
		if *asJSON {
			writeJSON(out, rec)
		} else {
			printPoint(out, r)
			if *verbose && r.Err == nil && r.Output != "" {
				fmt.Fprint(out, indent(r.Output))
			}
		}
		if r.Err != nil {
			// The failing state's output goes to stderr at once, so that
			// it comes before the exit with --keep-going too.
			out.Flush()
			fmt.Fprintf(e.stderr, "crashtest: %s failed: %v\n", r.Point, r.Err)
			if r.SameAs != 0 {
				fmt.Fprintf(e.stderr, "(not checked again: the same state as point %d)\n", r.SameAs)
			}
			if r.Output != "" {
				fmt.Fprintf(e.stderr, "--- output ---\n%s", r.Output)
				if !strings.HasSuffix(r.Output, "\n") {
					fmt.Fprintln(e.stderr)
				}
				fmt.Fprintln(e.stderr, "---")
			}
		}
	}

	sum, err := crashtest.Crashtest(ctx, fs.Arg(0), o)
	var pe *crashtest.PointError
	if err != nil && !errors.As(err, &pe) {
		if errors.Is(err, crashtest.ErrBadOptions) {
			return usagef("%v", err)
		}
		return err
	}
	run := fmt.Sprintf("points=%s from-mark=%s explore=%d seed=%d dedupe=%v check=%s", o.Points, o.FromMark, o.Explore, o.Seed, o.Dedupe, *check)
	sr := crashtest.NewSummaryRecord(sum, fs.Arg(0), *strategy, run, o.Shard)
	if *asJSON {
		writeJSON(out, sr)
	}
	out.Flush()
	if *junit != "" {
		if err := writeJUnitFile(*junit, filepath.Base(fs.Arg(0)), records, sr.TotalMS); err != nil {
			return err
		}
	}
	if !*quiet || pe != nil {
		shard := ""
		if !o.Shard.IsZero() {
			shard = fmt.Sprintf("shard %v: ", o.Shard)
		}
		fmt.Fprintf(e.stderr, "crashtest: %s%d points (%d the same as the point before, not checked again), %d explored states, %d manifests checked in %v with %d jobs (materializing %v, checks %v, %s copied, %s compared); %d failed\n",
			shard, sum.Points, sum.Deduped, sum.Explored, sum.Manifests, sum.Total.Round(time.Millisecond), sum.Jobs, sum.Prepare.Round(time.Millisecond),
			sum.Check.Round(time.Millisecond), humanize.IBytes(uint64(sum.Copied)), humanize.IBytes(uint64(sum.Compared)), sum.Failed)
	}
	if pe != nil {
		r := pe.Result
		msg := fmt.Sprintf("entry %d (%s) failed", r.Entry.Index, r.Kind())
		if r.Explore > 0 {
			msg = fmt.Sprintf("entry %d (%s), explored state %d (entries %v of %d-%d applied) failed", r.Entry.Index, r.Kind(), r.Explore, r.Keep, r.First, r.Last)
		}
		if pe.Failed > 1 {
			msg += fmt.Sprintf(", first of %d failing states", pe.Failed)
		}
		return checkFailed{msg + ": " + r.Err.Error()}
	}
	return nil
}

// crashtestShard reads --shard, or GitLab's CI_NODE_INDEX (1-based) and
// CI_NODE_TOTAL when the flag is absent.
func crashtestShard(flagSet bool, v string) (crashtest.Shard, error) {
	src := "--shard"
	if !flagSet {
		idx, total := os.Getenv("CI_NODE_INDEX"), os.Getenv("CI_NODE_TOTAL")
		if idx == "" || total == "" {
			return crashtest.Shard{}, nil
		}
		v, src = idx+"/"+total, "CI_NODE_INDEX/CI_NODE_TOTAL"
	}
	s, err := crashtest.ParseShard(v)
	if err != nil {
		return s, usagef("%s: %v", src, err)
	}
	return s, nil
}

func writeJUnitFile(path, suite string, recs []crashtest.Record, totalMS float64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := crashtest.WriteJUnit(f, suite, recs, totalMS); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

func printPoint(w *bufio.Writer, r crashtest.Result) {
	result, note := "ok", ""
	if r.Err != nil {
		result, note = "FAIL", r.Err.Error()
	}
	kind := r.Kind()
	if r.Explore > 0 {
		kind = fmt.Sprintf("+%d/%d of %d-%d", len(r.Keep), r.Writes, r.First, r.Last)
	}
	if r.Files > 0 && r.Err == nil {
		note = fmt.Sprintf("manifest: %d files", r.Files)
	}
	if r.SameAs != 0 {
		note = strings.TrimSpace(fmt.Sprintf("same as point %d %s", r.SameAs, note))
	}
	fmt.Fprintf(w, "%7s %9d  %-24s %-6s %9s %9s  %s\n", crashtest.NewRecord(r, false).Label(), r.Entry.Index, kind, result,
		r.Prepare.Round(10*time.Microsecond), r.Check.Round(10*time.Microsecond), note)
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "        | " + strings.ReplaceAll(s, "\n", "\n        | ") + "\n"
}
