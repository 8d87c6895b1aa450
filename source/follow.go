package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/blocksync"
	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// FollowConfig configures a Follower.
type FollowConfig struct {
	// Ship configures each log's Shipper: the server, the task, the
	// session, DMName and Tick, limits, Hooks. Its Journal is ignored
	// (Logs say which), Follow is implied, and FromMark applies to the
	// first log shipped only.
	Ship Config
	// Logs are the log devices of the target, in any order: the one it
	// writes now and those that rotation swaps in. Without DMName they are
	// followed in the order of their rotation marks.
	Logs []string
	// RotateAt, with DMName and two logs or more, rotates to the oldest
	// other log when the target has used this fraction of the current
	// one (0: never; the Follower still follows rotations made by
	// `logship rotate`).
	RotateAt float64
	// ResyncOnGap: when the target reports logging_disabled, rotate to a
	// fresh log (the oldest other one, or the same one if there is only
	// one), make a differential sync of /dev/mapper/DMName to the task,
	// and go on shipping the fresh log from its rotation mark.
	ResyncOnGap bool
	// Sync tunes those syncs (block size, granularity, parallelism); its
	// Source, Addr, Client, Mode and Log are set by the Follower.
	Sync blocksync.SyncConfig
	// SuccessorWait: once a log has ended (its end mark), how long to
	// wait for the next one before ending, when there is no DMName to ask
	// whether the target still exists (10 s if 0; with one log, 0).
	SuccessorWait time.Duration
	// Poll is how often the logs and the target are looked at while
	// waiting for the next log or the rotation threshold (200 ms if 0).
	Poll time.Duration

	dm rotateDM // devio if nil (tests)
}

// FollowStats are a Follower's Stats: the counters summed over every
// log's Shipper, the positions those of the current one.
type FollowStats struct {
	Stats
	Logs      int   // logs shipped (or being shipped)
	Rotations int64 // rotations followed (made by the Follower or not)
	Rotated   int64 // rotations the Follower made (RotateAt)
	Resyncs   int64 // differential syncs after logging_disabled
}

// Follower ships a log-writes target's journal across log rotations: each
// log is its own journal on the server (its own identity), shipped by a
// Shipper to its end mark; the next log in the rotation follows, window
// numbers going on, so that nothing is skipped or shipped twice. Run it
// once.
type Follower struct {
	cfg FollowConfig
	log *slog.Logger
	dm  rotateDM

	mu      sync.Mutex
	done    Stats    // counters of the Shippers that finished
	cur     *Shipper // the one running, or nil
	curPath string
	curSeq  uint64
	fst     FollowStats
	start   time.Time
}

// NewFollower checks cfg and returns a Follower.
func NewFollower(cfg FollowConfig) (*Follower, error) {
	switch {
	case len(cfg.Logs) == 0:
		return nil, errors.New("source: no log to follow")
	case cfg.RotateAt < 0 || cfg.RotateAt >= 1:
		return nil, fmt.Errorf("source: rotate at %v: want a fraction in (0, 1)", cfg.RotateAt)
	case cfg.RotateAt > 0 && (cfg.Ship.DMName == "" || len(cfg.Logs) < 2):
		return nil, errors.New("source: rotation needs the target's name and two logs or more")
	case cfg.ResyncOnGap && cfg.Ship.DMName == "":
		return nil, errors.New("source: a resync on logging_disabled needs the target's name")
	}
	seen := make(map[uint64]string)
	for _, l := range cfg.Logs {
		d, err := blockDevOrFile(l)
		if err != nil {
			return nil, err
		}
		if d != 0 && seen[d] != "" {
			return nil, fmt.Errorf("source: %s and %s are the same device", seen[d], l)
		}
		seen[d] = l
	}
	cfg.Ship.Follow = true
	if cfg.Ship.RetryFor == 0 {
		cfg.Ship.RetryFor = DefaultRetryFor
	}
	if cfg.SuccessorWait <= 0 {
		cfg.SuccessorWait = 10 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	f := &Follower{cfg: cfg, log: cfg.Ship.Log, dm: cfg.dm}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.dm == nil {
		f.dm = devioRotateDM{}
	}
	// Check the Shipper's part of the configuration now.
	probe := cfg.Ship
	probe.Journal = cfg.Logs[0]
	if _, err := New(probe); err != nil {
		return nil, err
	}
	return f, nil
}

// blockDevOrFile is the device number of a block device, 0 for a file.
func blockDevOrFile(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return 0, nil
	}
	return blockDev(path)
}

// Stats returns the counters so far; it may be called while Run runs.
func (f *Follower) Stats() FollowStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.fst
	st.Stats = f.done
	if f.cur != nil {
		cs := f.cur.Stats()
		sum := st.Stats
		st.Stats = cs
		st.Entries += sum.Entries
		st.Windows += sum.Windows
		st.Frames += sum.Frames
		st.Bytes += sum.Bytes
		st.Skipped += sum.Skipped
		st.WireBytes += sum.WireBytes
		st.Sessions += sum.Sessions
		st.Reconnects += sum.Reconnects
		st.StreamWire = addWire(append([]int64(nil), sum.StreamWire...), cs.StreamWire)
	}
	if !f.start.IsZero() {
		st.Elapsed = time.Since(f.start)
	}
	return st
}

func addWire(to, from []int64) []int64 {
	for i, n := range from {
		for len(to) <= i {
			to = append(to, 0)
		}
		to[i] += n
	}
	return to
}

// finish adds a finished Shipper's counters.
func (f *Follower) finish(sh *Shipper) {
	st := sh.Stats()
	f.mu.Lock()
	defer f.mu.Unlock()
	d := &f.done
	entries, windows, frames, bytes := d.Entries+st.Entries, d.Windows+st.Windows, d.Frames+st.Frames, d.Bytes+st.Bytes
	skipped, wire, sessions, reconnects := d.Skipped+st.Skipped, d.WireBytes+st.WireBytes, d.Sessions+st.Sessions, d.Reconnects+st.Reconnects
	streams := addWire(append([]int64(nil), d.StreamWire...), st.StreamWire)
	*d = st
	d.Entries, d.Windows, d.Frames, d.Bytes = entries, windows, frames, bytes
	d.Skipped, d.WireBytes, d.Sessions, d.Reconnects = skipped, wire, sessions, reconnects
	d.StreamWire = streams
	f.cur = nil
}

// Run ships the logs until the target is removed (the last log's end
// mark, and no next log), ctx ends (its cause is returned, after what was
// read has been sent and acked), or an error that a Shipper cannot cure.
func (f *Follower) Run(ctx context.Context) (FollowStats, error) {
	f.mu.Lock()
	f.start = time.Now()
	f.mu.Unlock()
	err := f.run(ctx)
	return f.Stats(), err
}

func (f *Follower) run(ctx context.Context) error {
	cfg := &f.cfg
	cur, gap, err := f.first(ctx)
	if err != nil {
		return err
	}
	fromMark := cfg.Ship.FromMark
	if gap && cfg.ResyncOnGap {
		f.log.Error("GAP: the task's durable position is in a journal none of the logs holds (a reboot or a crash since?): what was written after it may be missing from the image. Repairing: a fresh log, then a differential sync of the device",
			"device", cfg.Ship.DMName)
		if cur, fromMark, err = f.resync(ctx, cur); err != nil {
			return fmt.Errorf("source: repairing a gap: %w", err)
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	rctx, stopRotating := context.WithCancel(ctx)
	defer stopRotating()
	if cfg.RotateAt > 0 {
		wg.Go(func() { f.rotateLoop(rctx) })
	}
	for {
		scfg := cfg.Ship
		scfg.Journal, scfg.FromMark, scfg.Seq = cur.Path, fromMark, cur.Seq
		// A log the target no longer writes is complete: ship it to its
		// last counted entry rather than wait for more.
		retired := false
		if cfg.Ship.DMName != "" {
			if active, err := f.activeLog(); err == nil && active != cur.Path {
				scfg.Follow, retired = false, true
			}
		}
		sh, err := New(scfg)
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.cur, f.curPath, f.curSeq = sh, cur.Path, cur.Seq
		f.fst.Logs++
		f.mu.Unlock()
		f.log.Info("following log", "log", cur.Path, "seq", cur.Seq, "from_mark", fromMark, "retired", retired)
		_, err = sh.Run(ctx)
		f.finish(sh)
		if err == nil && retired {
			if ended, eerr := logEnded(cur.Path); eerr != nil {
				err = eerr
			} else if !ended {
				err = fmt.Errorf("%w: %s, which the target no longer writes, ends without its end mark (the host crashed, or the target was reloaded without a rotation?): what was logged after its last counted entry is not in the image", ErrGap, cur.Path)
			}
		}
		if errors.Is(err, ErrLoggingDisabled) || errors.Is(err, ErrGap) {
			f.tellServer(ctx, err)
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrGap) && cfg.ResyncOnGap && ctx.Err() == nil:
			f.log.Error("GAP: repairing: a fresh log, then a differential sync of the device", "device", cfg.Ship.DMName, "err", err)
			next, label, rerr := f.resync(ctx, cur)
			if rerr != nil {
				return fmt.Errorf("%w; the repair failed: %v", err, rerr)
			}
			cur, fromMark = next, label
			continue
		case errors.Is(err, ErrLoggingDisabled) && cfg.ResyncOnGap && ctx.Err() == nil:
			f.log.Error("LOGGING DISABLED: the log-writes target stopped logging (its log is full or failed); writes reach the device unlogged. Repairing: a fresh log, then a differential sync of the device",
				"device", cfg.Ship.DMName, "log", cur.Path, "err", err)
			next, label, rerr := f.resync(ctx, cur)
			if rerr != nil {
				return fmt.Errorf("%w; the repair failed: %v", err, rerr)
			}
			cur, fromMark = next, label
			continue
		case errors.Is(err, ErrLoggingDisabled):
			f.log.Error("LOGGING DISABLED: the log-writes target stopped logging (its log is full or failed); writes reach the device unlogged and the image can no longer follow it. Reload the target with a fresh log and resync (or run ship with --resync-on-gap)",
				"device", cfg.Ship.DMName, "log", cur.Path, "err", err)
			return err
		default:
			return err
		}
		next, ok, err := f.successor(ctx, cur)
		if err != nil || !ok {
			return err
		}
		f.mu.Lock()
		f.fst.Rotations++
		f.mu.Unlock()
		f.log.Info("log ended, following the next one", "log", cur.Path, "seq", cur.Seq, "next", next.Path, "next_seq", next.Seq)
		cur, fromMark = next, ""
	}
}

// scanAll scans every log.
func (f *Follower) scanAll() ([]LogInfo, error) {
	var infos []LogInfo
	for _, p := range f.cfg.Logs {
		info, err := ScanLog(p)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// first chooses the log to start with: the one whose journal the server
// has the durable position of (a restart, maybe in the middle of an old
// log); else the log the target writes now (with DMName), else the oldest.
// gap says that the task is durable in a journal (not a sync's) that none
// of the logs holds: whatever followed it may be missing.
func (f *Follower) first(ctx context.Context) (start LogInfo, gap bool, err error) {
	cfg := &f.cfg
	infos, err := f.scanAll()
	if err != nil {
		return LogInfo{}, false, err
	}
	// Where the task stands decides where to start: an older log may not
	// have been shipped to its end. Wait for the server rather than guess.
	var durable control.Position
	var known bool
	bo := newBackoff()
	for since := time.Now(); ; {
		if durable, known, err = f.durable(ctx); err == nil {
			break
		}
		if ctx.Err() != nil || cfg.Ship.RetryFor < 0 || cfg.Ship.RetryFor > 0 && time.Since(since) > cfg.Ship.RetryFor || permanent(err) {
			return LogInfo{}, false, fmt.Errorf("source: asking the server where task %s stands: %w", cfg.Ship.Client.Task, err)
		}
		wait := bo.next()
		f.log.Warn("could not ask the server where the task stands, retrying", "server", cfg.Ship.Addr, "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return LogInfo{}, false, context.Cause(ctx)
		case <-time.After(wait):
		}
	}
	if known {
		for _, in := range infos {
			if !in.Blank && in.ID == durable.Journal {
				f.log.Info("resuming a log the server has part of", "log", in.Path, "seq", in.Seq, "durable_entry", durable.NextEntry)
				return in, false, nil
			}
		}
	}
	if cfg.Ship.DMName != "" {
		active, err := f.activeLog()
		if err != nil {
			return LogInfo{}, false, err
		}
		for _, in := range infos {
			if in.Path == active {
				start = in
			}
		}
	} else {
		// The oldest log that holds a journal; wait for one if all are
		// blank (the first one's superblock comes with its first FUA
		// or mark).
		for start.Path == "" {
			sort.SliceStable(infos, func(i, j int) bool { return infos[i].Seq < infos[j].Seq })
			for _, in := range infos {
				if !in.Blank {
					start = in
					break
				}
			}
			if start.Path != "" {
				break
			}
			select {
			case <-ctx.Done():
				return LogInfo{}, false, context.Cause(ctx)
			case <-time.After(cfg.Poll):
			}
			if infos, err = f.scanAll(); err != nil {
				return LogInfo{}, false, err
			}
		}
	}
	if known && durable.Journal != "" && !control.IsSyncJournal(durable.Journal) && durable.Journal != blocksync.VerifyJournal {
		gap = true
		if !cfg.ResyncOnGap {
			f.log.Warn("the task's durable position is in a journal none of the logs holds: starting a new journal; if that one was not shipped to its end, the image misses its tail (run a differential sync, or ship with --resync-on-gap)",
				"durable_journal", durable.Journal, "durable_entry", durable.NextEntry, "log", start.Path)
		}
	}
	return start, gap, nil
}

// durable asks the server for the task's durable position; known is false
// when the task does not exist.
func (f *Follower) durable(ctx context.Context) (control.Position, bool, error) {
	c := f.cfg.Ship.Client
	c.Task, c.Streams = "", 1
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sess, err := parallel.Dial(cctx, f.cfg.Ship.Addr, c)
	if err != nil {
		return control.Position{}, false, err
	}
	defer sess.Close()
	ts, ok, err := blocksync.TaskStatus(cctx, sess, f.cfg.Ship.Client.Task)
	return ts.Durable, ok, err
}

// activeLog returns which of the logs the target writes now, or an error
// naming the log device when it is none of them.
func (f *Follower) activeLog() (string, error) {
	t, err := logWritesTable(f.dm, f.cfg.Ship.DMName)
	if err != nil {
		return "", err
	}
	for _, p := range f.cfg.Logs {
		if d, err := blockDev(p); err == nil && d == t.log {
			return p, nil
		}
	}
	return "", fmt.Errorf("source: the log-writes target %s logs to %s, which is not one of the logs given (%v)", f.cfg.Ship.DMName, devPath(t.log), f.cfg.Logs)
}

// successor waits for the log that follows cur, which has ended: the one
// whose rotation mark has the next sequence number. ok is false when there
// is none: the target was removed (DMName), or none appeared within
// SuccessorWait (without DMName; at once with a single log).
func (f *Follower) successor(ctx context.Context, cur LogInfo) (LogInfo, bool, error) {
	cfg := &f.cfg
	want := cur.Seq + 1
	var deadline time.Time
	if cfg.Ship.DMName == "" {
		if len(cfg.Logs) == 1 {
			return LogInfo{}, false, nil
		}
		deadline = time.Now().Add(cfg.SuccessorWait)
	}
	var lastErr error
	var unmarked time.Time // when the target's log was first seen without a rotation mark
	for {
		if cfg.Ship.DMName != "" {
			active, err := f.activeLog()
			switch {
			case errors.Is(err, devio.ErrUnsupported):
				return LogInfo{}, false, err
			case err != nil && isNoDevice(err):
				f.log.Info("the log-writes target is gone: done", "device", cfg.Ship.DMName)
				return LogInfo{}, false, nil
			case err != nil:
				return LogInfo{}, false, err
			}
			in, err := ScanLog(active)
			switch {
			case err != nil:
				lastErr = err // a log being written: try again
			case !in.Blank && in.Seq == want:
				return in, true, nil
			case !in.Blank && in.Label == "" && in.ID != cur.ID:
				// Logging, but no rotation mark among its first entries
				// (yet: the writes queued during the swap come first).
				// Still none after a while: a table loaded by someone
				// else (dmsetup reload); it is the next log all the same.
				if unmarked.IsZero() {
					unmarked = time.Now()
				} else if time.Since(unmarked) > unmarkedWait {
					f.log.Warn("the target logs to a log without a rotation mark (not rotated by logship): following it as the next log", "log", active)
					return in, true, nil
				}
			}
		} else {
			infos, err := f.scanAll()
			if err != nil {
				lastErr = err
			}
			for _, in := range infos {
				if !in.Blank && in.Seq == want {
					return in, true, nil
				}
			}
			if time.Now().After(deadline) {
				f.log.Info("no next log appeared: done", "after", cfg.SuccessorWait, "last_err", lastErr)
				return LogInfo{}, false, nil
			}
		}
		select {
		case <-ctx.Done():
			return LogInfo{}, false, context.Cause(ctx)
		case <-time.After(cfg.Poll):
		}
	}
}

// tellServer reports err to the server, so that status shows it even when
// the Shipper never had a session to report in (a log that filled before
// it was identified).
func (f *Follower) tellServer(ctx context.Context, err error) {
	c := f.cfg.Ship.Client
	c.Streams = 1
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	sess, derr := parallel.Dial(cctx, f.cfg.Ship.Addr, c)
	if derr != nil {
		f.log.Debug("could not tell the server", "err", derr)
		return
	}
	defer sess.Close()
	r := f.Stats().Report(time.Now())
	r.LoggingDisabled = r.LoggingDisabled || errors.Is(err, ErrLoggingDisabled)
	r.Error = err.Error()
	if _, cerr := sess.Call(cctx, control.Marshal(control.Request{Op: control.OpReport, Report: &r})); cerr != nil {
		f.log.Debug("could not tell the server", "err", cerr)
	}
}

// ErrGap: the image cannot follow the journal from where it stands: a log
// ended without its end mark, or the task is durable in a journal that
// none of the logs holds. A differential sync repairs it (ResyncOnGap).
var ErrGap = errors.New("source: gap in the journal")

// logEnded reports whether the last entry the log at path counts is the
// kernel's end mark.
func logEnded(path string) (bool, error) {
	j, err := openJournal(path, false)
	if err != nil {
		return false, err
	}
	defer j.Close()
	r, err := journal.NewReader(j.r, j.dev.Size())
	if err != nil {
		return false, j.wrap(err)
	}
	n := r.Len()
	if n == 0 {
		return false, nil
	}
	if err := r.SeekEntry(n - 1); err != nil {
		return false, j.wrap(err)
	}
	e, err := r.NextHeader()
	if err != nil {
		return false, j.wrap(err)
	}
	return e.IsMark() && e.Label == journal.EndMark, nil
}

// unmarkedWait is how long a new log may go without its rotation mark
// before the Follower takes it for a log loaded by another tool.
const unmarkedWait = 5 * time.Second

// isNoDevice reports whether err says the device-mapper device does not
// exist.
func isNoDevice(err error) bool { return errors.Is(err, unix.ENXIO) }

// rotateLoop rotates when the current log is RotateAt full, as long as
// the Follower is on the target's current log (so the other logs have
// been shipped to their end).
func (f *Follower) rotateLoop(ctx context.Context) {
	cfg := &f.cfg
	t := time.NewTicker(cfg.Poll)
	defer t.Stop()
	warnedBehind := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		sh, path, seq := f.cur, f.curPath, f.curSeq
		f.mu.Unlock()
		if sh == nil {
			continue
		}
		st := sh.Stats()
		if st.LogSize <= 0 || float64(st.Target.Used()) < cfg.RotateAt*float64(st.LogSize) {
			warnedBehind = false
			continue
		}
		active, err := f.activeLog()
		if err != nil {
			continue
		}
		if active != path {
			if !warnedBehind {
				f.log.Warn("the log is past the rotation threshold but the ship is still on an older log: cannot rotate yet",
					"active", active, "shipping", path, "seq", seq)
				warnedBehind = true
			}
			continue
		}
		next, err := f.oldestOther(active)
		if err != nil {
			f.log.Warn("no log to rotate to", "err", err)
			continue
		}
		res, err := Rotate(ctx, RotateConfig{DMName: cfg.Ship.DMName, NextLog: next, Log: f.log, dm: f.dm,
			Check: func(n, c LogInfo) error {
				// This Follower is on the current log: every other log
				// has been shipped to its end.
				return nil
			}})
		if err != nil {
			f.log.Error("rotation failed", "device", cfg.Ship.DMName, "next", next, "err", err)
			continue
		}
		f.mu.Lock()
		f.fst.Rotated++
		f.mu.Unlock()
		// Wait until the Follower has moved on before looking again.
		for ctx.Err() == nil {
			f.mu.Lock()
			moved := f.curPath == res.Next && f.curSeq == res.Seq
			f.mu.Unlock()
			if moved {
				break
			}
			time.Sleep(cfg.Poll)
		}
	}
}

// oldestOther returns the log, other than active, to rotate to: a blank
// one, else the one with the lowest rotation number.
func (f *Follower) oldestOther(active string) (string, error) {
	var best *LogInfo
	for _, p := range f.cfg.Logs {
		if p == active {
			continue
		}
		in, err := ScanLog(p)
		if err != nil {
			return "", err
		}
		if best == nil || in.Blank && !best.Blank || in.Blank == best.Blank && in.Seq < best.Seq {
			best = &in
		}
	}
	if best == nil {
		return "", errors.New("source: no other log")
	}
	return best.Path, nil
}

// resync repairs the image after logging_disabled: a fresh log (the
// oldest other one, or the current one with a single log), then a
// differential sync of the device; shipping goes on from the fresh log's
// rotation mark, which was logged before the sync read anything.
func (f *Follower) resync(ctx context.Context, cur LogInfo) (LogInfo, string, error) {
	cfg := &f.cfg
	next := cur.Path
	if len(cfg.Logs) > 1 {
		active, err := f.activeLog()
		if err != nil {
			return LogInfo{}, "", err
		}
		if next, err = f.oldestOther(active); err != nil {
			return LogInfo{}, "", err
		}
	}
	res, err := Rotate(ctx, RotateConfig{DMName: cfg.Ship.DMName, NextLog: next, Reuse: true, Log: f.log, dm: f.dm})
	if err != nil {
		return LogInfo{}, "", err
	}
	sc := cfg.Sync
	sc.Source = "/dev/mapper/" + cfg.Ship.DMName
	sc.Addr, sc.Client, sc.Mode, sc.Log = cfg.Ship.Addr, cfg.Ship.Client, blocksync.SyncDiff, f.log
	sc.MarkFirst, sc.DMName = false, ""
	if sc.RetryFor == 0 {
		sc.RetryFor = cfg.Ship.RetryFor
	}
	f.log.Warn("resync: differential sync of the device after logging_disabled", "device", sc.Source, "fresh_log", next, "mark", res.Label)
	st, err := blocksync.Sync(ctx, sc)
	if err != nil {
		return LogInfo{}, "", fmt.Errorf("source: resync of %s: %w", sc.Source, err)
	}
	f.mu.Lock()
	f.fst.Resyncs++
	f.fst.Rotations++
	f.mu.Unlock()
	f.log.Warn("resync done: the image has the device as of the fresh log's mark; shipping the fresh log from it",
		"bytes_written", st.WriteBytes, "bytes_discarded", st.DiscardBytes, "took", st.Elapsed.Round(time.Millisecond))
	info := LogInfo{Path: next, Seq: res.Seq, Label: res.Label}
	return info, res.Label, nil
}
