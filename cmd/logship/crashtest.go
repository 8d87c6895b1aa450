package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/bench/crashtest"
)

func init() {
	register(command{name: "crashtest", summary: "check the state at every crash point of a journal, in one pass", run: runCrashtest})
}

type pointJSON struct {
	Type      string  `json:"type"` // "point" or "explored"
	Point     int     `json:"point"`
	Explore   int     `json:"explore,omitempty"`
	Entry     int64   `json:"entry"`
	Kind      string  `json:"kind"`
	Mark      string  `json:"mark,omitempty"`
	First     int64   `json:"window_first,omitempty"`
	Last      int64   `json:"window_last,omitempty"`
	Writes    int     `json:"window_writes,omitempty"`
	Keep      []int64 `json:"keep,omitempty"`
	Result    string  `json:"result"` // "ok" or "FAIL"
	Error     string  `json:"error,omitempty"`
	Files     int     `json:"manifest_files,omitempty"`
	PrepareMS float64 `json:"prepare_ms"`
	CheckMS   float64 `json:"check_ms"`
	Output    string  `json:"output,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runCrashtest(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "crashtest", "JOURNAL --check 'CMD' [flags]",
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

The cost is one pass over the journal plus the checks. --strategy
from-zero instead replays from entry 0 for every point, as xfstests'
replay-log loops do: the baseline to measure against.`)
	var (
		check     = fs.String("check", "", "command run on each state; {} is the device or image (see --device)")
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
		verbose   = fs.BoolP("verbose", "v", false, "print the check's output for passing states too")
		quiet     = fs.BoolP("quiet", "q", false, "no progress on stderr")
		fault     = fs.String("fault", "", "corrupt the replay on purpose: drop:ENTRY or delay:ENTRY:UNTIL (tests)")
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
		KeepGoing: *keepGoing, WorkDir: *workdir, Parallel: *par,
	}
	var err error
	if o.Points, err = crashtest.ParsePoints(*points); err != nil {
		return usagef("--%v", err)
	}
	if *check != "" {
		o.Check = crashtest.Command{Line: *check, Timeout: *timeout}
	}
	if *sizeS != "" {
		n, err := humanize.ParseBytes(*sizeS)
		if err != nil || n == 0 {
			return usagef("--size %q: want a size such as 256MiB", *sizeS)
		}
		o.Size = int64(n)
	}
	switch *device {
	case "loop":
		o.Device = crashtest.DeviceLoop
	case "file":
		o.Device = crashtest.DeviceFile
	default:
		return usagef("--device %q: want loop or file", *device)
	}
	switch *strategy {
	case "one-pass":
		o.Strategy = crashtest.OnePass
	case "from-zero":
		o.Strategy = crashtest.FromZero
	default:
		return usagef("--strategy %q: want one-pass or from-zero", *strategy)
	}
	switch *refresh {
	case "changed":
		o.Refresh = crashtest.RefreshChanged
	case "full":
		o.Refresh = crashtest.RefreshFull
	default:
		return usagef("--refresh %q: want changed or full", *refresh)
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
	var failed []crashtest.Result
	o.Report = func(r crashtest.Result) {
		if r.Err != nil {
			failed = append(failed, r)
		}
		if *asJSON {
			writeJSON(out, toPointJSON(r, *verbose))
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
	if *asJSON {
		writeJSON(out, map[string]any{"type": "summary", "journal": fs.Arg(0), "entries": sum.Entries,
			"points": sum.Points, "explored": sum.Explored, "manifests": sum.Manifests, "failed": sum.Failed,
			"total_ms": ms(sum.Total), "prepare_ms": ms(sum.Prepare), "check_ms": ms(sum.Check),
			"copied_bytes": sum.Copied, "compared_bytes": sum.Compared, "image_size": sum.Size,
			"strategy": *strategy})
	}
	out.Flush()
	if !*quiet || pe != nil {
		fmt.Fprintf(e.stderr, "crashtest: %d points, %d explored states, %d manifests checked in %v (materializing %v, checks %v, %s copied, %s compared); %d failed\n",
			sum.Points, sum.Explored, sum.Manifests, sum.Total.Round(time.Millisecond), sum.Prepare.Round(time.Millisecond),
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

func pointLabel(r crashtest.Result) string {
	if r.Explore > 0 {
		return strconv.Itoa(r.Seq) + "." + strconv.Itoa(r.Explore)
	}
	return strconv.Itoa(r.Seq)
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
	fmt.Fprintf(w, "%7s %9d  %-24s %-6s %9s %9s  %s\n", pointLabel(r), r.Entry.Index, kind, result,
		r.Prepare.Round(10*time.Microsecond), r.Check.Round(10*time.Microsecond), note)
}

func toPointJSON(r crashtest.Result, withOutput bool) pointJSON {
	j := pointJSON{Type: "point", Point: r.Seq, Entry: r.Entry.Index, Kind: r.Entry.Flags.String(),
		Result: "ok", Files: r.Files, PrepareMS: ms(r.Prepare), CheckMS: ms(r.Check)}
	if r.Entry.IsMark() {
		j.Mark = r.Entry.Label
	}
	if r.Explore > 0 {
		j.Type, j.Explore, j.First, j.Last, j.Writes, j.Keep = "explored", r.Explore, r.First, r.Last, r.Writes, r.Keep
	}
	if r.Err != nil {
		j.Result, j.Error, j.Output = "FAIL", r.Err.Error(), r.Output
	} else if withOutput {
		j.Output = r.Output
	}
	return j
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "        | " + strings.ReplaceAll(s, "\n", "\n        | ") + "\n"
}
