package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/logship/logship/bench/crashtest"
	"github.com/logship/logship/bench/internal/proc"
	"github.com/logship/logship/bench/netbench"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/replica"
)

// The faults a Campaign injects.
const (
	KillServe = "kill-serve" // SIGKILL the server, restart it (recovery is checked)
	KillShip  = "kill-ship"  // SIGKILL the source, restart it (it resumes)
	KillBoth  = "kill-both"  // kill both in random order, restart them in random order
	Cut       = "cut"        // close a stream (FIN)
	Reset     = "reset"      // reset a stream (RST) in the middle of a DATA frame
	Stall     = "stall"      // stop a stream for 0.1-1.5 s
	Flip      = "flip"       // flip a bit of a frame on its way to the server
	DiskFull  = "disk-full"  // fill the server's file system for 0.2-1.5 s
)

// CampaignFaults lists every fault kind.
var CampaignFaults = []string{KillServe, KillShip, KillBoth, Cut, Reset, Stall, Flip, DiskFull}

// ErrCampaign: a campaign found a divergence, a lost acked window or a run
// that did not finish.
var ErrCampaign = errors.New("bench: fault campaign failed")

// A Campaign is a randomized fault-injection campaign on real processes
// and real TCP. Every run ships a journal (synthetic, or one of Journals)
// with a real `logship ship` to a real `logship serve` through a netbench.Proxy
// with a random link model, stream count, window size, durability mode
// and compression, while 1-3 faults hit it at random moments. A run
// passes when:
//
//   - the source finishes by itself (it reconnects and resumes after
//     every fault) and reports every entry durable;
//   - after every server crash, the recovered durable position is at or
//     past every position the server ever acked (read off the ACK frames
//     by the proxy): no acked window is lost;
//   - in group commit, after every server crash, the recovered position
//     is the end of a window the source sent, and (without
//     --write-through, whose windows may be in the image in part after a
//     crash) the image is exactly the journal replayed
//     (fixtures.ReplaySequential) up to it: a state at a window boundary;
//   - at the end, once the server was stopped in order and started once
//     more (recovery), every entry is durable and the image is exactly the
//     whole journal replayed.
//
// Run i uses seed Seed+i for everything it chooses; the processes' timing
// is not deterministic, so a run repeated with its seed does the same
// things at the same moments but may interleave differently.
type Campaign struct {
	// Binary is the logship executable (this program if empty).
	Binary string
	Runs   int
	Seed   uint64
	// Faults are the kinds to inject (all of CampaignFaults if empty).
	// DiskFull puts the servers' directories on a small ext4 file system
	// on a loop device, which needs root.
	Faults []string
	// Jobs is how many runs go at once (1 if 0); each has its own
	// directory (and file system).
	Jobs int
	// Dir is a scratch directory (the system's temp dir if empty).
	Dir string
	// Journals are real journals (kernel captures; *.zst decompressed)
	// that about one run in six ships instead of a synthetic one.
	Journals []string
	// Explore, when positive, also crash-tests each of Journals once
	// (crashtest.Crashtest from the mark "mkfs" on, at every FLUSH, FUA and MARK,
	// with Explore random subsets of the window after each point; the
	// check replays ext4's journal then runs e2fsck -fn, and the manifest
	// NAME.manifest beside NAME.log[.zst] is compared at its marks). It
	// needs root, e2fsprogs and journals of ext4 file systems made after
	// a mark "mkfs", as the kernel captures are.
	Explore int
	// RunTimeout bounds one run (3 minutes if 0).
	RunTimeout time.Duration
	// Progress, if set, gets a line per run; Log gets every fault.
	Progress io.Writer
	Log      io.Writer

	// sabotage, in tests, damages the server's directory on purpose:
	// event "crashed" right after the server was killed, "end" after it
	// stopped at the end of a run, before the checks.
	sabotage func(event, srvDir string)
}

// CampaignSummary is what a campaign found.
type CampaignSummary struct {
	Seed   uint64         `json:"seed"`
	Runs   int            `json:"runs"`
	Passed int            `json:"passed"`
	Faults map[string]int `json:"faults"` // injected, by kind
	// Recoveries counts server restarts whose recovery was checked;
	// Resumes, source restarts; Reconnects, the reconnections the last
	// source of each run reported; ErrorFrames, the ERROR frames either
	// side sent, by code (orderly closes left out): how the faults were
	// noticed.
	Recoveries  int            `json:"recoveries"`
	Resumes     int            `json:"resumes"`
	Reconnects  int            `json:"reconnects"`
	ErrorFrames map[string]int `json:"error_frames"`
	// Divergences counts images that differ from the replay, recoveries
	// to a position that is not a window boundary, and final positions
	// short of the journal's end; LostAcked, windows acked and then not
	// durable after a crash.
	Divergences int `json:"divergences"`
	LostAcked   int `json:"lost_acked_windows"`
	// StaleStops counts runs whose server, stopped in order at the end,
	// left a state file behind what a restart then recovered from its
	// staging log (allowed: the staging log is durable, and what a
	// restarted server recovers is what the checks compare).
	StaleStops int          `json:"stale_stops"`
	Failed     []RunFailure `json:"failed,omitempty"`
	// CrashStates and CrashFailed count the crash states crashtest.Crashtest checked
	// (points and explored subsets) on Journals, and those that failed.
	CrashStates int           `json:"crash_states"`
	CrashFailed int           `json:"crash_failed"`
	Elapsed     time.Duration `json:"elapsed_ns"`
}

// RunFailure is a run that did not pass: its number, its seed (to repeat
// it: --runs 1 --seed SEED) and why.
type RunFailure struct {
	Run  int    `json:"run"`
	Seed uint64 `json:"seed"`
	Err  string `json:"error"`
	// Log is the end of what the run's processes logged, with the faults
	// interleaved.
	Log string `json:"log,omitempty"`
}

// Run runs the campaign. It returns the summary, and ErrCampaign if a run
// failed (the summary says which); other errors are the bench's own.
func (c *Campaign) Run(ctx context.Context) (CampaignSummary, error) {
	sum := CampaignSummary{Seed: c.Seed, Faults: make(map[string]int), ErrorFrames: make(map[string]int)}
	start := time.Now()
	faults := c.Faults
	if len(faults) == 0 {
		faults = CampaignFaults
	}
	for _, f := range faults {
		if !slices.Contains(CampaignFaults, f) {
			return sum, fmt.Errorf("bench: unknown fault %q (want %s)", f, strings.Join(CampaignFaults, ", "))
		}
		sum.Faults[f] = 0
	}
	bin, err := proc.Executable(c.Binary)
	if err != nil {
		return sum, err
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		return sum, fmt.Errorf("bench: %s is not an executable logship: %v", bin, err)
	}
	var real [][]byte
	for _, p := range c.Journals {
		b, err := netbench.ReadJournal(p)
		if err != nil {
			return sum, err
		}
		real = append(real, b)
	}
	scratch, err := os.MkdirTemp(c.Dir, "logship-faults-")
	if err != nil {
		return sum, err
	}
	defer os.RemoveAll(scratch)

	if c.Explore > 0 {
		for i, p := range c.Journals {
			st, failed, err := c.crashtest(ctx, p, real[i], scratch)
			if err != nil {
				return sum, err
			}
			sum.CrashStates += st
			sum.CrashFailed += failed
			if failed > 0 {
				sum.Failed = append(sum.Failed, RunFailure{Run: -1, Seed: c.Seed, Err: fmt.Sprintf("crashtest of %s: %d of %d states failed", p, failed, st)})
			}
		}
	}

	jobs := max(c.Jobs, 1)
	var mu sync.Mutex // guards sum and next
	next := 0
	g, gctx := errgroup.WithContext(ctx)
	for k := range jobs {
		g.Go(func() error {
			jr := &jobRunner{c: c, bin: bin, faults: faults, real: real, dir: filepath.Join(scratch, "job"+strconv.Itoa(k))}
			if err := os.MkdirAll(jr.dir, 0o700); err != nil {
				return err
			}
			if slices.Contains(faults, DiskFull) {
				fs, err := newSmallFS(jr.dir, 256<<20)
				if err != nil {
					return err
				}
				defer fs.close()
				jr.fs = fs
			}
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= c.Runs || gctx.Err() != nil {
					return nil
				}
				seed := c.Seed + uint64(i)
				t0 := time.Now()
				res, err := jr.run(gctx, i, seed)
				if gctx.Err() != nil {
					return context.Cause(gctx)
				}
				mu.Lock()
				sum.Runs++
				for k, n := range res.faults {
					sum.Faults[k] += n
				}
				sum.Recoveries += res.recoveries
				sum.Resumes += res.resumes
				sum.Reconnects += res.reconnects
				for k, n := range res.errors {
					sum.ErrorFrames[k] += n
				}
				sum.Divergences += res.divergences
				sum.StaleStops += res.staleStops
				sum.LostAcked += res.lost
				problems := res.problems
				if err != nil {
					problems = append(problems, err.Error())
				}
				if len(problems) == 0 {
					sum.Passed++
				} else {
					sum.Failed = append(sum.Failed, RunFailure{Run: i, Seed: seed, Err: strings.Join(problems, "; "), Log: res.trail})
				}
				if c.Progress != nil {
					verdict := "ok"
					if len(problems) > 0 {
						verdict = "FAILED: " + strings.Join(problems, "; ")
					}
					fmt.Fprintf(c.Progress, "faults: run %d/%d seed %d: %s: %s (%.1fs)\n", i+1, c.Runs, seed, res.plan, verdict, time.Since(t0).Seconds())
				}
				mu.Unlock()
			}
		})
	}
	err = g.Wait()
	sum.Elapsed = time.Since(start)
	if err != nil {
		return sum, err
	}
	slices.SortFunc(sum.Failed, func(a, b RunFailure) int { return a.Run - b.Run })
	if len(sum.Failed) > 0 {
		return sum, fmt.Errorf("%w: %d of %d runs", ErrCampaign, len(sum.Failed), sum.Runs)
	}
	return sum, nil
}

// crashtest runs crashtest.Crashtest with Explore on the journal at path (whose
// bytes are j).
func (c *Campaign) crashtest(ctx context.Context, path string, j []byte, scratch string) (states, failed int, err error) {
	jp := filepath.Join(scratch, "crashtest.log")
	if err := os.WriteFile(jp, j, 0o600); err != nil {
		return 0, 0, err
	}
	defer os.Remove(jp)
	o := crashtest.Options{
		Check:     crashtest.Command{Line: "e2fsck -p -E journal_only {} >/dev/null 2>&1; e2fsck -fn {}", Timeout: time.Minute},
		Device:    crashtest.DeviceLoop,
		FromMark:  "mkfs",
		Explore:   c.Explore,
		Seed:      c.Seed,
		KeepGoing: true,
		WorkDir:   scratch,
	}
	mp := strings.TrimSuffix(strings.TrimSuffix(path, ".zst"), ".log") + ".manifest"
	if f, err := os.Open(mp); err == nil {
		o.Manifest, err = crashtest.ParseManifest(f)
		f.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", mp, err)
		}
	}
	s, err := crashtest.Crashtest(ctx, jp, o)
	if err != nil && !errors.Is(err, crashtest.ErrFailed) {
		return 0, 0, fmt.Errorf("crashtest of %s: %w", path, err)
	}
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "faults: crashtest --explore %d of %s: %d points, %d explored states, %d manifests, %d failed (%.1fs)\n",
			c.Explore, path, s.Points, s.Explored, s.Manifests, s.Failed, s.Total.Seconds())
	}
	return s.Points + s.Explored, s.Failed, nil
}

// jobRunner runs campaign runs one after the other in its directory.
type jobRunner struct {
	c      *Campaign
	bin    string
	faults []string
	real   [][]byte
	dir    string
	fs     *smallFS // the file system the servers use; nil without DiskFull
}

// runResult is what one run did and found.
type runResult struct {
	plan        string
	faults      map[string]int
	recoveries  int
	resumes     int
	reconnects  int
	errors      map[string]int
	divergences int      // images or positions that are wrong
	lost        int      // acked windows not durable after a crash
	staleStops  int      // orderly stops that left the state behind the staging log
	problems    []string // what was wrong, in order
	trail       string   // the end of the processes' logs and the faults
}

// diverged records a divergence.
func (r *runResult) diverged(format string, args ...any) {
	r.divergences++
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// runState is one run in progress.
type runState struct {
	jr        *jobRunner
	rng       *rand.Rand
	res       *runResult
	j         []byte // the journal
	entries   int64
	size      int64 // image size
	group     bool  // group commit (else sync per window)
	through   bool  // group commit with --write-through
	srvDir    string
	serveArgs []string
	shipArgs  []string
	px        *netbench.Proxy
	srv       *proc.Serve // nil while down
	ship      *proc.Proc  // nil while down
	trail     *proc.Tail  // the end of what the run's processes and faults logged
	log       func(format string, args ...any)
}

const task = "faults"

// run does run i with its seed. The error is a failure of the run (the
// source gave up, a process did not start); divergences and lost windows
// are in the result.
func (jr *jobRunner) run(ctx context.Context, i int, seed uint64) (res runResult, err error) {
	res.faults = make(map[string]int)
	c := jr.c
	timeout := c.RunTimeout
	if timeout <= 0 {
		timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("run %d took longer than %v", i, timeout))
	defer cancel()
	rs := &runState{jr: jr, rng: rand.New(rand.NewPCG(seed, 0x6c6f677368697021)), res: &res, trail: proc.NewTail(32 << 10)}
	rs.log = func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		fmt.Fprintf(rs.trail, "fault: %s\n", msg)
		if c.Log != nil {
			fmt.Fprintf(c.Log, "faults: run %d: %s\n", i, msg)
		}
	}
	defer func() { res.trail = string(rs.trail.Bytes()) }()
	base := jr.dir
	if jr.fs != nil {
		base = jr.fs.mnt
	}
	runDir := filepath.Join(jr.dir, fmt.Sprintf("run%d", i))
	rs.srvDir = filepath.Join(base, fmt.Sprintf("srv%d", i))
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return res, err
	}
	defer os.RemoveAll(rs.srvDir)
	defer os.RemoveAll(runDir)

	// The journal.
	what, err := rs.pickJournal()
	if err != nil {
		return res, err
	}
	jpath := filepath.Join(runDir, "journal.log")
	if err := os.WriteFile(jpath, rs.j, 0o600); err != nil {
		return res, err
	}
	// The setup.
	rng := rs.rng
	streams := 1 + rng.IntN(8)
	secs := 0.5 + rng.Float64()
	flow := max(int64(float64(len(rs.j))/secs/float64(streams))/125000, 8) * 125000 // whole Mbit/s
	link := netbench.Link{Kind: netbench.LinkWAN, RTT: []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond}[rng.IntN(4)], Flow: flow}
	if rng.IntN(3) == 0 {
		link.Bandwidth = flow * int64(streams) * 7 / 10
	}
	rs.group = rng.IntN(5) > 0
	credit := []string{"512KiB", "2MiB", "8MiB", "64MiB"}[rng.IntN(4)]
	if what != "synthetic" {
		credit = "64MiB"
	}
	rs.serveArgs = []string{"--credit", credit}
	if rs.group {
		rs.serveArgs = append(rs.serveArgs,
			"--checkpoint-every", []string{"5ms", "50ms", "400ms", "1h"}[rng.IntN(4)],
			"--staging-rotate", []string{"256KiB", "1MiB", "8MiB"}[rng.IntN(3)])
		// Half the group-commit runs write windows of at least this
		// size straight to the image (serve --write-through): with
		// small thresholds most windows go that way, with 1 MiB a mix.
		if through := []string{"", "", "", "4KiB", "64KiB", "1MiB"}[rng.IntN(6)]; through != "" {
			rs.through = true
			rs.serveArgs = append(rs.serveArgs, "--write-through", through)
		}
	} else {
		rs.serveArgs = append(rs.serveArgs, "--sync-per-window")
	}
	extra := []string{"--retry-for", "2m", "--window-entries", strconv.Itoa([]int{4, 16, 64, 512}[rng.IntN(4)])}
	if rng.IntN(10) < 3 {
		extra = append(extra, "--compress", "zstd")
	}
	// The plan: 1 to 3 faults at random moments of the expected run.
	type fault struct {
		kind string
		at   time.Duration
	}
	var plan []fault
	for range 1 + rng.IntN(3) {
		plan = append(plan, fault{jr.faults[rng.IntN(len(jr.faults))], time.Duration(rng.Float64() * secs * 1.1 * float64(time.Second))})
	}
	slices.SortFunc(plan, func(a, b fault) int { return int(a.at - b.at) })
	var planS []string
	for _, f := range plan {
		planS = append(planS, fmt.Sprintf("%s@%.2fs", f.kind, f.at.Seconds()))
	}
	mode := "group"
	switch {
	case !rs.group:
		mode = "sync"
	case rs.through:
		mode = "group+write-through"
	}
	res.plan = fmt.Sprintf("%s journal (%d entries, %s), %d streams, %s, %s commit, credit %s, %s; %s",
		what, rs.entries, fmtBytes(len(rs.j)), streams, link, mode, credit, strings.Join(extra, " "), strings.Join(planS, " "))

	// Server, proxy, source.
	if rs.srv, err = proc.StartServe(ctx, jr.bin, rs.srvDir, rs.serveArgs, rs.trail); err != nil {
		return res, err
	}
	defer func() {
		if rs.srv != nil {
			rs.srv.Kill()
		}
	}()
	if rs.px, err = netbench.NewProxy(rs.srv.Addr, link, nil); err != nil {
		return res, err
	}
	defer rs.px.Close()
	rs.shipArgs = proc.ShipArgs(jpath, rs.px.Addr(), task, streams, rs.size, extra)
	if err := rs.startShip(); err != nil {
		return res, err
	}
	defer func() {
		if rs.ship != nil {
			rs.ship.Kill()
		}
	}()
	if jr.fs != nil {
		defer jr.fs.free()
	}

	t0 := time.Now()
	for _, f := range plan {
		if err := rs.sleep(ctx, time.Until(t0.Add(f.at))); err != nil {
			return res, err
		}
		if err := rs.inject(ctx, f.kind); err != nil {
			return res, err
		}
	}

	// The source must finish by itself, and the server keep running.
	select {
	case <-rs.ship.Done():
		if err := rs.ship.Err(); err != nil {
			return res, rs.ship.Failure(fmt.Errorf("logship ship did not finish: %w", err))
		}
	case <-rs.srv.Done():
		return res, rs.srv.Failure(fmt.Errorf("logship serve exited by itself (%v) while the source was shipping", rs.srv.Err()))
	case <-ctx.Done():
		return res, rs.ship.Failure(fmt.Errorf("logship ship did not finish: %w", context.Cause(ctx)))
	}
	sum, err := proc.ParseShipSummary(rs.ship.Stdout())
	if err != nil {
		return res, err
	}
	res.reconnects = sum.Reconnects
	if sum.State != "done" || sum.DurableEntry != rs.entries {
		res.diverged("the source ended %q durable to entry %d of %d", sum.State, sum.DurableEntry, rs.entries)
	}
	if err := rs.srv.Stop(time.Minute); err != nil {
		return res, rs.srv.Failure(err)
	}
	rs.srv = nil
	stopped, err := readPosition(rs.srvDir)
	if err != nil {
		return res, err
	}
	// What counts is what a server recovers: its state file may lag
	// behind the staging log, which the next start replays.
	if rs.srv, err = proc.StartServe(ctx, jr.bin, rs.srvDir, rs.serveArgs, rs.trail); err != nil {
		return res, err
	}
	if err := rs.srv.Stop(time.Minute); err != nil {
		return res, rs.srv.Failure(err)
	}
	rs.srv = nil
	if f := c.sabotage; f != nil {
		f("end", rs.srvDir)
	}
	rs.px.Close()
	st := rs.px.Stats()
	if st.Resets > 0 {
		res.faults[Reset] += int(st.Resets)
	}
	if st.Flips > 0 {
		res.faults[Flip] += int(st.Flips)
	}
	res.errors = make(map[string]int)
	for code, n := range rs.px.Ledger().Errors() {
		if code != parallel.CodeClosed {
			res.errors[control.Code(code).String()] += n
		}
	}

	// The end: every entry durable, the image the whole journal replayed.
	pos, err := readPosition(rs.srvDir)
	if err != nil {
		return res, err
	}
	if stopped != pos {
		res.staleStops++
		rs.log("the state after the orderly stop said window %d, entry %d; after a restart %d, %d", stopped.NextWindow, stopped.NextEntry, pos.NextWindow, pos.NextEntry)
	}
	rs.checkAcked(pos, "at the end")
	if pos.NextEntry != rs.entries {
		res.diverged("the server ended durable to entry %d of %d", pos.NextEntry, rs.entries)
	}
	if d := rs.compareImage(rs.entries); d != "" {
		res.diverged("final image: %s", d)
	}
	return res, nil
}

func fmtBytes(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// pickJournal makes the run's journal: synthetic, or one of the real ones.
func (rs *runState) pickJournal() (string, error) {
	rng := rs.rng
	// The draw is made with or without real journals, so that adding
	// them changes only which journal some runs ship.
	if useReal := rng.IntN(6) == 0; useReal && len(rs.jr.real) > 0 {
		k := rng.IntN(len(rs.jr.real))
		rs.j = rs.jr.real[k]
		r, err := journal.NewReader(bytes.NewReader(rs.j), int64(len(rs.j)))
		if err != nil {
			return "", err
		}
		var end int64
		for e, err := range r.All() {
			if err != nil {
				return "", err
			}
			end = max(end, e.End())
		}
		rs.entries, rs.size = r.Len(), (max(end, 1)+1<<20-1)&^(1<<20-1) // whole MiB
		return filepath.Base(rs.jr.c.Journals[k]), nil
	}
	ss := []int{512, 4096}[rng.IntN(2)]
	wl := fixtures.Workload{
		Seed: rng.Uint64(), SectorSize: ss, DeviceSize: 16 << 20, Entries: 300 + rng.IntN(1200),
		MaxWriteSectors: (8 << 10) / ss * (1 + rng.IntN(4)),
		Discard:         0.05, Flush: 0.03 + rng.Float64()*0.05, FUA: 0.03, Mark: 0.02, Metadata: 0.1, Overlap: 0.4,
	}
	j, err := wl.Bytes()
	if err != nil {
		return "", err
	}
	rs.j, rs.entries, rs.size = j, int64(wl.Entries), wl.DeviceSize
	return "synthetic", nil
}

func (rs *runState) startShip() error {
	sh, err := proc.Start("logship ship", rs.jr.bin, rs.shipArgs, nil, rs.trail)
	if err != nil {
		return err
	}
	rs.ship = sh
	return nil
}

// sleep waits for d, or fails if the server exits by itself meanwhile.
func (rs *runState) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-rs.srv.Done():
		return rs.srv.Failure(fmt.Errorf("logship serve exited by itself (%v)", rs.srv.Err()))
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// shipRunning reports whether the source is still at work.
func (rs *runState) shipRunning() bool { return rs.ship != nil && !rs.ship.Exited() }

// inject does one fault. Connection faults and disk-full need a source at
// work, and are skipped otherwise.
func (rs *runState) inject(ctx context.Context, kind string) error {
	rng, px := rs.rng, rs.px
	pause := func() error { return sleepCtx(ctx, time.Duration(rng.IntN(300))*time.Millisecond) }
	switch kind {
	case KillServe:
		rs.killServe()
		rs.log("killed the server")
		if err := pause(); err != nil {
			return err
		}
		if err := rs.restartServe(ctx); err != nil {
			return err
		}
	case KillShip:
		if !rs.shipRunning() {
			return nil
		}
		rs.ship.Kill()
		rs.log("killed the source")
		if err := pause(); err != nil {
			return err
		}
		if err := rs.startShip(); err != nil {
			return err
		}
		rs.res.resumes++
	case KillBoth:
		if !rs.shipRunning() {
			return nil
		}
		order := rng.IntN(2)
		for k := range 2 {
			if k == order {
				rs.killServe()
			} else {
				rs.ship.Kill()
			}
		}
		rs.log("killed both (server first: %v)", order == 0)
		if err := pause(); err != nil {
			return err
		}
		serverFirst := rng.IntN(2) == 0
		for k := range 2 {
			if (k == 0) == serverFirst {
				if err := rs.restartServe(ctx); err != nil {
					return err
				}
			} else {
				if err := rs.startShip(); err != nil {
					return err
				}
				rs.res.resumes++
			}
			if err := pause(); err != nil {
				return err
			}
		}
	case Cut, Stall, Reset, Flip:
		if !rs.shipRunning() {
			return nil
		}
		f := map[string]netbench.ConnFault{Cut: netbench.FaultCut, Stall: netbench.FaultStall, Reset: netbench.FaultReset, Flip: netbench.FaultFlip}[kind]
		stall := time.Duration(100+rng.IntN(1400)) * time.Millisecond
		if !px.Inject(f, rng.IntN(1<<20), stall, rng.Uint64()) {
			return nil
		}
		rs.log("%s on a connection", kind)
		if kind == Cut || kind == Stall {
			rs.res.faults[kind]++ // resets and flips are counted when they happen
		}
	case DiskFull:
		if !rs.shipRunning() || rs.jr.fs == nil {
			return nil
		}
		if err := rs.jr.fs.fill(); err != nil {
			return err
		}
		rs.res.faults[kind]++
		rs.log("filled the server's disk")
		err := rs.sleep(ctx, time.Duration(200+rng.IntN(1300))*time.Millisecond)
		if ferr := rs.jr.fs.free(); err == nil {
			err = ferr
		}
		if err != nil {
			return err
		}
		rs.log("freed the server's disk")
	}
	if kind == KillServe || kind == KillShip || kind == KillBoth {
		rs.res.faults[kind]++
	}
	return nil
}

// killServe kills the server and keeps sources out until it is back.
func (rs *runState) killServe() {
	rs.srv.Kill()
	rs.srv = nil
	rs.px.Block(true)
	if f := rs.jr.c.sabotage; f != nil {
		f("crashed", rs.srvDir)
	}
}

// restartServe starts the server again on its directory, checks what it
// recovered before any source can reach it, then lets sources in.
func (rs *runState) restartServe(ctx context.Context) error {
	srv, err := proc.StartServe(ctx, rs.jr.bin, rs.srvDir, rs.serveArgs, rs.trail)
	if err != nil {
		return err
	}
	rs.srv = srv
	rs.res.recoveries++
	pos, err := readPosition(rs.srvDir)
	if err != nil {
		return err
	}
	rs.checkAcked(pos, "after a server crash")
	// A window written through may be in the image in part after a
	// crash (docs/architecture.md, "Durability"), as with sync per
	// window: then the image is checked at the end only.
	if rs.group && pos.exists {
		if !rs.px.Ledger().IsBoundary(netbench.Boundary{NextWindow: pos.NextWindow, NextEntry: pos.NextEntry}) {
			rs.res.diverged("recovered to window %d, entry %d: not the end of a window the source sent", pos.NextWindow, pos.NextEntry)
		} else if !rs.through {
			if d := rs.compareImage(pos.NextEntry); d != "" {
				rs.res.diverged("image recovered to entry %d: %s", pos.NextEntry, d)
			}
		}
	}
	rs.log("restarted the server: durable to window %d, entry %d; acked %+v", pos.NextWindow, pos.NextEntry, rs.px.Ledger().Acked())
	rs.px.SetUpstream(srv.Addr)
	rs.px.Block(false)
	return nil
}

// checkAcked counts the acked windows that pos does not cover.
func (rs *runState) checkAcked(pos position, when string) {
	a := rs.px.Ledger().Acked()
	if !a.Valid {
		return
	}
	if pos.NextWindow <= a.Window || pos.NextEntry < a.Next {
		lost := int(max(1, int64(a.Window)+1-int64(pos.NextWindow)))
		rs.res.lost += lost
		rs.res.problems = append(rs.res.problems, fmt.Sprintf("%s the server is durable to window %d, entry %d, but acked window %d (to entry %d): %d acked windows lost",
			when, pos.NextWindow, pos.NextEntry, a.Window, a.Next, lost))
	}
}

// position is the durable position in a task's state file.
type position struct {
	exists     bool // the task exists
	NextWindow uint64
	NextEntry  int64
}

func readPosition(srvDir string) (position, error) {
	b, err := os.ReadFile(filepath.Join(srvDir, task, "state"))
	if errors.Is(err, os.ErrNotExist) {
		return position{}, nil
	}
	if err != nil {
		return position{}, err
	}
	var st replica.State
	if err := json.Unmarshal(b, &st); err != nil {
		return position{}, fmt.Errorf("reading the server's state: %w", err)
	}
	return position{exists: true, NextWindow: st.Durable.NextWindow, NextEntry: st.Durable.NextEntry}, nil
}

// compareImage compares the task's image with the journal replayed onto
// zeros up to entry next (excluded); "" when they are equal.
func (rs *runState) compareImage(next int64) string {
	got, err := os.ReadFile(filepath.Join(rs.srvDir, task, "image"))
	if err != nil {
		return err.Error()
	}
	want := make([]byte, rs.size)
	if next > 0 {
		if err := fixtures.ReplaySequential(rs.j, want, next-1); err != nil {
			return "replaying the reference: " + err.Error()
		}
	}
	if int64(len(got)) != rs.size {
		return fmt.Sprintf("%d bytes, want %d", len(got), rs.size)
	}
	if i := firstDiff(got, want); i >= 0 {
		return fmt.Sprintf("differs from the replay of entries [0, %d) at byte %d", next, i)
	}
	return ""
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
