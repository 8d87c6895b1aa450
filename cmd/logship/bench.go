package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/bench/campaign"
	"github.com/logship/logship/bench/netbench"
)

func init() {
	register(command{name: "bench", summary: "benchmark stream counts over link models; 'bench faults' runs a fault campaign", run: runBench})
}

func runBench(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "faults" {
		return runFaults(ctx, e, args[1:])
	}
	fs := newFlags(e, "bench", "(--journal J | --workload seq|rand4k|fs --size SIZE) [--streams 1,2,4,8] [--link MODEL]... [flags]\n       logship bench faults --runs N --seed S [flags]",
		`Measures shipping: for every link model, variant and stream count it
starts a real 'logship serve' (in a scratch directory) and a real 'logship
ship' of the journal, and reports throughput (payload bytes from the start
of the ship to the ack of its last window), windows per second, apply
latency (from a window's last WINDOW_END leaving the source to the ACK
covering it reaching the source), CPU time and peak RSS of each process,
and bytes on the wire.

Link models (--link, repeatable):
  direct     the ship dials the server itself (no proxy, no latency figures)
  loopback   through the bench's proxy, unshaped
  wan:rtt=40ms,flow=50Mbit,link=1Gbit,loss=0
             through the proxy: every TCP connection is capped at flow on its
             own (per direction), all share link, and bytes are delayed by
             rtt/2 each way; loss lowers the per-flow cap to what one TCP
             flow gets (Padhye et al., with timeouts and delayed ACKs)
  vm:rtt=40ms,loss=0.1%,rate=100Mbit
             the kernel's own TCP, in the Debian kernel VM (qemu, TCG): serve
             and ship in two network namespaces joined by a veth pair, netem
             delaying by rtt/2 and dropping with probability loss each way,
             tbf holding each way to rate; all of the link's runs in one boot
             (root, the packages of scripts/vm-deps.sh, a journal of at most
             64 MiB, a static logship binary)
  netns:rtt=40ms,loss=0.1%,rate=100Mbit
             the same on this host's kernel (root, iproute2, sch_netem)

Workloads (--workload, with --size): seq (1 MiB sequential writes, a FLUSH
every 16), rand4k (4 KiB random writes, a FLUSH every 64), fs (the entries
of a kernel-captured ext4 journal, --shape, repeated up to --size). Their
payloads are --compressible zeros per 4 KiB block (seq, rand4k).

Variants (--compare): zstd (ship --compress zstd), nocoalesce (every entry
its own window: nothing to coalesce or to write in parallel in a window),
sync (serve --sync-per-window); each is run besides the default.

Output: a table on stdout, or --json (one object per run), or --gobench
(Go benchmark lines for benchstat); --plot FILE.svg draws throughput against
streams, one line per link model.`)
	var (
		journalF  = fs.String("journal", "", "journal file to ship")
		workload  = fs.String("workload", "", "synthetic workload: seq, rand4k or fs")
		sizeS     = fs.String("size", sizeDefault(1<<30), "payload bytes of the synthetic workload")
		deviceS   = fs.String("device", "", "device size of seq and rand4k (default: --size)")
		shapeF    = fs.String("shape", defaultShape(), "kernel journal the fs workload repeats (.zst is decompressed)")
		compr     = fs.Float64("compressible", 0.5, "fraction of zeros in each 4 KiB block of seq and rand4k payloads")
		seed      = fs.Uint64("seed", 1, "seed of the synthetic workload")
		streamsS  = fs.String("streams", "1,2,4,8", "stream counts, comma-separated")
		links     = fs.StringArray("link", nil, "link model (repeatable; default loopback)")
		compare   = fs.String("compare", "", "variants to run besides the default: zstd, nocoalesce, sync (comma-separated)")
		repeat    = fs.Int("repeat", 1, "runs per combination; the median throughput is reported (with --gobench, every run)")
		jsonOut   = fs.Bool("json", false, "one JSON object per run on stdout")
		gobench   = fs.Bool("gobench", false, "Go benchmark lines on stdout (for benchstat)")
		plotF     = fs.String("plot", "", "write a plot of throughput against streams to this file (.svg, .png or .pdf)")
		title     = fs.String("title", "", "title of the plot")
		dir       = fs.String("dir", "", "scratch directory for the journal and the servers (default: the system's temp dir)")
		serveArgs = fs.String("serve-args", "", "extra flags for every logship serve, space-separated")
		shipArgs  = fs.String("ship-args", "", "extra flags for every logship ship, space-separated")
		quiet     = fs.BoolP("quiet", "q", false, "no progress on stderr")
		from      = fs.StringArray("from", nil, "instead of running, read the runs from this --json output (repeatable), to print or --plot them again")
		verify    = fs.Bool("verify", false, "after each run, compare the server's image with the journal replayed")
		taskSize  = fs.String("task-size", "", "image size of the task with --journal (default: what ship picks)")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if len(*from) > 0 {
		if *journalF != "" || *workload != "" {
			return usagef("--from replots and reprints saved runs: no --journal or --workload with it")
		}
	} else if (*journalF == "") == (*workload == "") {
		return usagef("give one of --journal and --workload")
	}
	if *jsonOut && *gobench {
		return usagef("--json and --gobench exclude each other")
	}
	streams, err := parseInts(*streamsS)
	if err != nil {
		return usagef("--streams %q: %v", *streamsS, err)
	}
	var models []netbench.Link
	if len(*links) == 0 {
		*links = []string{"loopback"}
	}
	for _, s := range *links {
		l, err := netbench.ParseLink(s)
		if err != nil {
			return usagef("--link: %v", err)
		}
		models = append(models, l)
	}
	variants := []netbench.Variant{{}}
	if *compare != "" {
		for v := range strings.SplitSeq(*compare, ",") {
			vv, ok := netbench.Variants[v]
			if !ok || v == "default" {
				return usagef("--compare %q: want zstd, nocoalesce or sync", v)
			}
			variants = append(variants, vv)
		}
	}
	if *plotF != "" && !slices.Contains(netbench.PlotFormats, plotFormat(*plotF)) {
		return usagef("--plot %q: want a .svg, .png or .pdf file", *plotF)
	}
	if *repeat < 1 || *repeat > 100 {
		return usagef("--repeat %d: want 1 to 100", *repeat)
	}
	if len(*from) > 0 {
		var all []netbench.Measurement
		for _, name := range *from {
			ms, err := readMeasurements(name)
			if err != nil {
				return err
			}
			all = append(all, ms...)
		}
		table := netbench.NewTable(e.stdout)
		for _, m := range all {
			var err error
			switch {
			case *jsonOut:
				err = netbench.WriteJSON(e.stdout, m)
			case *gobench:
				err = netbench.WriteGoBench(e.stdout, m)
			default:
				err = table.Row(m)
			}
			if err != nil {
				return err
			}
		}
		return writePlot(*plotF, *title, all)
	}
	scratch, err := os.MkdirTemp(*dir, "logship-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)

	setup := netbench.Setup{Journal: *journalF, Dir: scratch, ServeArgs: strings.Fields(*serveArgs), ShipArgs: strings.Fields(*shipArgs), Verify: *verify}
	if *taskSize != "" {
		size, err := humanize.ParseBytes(*taskSize)
		if err != nil || size == 0 || size > 1<<50 || *workload != "" {
			return usagef("--task-size %q: want a size, with --journal", *taskSize)
		}
		setup.Size = int64(size)
	}
	if *workload != "" {
		size, err := humanize.ParseBytes(*sizeS)
		if err != nil || size == 0 || size > 1<<44 {
			return usagef("--size %q: want a size, e.g. 1GiB", *sizeS)
		}
		wl := netbench.Workload{Kind: *workload, Size: int64(size), Shape: *shapeF, Compressible: *compr, Seed: *seed}
		if *deviceS != "" {
			dev, err := humanize.ParseBytes(*deviceS)
			if err != nil || dev == 0 || dev > 1<<50 {
				return usagef("--device %q: want a size", *deviceS)
			}
			wl.Device = int64(dev)
		}
		if !*quiet {
			fmt.Fprintf(e.stderr, "bench: generating the %s workload (%s)\n", *workload, humanize.IBytes(size))
		}
		g, err := wl.Generate(filepath.Join(scratch, *workload+".log"))
		if err != nil {
			return err
		}
		setup.Journal, setup.Size = g.Path, g.Device
	}

	// benchstat wants every sample; the table, JSON and plot the median.
	sw := netbench.Sweep{Setup: setup, Streams: streams, Links: models, Variants: variants, Repeat: *repeat, ReportAll: *gobench}
	if !*quiet {
		sw.Progress = e.stderr
	}
	table := netbench.NewTable(e.stdout)
	var all []netbench.Measurement
	err = sw.Run(ctx, func(m netbench.Measurement) error {
		all = append(all, m)
		switch {
		case *jsonOut:
			return netbench.WriteJSON(e.stdout, m)
		case *gobench:
			return netbench.WriteGoBench(e.stdout, m)
		}
		return table.Row(m)
	})
	if err != nil {
		return err
	}
	return writePlot(*plotF, *title, all)
}

// writePlot draws ms into the file name (nothing if name is empty).
func writePlot(name, title string, ms []netbench.Measurement) error {
	if name == "" {
		return nil
	}
	if title == "" {
		title = "logship ship: throughput against streams"
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := netbench.Plot(f, ms, title, plotFormat(name)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readMeasurements reads the lines of a `logship bench --json` output.
func readMeasurements(name string) ([]netbench.Measurement, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var ms []netbench.Measurement
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m netbench.Measurement
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("%s:%d: not a logship bench --json line: %v", name, i+1, err)
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%s: no runs", name)
	}
	return ms, nil
}

// plotFormat is the format a plot file's extension names (svg if none).
func plotFormat(name string) string {
	if ext := strings.TrimPrefix(filepath.Ext(name), "."); ext != "" {
		return strings.ToLower(ext)
	}
	return "svg"
}

// defaultShape is the committed kernel journal, when run from the
// repository.
func defaultShape() string {
	p := filepath.Join("journal", "testdata", "kernel", "fsync-marks-512.log.zst")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// parseInts parses "1,2,4,8".
func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("%q is not a stream count from 1 to 64", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// runFaults is `logship bench faults`.
func runFaults(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench faults", "[--runs N] [--seed S] [--faults LIST] [flags]",
		`Runs a randomized fault-injection campaign on real processes and real TCP.
Every run ships a journal (synthetic, or one of --journal) with a real
'logship ship' to a real 'logship serve' through the bench's proxy, with a
random link model, stream count, window size, durability mode and
compression, while 1 to 3 faults hit it at random moments:

  kill-serve  SIGKILL the server, restart it
  kill-ship   SIGKILL the source, restart it
  kill-both   kill both in random order, restart them in random order
  cut         close a stream (FIN)
  reset       reset a stream (RST) in the middle of a DATA frame
  stall       stop a stream for 0.1-1.5 s
  flip        flip a bit of a frame on its way to the server
  disk-full   fill the server's file system (ext4 on a loop device; root)

A run passes when the source finishes by itself with every entry durable;
after every server crash the recovered position covers every window the
server acked (read off the ACK frames), and with group commit it is the
end of a window the source sent and the image is exactly the journal
replayed up to it; and at the end, after an orderly stop and one more start
of the server, every entry is durable and the image is the whole journal
replayed.

Run i uses seed S+i: 'logship bench faults --runs 1 --seed S+i' with the
same --faults and --journal flags repeats it (the same choices; the
processes' timing may interleave differently).
Prints a summary; exit 1 if any run failed.`)
	var (
		runs     = fs.Int("runs", 20, "number of runs")
		seed     = fs.Uint64("seed", 1, "seed of the first run")
		faults   = fs.String("faults", strings.Join(campaign.CampaignFaults, ","), "fault kinds to inject")
		jobs     = fs.Int("jobs", 1, "runs at once")
		journals = fs.StringArray("journal", nil, "a real journal (e.g. a kernel capture; .zst is decompressed) some runs ship (repeatable)")
		dir      = fs.String("dir", "", "scratch directory (default: the system's temp dir)")
		explore  = fs.Int("explore", 0, "also crash-test each --journal with this many explored states per point (crashtest --explore; root, e2fsprogs)")
		timeout  = fs.Duration("run-timeout", 3*time.Minute, "longest a run may take")
		jsonOut  = fs.Bool("json", false, "print the summary as JSON")
		verbose  = fs.BoolP("verbose", "v", false, "log every fault on stderr")
		quiet    = fs.BoolP("quiet", "q", false, "no line per run on stderr")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *explore < 0 || *explore > 0 && len(*journals) == 0 {
		return usagef("--explore %d: want a positive count, with --journal", *explore)
	}
	if *runs < 1 {
		return usagef("--runs %d: want at least 1", *runs)
	}
	if *jobs < 1 || *jobs > 64 {
		return usagef("--jobs %d: want 1 to 64", *jobs)
	}
	var kinds []string
	for k := range strings.SplitSeq(*faults, ",") {
		if !slices.Contains(campaign.CampaignFaults, k) {
			return usagef("--faults: unknown fault %q (want %s)", k, strings.Join(campaign.CampaignFaults, ", "))
		}
		kinds = append(kinds, k)
	}
	c := &campaign.Campaign{Runs: *runs, Seed: *seed, Faults: kinds, Jobs: *jobs, Dir: *dir, Journals: *journals, Explore: *explore, RunTimeout: *timeout}
	if !*quiet {
		c.Progress = e.stderr
	}
	if *verbose {
		c.Log = e.stderr
	}
	sum, err := c.Run(ctx)
	if err != nil && !errors.Is(err, campaign.ErrCampaign) {
		if sum.Runs == 0 {
			return err
		}
		fmt.Fprintf(e.stderr, "logship bench faults: stopped after %d runs: %v\n", sum.Runs, err)
	}
	if *jsonOut {
		b, _ := json.Marshal(sum)
		fmt.Fprintf(e.stdout, "%s\n", b)
	} else {
		printCampaign(e.stdout, sum)
	}
	switch {
	case errors.Is(err, campaign.ErrCampaign):
		return checkFailed{fmt.Sprintf("%d of %d runs failed; repeat one with --runs 1 --seed SEED", len(sum.Failed), sum.Runs)}
	case err != nil:
		return err
	}
	return nil
}

func printCampaign(w io.Writer, s campaign.CampaignSummary) {
	fmt.Fprintf(w, "fault campaign: seed %d, %d runs in %v (%.1fs a run), %d passed\n",
		s.Seed, s.Runs, s.Elapsed.Round(time.Second), s.Elapsed.Seconds()/float64(max(s.Runs, 1)), s.Passed)
	var kinds []string
	total := 0
	for _, k := range campaign.CampaignFaults {
		if n, ok := s.Faults[k]; ok {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
			total += n
		}
	}
	fmt.Fprintf(w, "faults injected: %d (%s)\n", total, strings.Join(kinds, ", "))
	fmt.Fprintf(w, "recoveries: %d server restarts checked, %d source restarts, %d reconnects\n", s.Recoveries, s.Resumes, s.Reconnects)
	var codes []string
	for _, c := range slices.Sorted(maps.Keys(s.ErrorFrames)) {
		codes = append(codes, fmt.Sprintf("%s %d", c, s.ErrorFrames[c]))
	}
	if len(codes) > 0 {
		fmt.Fprintf(w, "error frames: %s\n", strings.Join(codes, ", "))
	}
	if s.CrashStates > 0 {
		fmt.Fprintf(w, "crashtest --explore: %d crash states checked, %d failed\n", s.CrashStates, s.CrashFailed)
	}
	if s.StaleStops > 0 {
		fmt.Fprintf(w, "orderly stops that left the state file behind the staging log: %d (recovered on restart)\n", s.StaleStops)
	}
	fmt.Fprintf(w, "divergences: %d\nlost acked windows: %d\n", s.Divergences, s.LostAcked)
	for _, f := range s.Failed {
		if f.Run < 0 {
			fmt.Fprintf(w, "FAILED %s\n", f.Err)
			continue
		}
		fmt.Fprintf(w, "FAILED run %d (to repeat: --runs 1 --seed %d, same --faults and --journal): %s\n", f.Run, f.Seed, f.Err)
		if f.Log != "" {
			fmt.Fprintf(w, "--- run %d: the end of its processes' logs ---\n%s", f.Run, f.Log)
		}
	}
}
