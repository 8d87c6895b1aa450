package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/fixtures/replicatest"
	"github.com/logship/logship/journal"
)

func TestLogLabel(t *testing.T) {
	t.Parallel()
	l := LogLabel(7)
	if seq, ok := ParseLogLabel(l); !ok || seq != 7 || len(l) > journal.MinSectorSize-33 {
		t.Fatalf("LogLabel(7) = %q, parsed %d %v", l, seq, ok)
	}
	if LogLabel(7) == l {
		t.Fatal("two rotation labels are the same")
	}
	for _, bad := range []string{"", "logship-log.", "logship-log.0.ab", "logship-log.x.ab", "logship-log.3", "logship-log.3.", "tick", "logship-log-3.ab"} {
		if _, ok := ParseLogLabel(bad); ok {
			t.Errorf("ParseLogLabel(%q) accepted", bad)
		}
	}
}

// rotatedLog writes, into path, a log the way the kernel writes a rotated
// one: zeroed superblock over stale bytes, then the rotation mark (unless
// label is empty), the workload, and the end mark.
func rotatedLog(ctx context.Context, path, label string, wl fixtures.Workload, pause time.Duration) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(make([]byte, 1<<20), 0) // what Rotate zeroes
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return fixtures.WriteLikeKernel(ctx, path, wl, label, pause)
}

// TestFollowerRotations follows three generations of two log files, the
// second and third started by rotation marks, the first file reused for
// the third once the Follower has moved past it: the image is every
// journal replayed in order, and the window numbers go on across logs.
func TestFollowerRotations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logA, logB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	for _, p := range []string{logA, logB} {
		if err := os.WriteFile(p, make([]byte, 8<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const size = 4 << 20
	gens := []struct {
		path, label string
		seed        uint64
	}{{logA, "", 31}, {logB, LogLabel(1), 32}, {logA, LogLabel(2), 33}}
	srv := replicatest.Start(t, filepath.Join(dir, "srv"), "127.0.0.1:0")
	cfg := config(t, "", srv.Addr, 3, size)
	cfg.Tail = journal.TailOptions{Poll: 5 * time.Millisecond, Settle: 4 * time.Millisecond}
	f, err := NewFollower(FollowConfig{Ship: cfg, Logs: []string{logB, logA}, SuccessorWait: 2 * time.Second, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer func() {
			if werr != nil {
				cancel()
			}
		}()
		for i, g := range gens {
			if i == 2 {
				// Reuse a.log only once the Follower is past it (what
				// the rotation's check makes sure of).
				for f.Stats().Log != logB {
					if ctx.Err() != nil {
						werr = ctx.Err()
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			wl := fixtures.DefaultWorkload(g.seed, 512)
			wl.Entries, wl.DeviceSize = 500, size
			if werr = rotatedLog(ctx, g.path, g.label, wl, 2*time.Millisecond); werr != nil {
				return
			}
		}
	})
	st, err := f.Run(ctx)
	wg.Wait()
	if werr != nil {
		t.Fatalf("writing the logs: %v", werr)
	}
	if err != nil {
		t.Fatalf("Run: %v (stats %+v)", err, st)
	}
	want := make([]byte, size)
	total := 0
	for _, g := range gens {
		wl := fixtures.DefaultWorkload(g.seed, 512)
		wl.Entries, wl.DeviceSize = 500, size
		j, _ := wl.Bytes()
		if err := fixtures.ReplaySequential(j, want, -1); err != nil {
			t.Fatal(err)
		}
		total += 500 + 1
		if g.label != "" {
			total++
		}
	}
	sameImage(t, srv.Image(t, "t"), want)
	switch {
	case st.Logs != 3 || st.Rotations != 2 || st.Seq != 2 || st.Log != logA:
		t.Fatalf("stats: %d logs, %d rotations, now seq %d of %s", st.Logs, st.Rotations, st.Seq, st.Log)
	case st.Entries != int64(total):
		t.Fatalf("%d entries sent, the three logs hold %d", st.Entries, total)
	}
	// The durable position is in the third journal, and its window number
	// counts every window of all three.
	ts, err := serverStatus(t.Context(), srv.Addr, "t")
	if err != nil {
		t.Fatal(err)
	}
	if ts.Durable.NextEntry != 502 || ts.Durable.NextWindow != uint64(st.Windows) || ts.Durable.Journal != st.Journal {
		t.Fatalf("durable %+v; stats: %d windows, journal %s", ts.Durable, st.Windows, st.Journal)
	}
}

// TestFollowerResume: a Follower stopped in the middle of an old log,
// after the next one began, starts again from the old one's durable
// position and then goes on with the next.
func TestFollowerResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logA, logB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	const size = 4 << 20
	wlA := fixtures.DefaultWorkload(41, 512)
	wlA.Entries, wlA.DeviceSize, wlA.MaxWriteSectors = 6000, size, 8
	wlB := wlA
	wlB.Seed = 42
	ctx := t.Context()
	if err := rotatedLog(ctx, logA, "", wlA, 0); err != nil {
		t.Fatal(err)
	}
	if err := rotatedLog(ctx, logB, LogLabel(1), wlB, 0); err != nil {
		t.Fatal(err)
	}
	srv := replicatest.Start(t, filepath.Join(dir, "srv"), "127.0.0.1:0")
	cfg := config(t, "", srv.Addr, 2, size)
	cfg.Tail = journal.TailOptions{Poll: 5 * time.Millisecond, Settle: 4 * time.Millisecond}
	cfg.Limits.MaxEntries = 20
	cfg.BytesPerSecond = 8 << 20
	run := func(stopAt int64) FollowStats {
		f, err := NewFollower(FollowConfig{Ship: cfg, Logs: []string{logA, logB}, SuccessorWait: time.Second, Poll: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if stopAt > 0 {
			go func() {
				for f.Stats().Durable.NextEntry < stopAt && rctx.Err() == nil {
					time.Sleep(time.Millisecond)
				}
				cancel()
			}()
		}
		st, err := f.Run(rctx)
		if stopAt > 0 && !errors.Is(err, context.Canceled) || stopAt == 0 && err != nil {
			t.Fatalf("Run (stop at %d): %v", stopAt, err)
		}
		return st
	}
	first := run(300)
	if first.Log != logA || first.Durable.NextEntry >= 6001 {
		t.Fatalf("the first run stopped at entry %d of %s", first.Durable.NextEntry, first.Log)
	}
	second := run(0)
	if second.Logs != 2 || second.Log != logB || second.Durable.NextEntry != 6002 {
		t.Fatalf("the second run: %d logs, ended in %s at entry %d", second.Logs, second.Log, second.Durable.NextEntry)
	}
	want := make([]byte, size)
	for _, wl := range []fixtures.Workload{wlA, wlB} {
		j, _ := wl.Bytes()
		fixtures.ReplaySequential(j, want, -1)
	}
	sameImage(t, srv.Image(t, "t"), want)
	if left := 6001 - first.Durable.NextEntry + 6002; second.Entries > left {
		t.Fatalf("the second run sent %d entries; %d were left", second.Entries, left)
	}
}

func TestNewFollowerRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "log")
	os.WriteFile(p, nil, 0o644)
	base := Config{Addr: "127.0.0.1:1", Client: config(t, "", "", 1, 0).Client}
	for _, tc := range []struct {
		name string
		cfg  FollowConfig
	}{
		{"no logs", FollowConfig{Ship: base}},
		{"missing log", FollowConfig{Ship: base, Logs: []string{filepath.Join(dir, "nope")}}},
		{"rotate without a target", FollowConfig{Ship: base, Logs: []string{p, p + "2"}, RotateAt: 0.5}},
		{"rotate with one log", FollowConfig{Ship: func() Config { c := base; c.DMName = "x"; return c }(), Logs: []string{p}, RotateAt: 0.5}},
		{"rotate at 1", FollowConfig{Ship: base, Logs: []string{p}, RotateAt: 1}},
		{"resync without a target", FollowConfig{Ship: base, Logs: []string{p}, ResyncOnGap: true}},
		{"no task", FollowConfig{Ship: Config{Addr: "127.0.0.1:1"}, Logs: []string{p}}},
	} {
		if _, err := NewFollower(tc.cfg); err == nil {
			t.Errorf("%s: NewFollower accepted %+v", tc.name, tc.cfg)
		}
	}
}
