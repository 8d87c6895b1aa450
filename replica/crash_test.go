package replica

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
)

// TestCrashGroupCommit stops the server mid-stream as if it died (no
// final sync, no checkpoint), opens a new one on the directory and checks
// that recovery brought the image to a window boundary at or after the
// last acked window; then the source resumes and finishes.
func TestCrashGroupCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		crashAfter uint64
		cpBytes    int64 // checkpoint after this many bytes applied
	}{{3, 1 << 30}, {40, 1 << 30}, {90, 512 << 10}} {
		crashAfter := tc.crashAfter
		t.Run(itoa(int(crashAfter)), func(t *testing.T) {
			wl := fixtures.DefaultWorkload(31+crashAfter, 512)
			wl.Entries = 1000
			j := newJournal(t, wl)
			// Checkpoints rarely, so that recovery has windows to replay.
			cfg := Config{CheckpointEvery: time.Hour, CheckpointBytes: tc.cpBytes, StagingRotate: 128 << 10}
			ts := startServer(t, cfg)
			ctx := t.Context()
			sent, acked := shipCrashing(ctx, t, ts, j, 4, crashAfter)
			before, err := loadState(filepath.Join(ts.cfg.Dir, "t"))
			if err != nil {
				t.Fatal(err)
			}
			if before.Checkpoint.Staging == 0 || tc.cpBytes > j.size && before.Durable.NextWindow > 0 {
				t.Fatalf("state at the crash %+v: want a checkpoint in the staging log, at its start when none was due", before)
			}
			// A new server recovers the task when it opens the directory.
			ts2, durable := restartRecovered(t, ts, cfg, j, sent, acked)
			// The source resumes and finishes.
			if from := finishShip(ctx, t, ts2, j); from != durable {
				t.Fatalf("open after recovery: %+v, state says %+v", from, durable)
			}
		})
	}
}

// TestRetain: with Retain the staging logs stay and hold every window
// shipped; without it they go once checkpointed.
func TestRetain(t *testing.T) {
	t.Parallel()
	for _, retain := range []bool{false, true} {
		j := newJournal(t, fixtures.DefaultWorkload(41, 512))
		ts := startServer(t, Config{Retain: retain, CheckpointEvery: 10 * time.Millisecond, StagingRotate: 64 << 10})
		sent := shipAll(t, ts, "t", j)
		dir := filepath.Join(ts.cfg.Dir, "t")
		ns, _ := stagingFiles(dir)
		if !retain {
			if len(ns) > 1 {
				t.Fatalf("without retain: staging logs %v", ns)
			}
			continue
		}
		if len(ns) < 2 || ns[0] != 1 {
			t.Fatalf("with retain: staging logs %v", ns)
		}
		sc, err := scanStaging(dir, Checkpoint{Staging: 1, Entry: 1}, control.Position{Journal: j.id})
		if err != nil {
			t.Fatal(err)
		}
		if sc.windows != int64(len(sent)) {
			t.Fatalf("retained logs hold %d windows, %d were shipped (%s)", sc.windows, len(sent), sc.stop)
		}
	}
}
