package replica

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// TestWriteThrough ships the same journal with windows written through
// to the image and without, and checks where the payloads went: through
// the staging log, or straight to the image; the image is the journal
// replayed either way, and a restart after the ship (with a source that
// then crashes the server mid-way through more windows) recovers it to a
// window boundary at or past the last ack.
func TestWriteThrough(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		through     int64
		wantStaging bool // payloads in the staging log
	}{
		{"off", 0, true},
		{"every-window", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wl := fixtures.DefaultWorkload(5, 512)
			wl.Entries = 400
			j := newJournal(t, wl)
			cfg := Config{CheckpointEvery: time.Hour, StagingRotate: 1 << 30, WriteThrough: tc.through}
			ts := startServer(t, cfg)
			ctx := t.Context()
			s := ts.dial(t, "t", 3)
			sent := openAndShip(ctx, t, s, j, shipOpts{limits: barrier.Limits{MaxEntries: 16}})
			last := sent[len(sent)-1]
			dir := filepath.Join(ts.cfg.Dir, "t")
			// Before the session ends (and its final checkpoint), the
			// staging log holds what went through it.
			ns, err := stagingFiles(dir)
			if err != nil || len(ns) != 1 {
				t.Fatalf("staging logs %v (%v), want one", ns, err)
			}
			fi, err := os.Stat(filepath.Join(dir, stagingName(ns[0])))
			if err != nil {
				t.Fatal(err)
			}
			payload := j.payloadBytes(t)
			if staged := fi.Size() >= payload; staged != tc.wantStaging {
				t.Errorf("staging log of %d bytes for %d payload bytes shipped: staged %v, want %v", fi.Size(), payload, staged, tc.wantStaging)
			}
			if !tc.wantStaging {
				// Every window with a payload was synced in the image
				// and checkpointed before its ack.
				st, err := loadState(dir)
				if err != nil {
					t.Fatal(err)
				}
				want := control.Position{Journal: j.id, NextEntry: last.last + 1, NextWindow: last.seq + 1}
				if st.Durable != want && st.Durable.NextWindow < last.seq {
					t.Errorf("state durable at %+v after the ack of window %d", st.Durable, last.seq)
				}
			}
			s.Close()
			ts.waitIdle(t)
			sameBytes(t, "image", readImage(t, ts.cfg.Dir, "t"), j.replayTo(t, -1))

			// A restart recovers the same image and position.
			ts.stop()
			ts2 := startServer(t, Config{Dir: ts.cfg.Dir, WriteThrough: tc.through})
			s2 := ts2.dial(t, "t", 1)
			task, err := openCall(ctx, s2, j.open(j.size))
			if err != nil {
				t.Fatal(err)
			}
			if want := (control.Position{Journal: j.id, NextEntry: last.last + 1, NextWindow: last.seq + 1}); task.Durable != want {
				t.Fatalf("after a restart: durable %+v, want %+v", task.Durable, want)
			}
			sameBytes(t, "image after a restart", readImage(t, ts.cfg.Dir, "t"), j.replayTo(t, -1))
		})
	}
}

// TestWriteThroughCrash crashes a server that writes large windows
// through and stages small ones, after the ack of a window, and checks
// that recovery gives a window boundary at or past the ack with the image
// exactly there (the crash comes between windows, so no window is half
// written), and that the source then finishes.
func TestWriteThroughCrash(t *testing.T) {
	t.Parallel()
	for _, crashAfter := range []uint64{5, 30} {
		t.Run(itoa(int(crashAfter)), func(t *testing.T) {
			wl := fixtures.DefaultWorkload(77+crashAfter, 512)
			wl.Entries = 600
			j := newJournal(t, wl)
			cfg := Config{CheckpointEvery: time.Hour, CheckpointBytes: 1 << 30, StagingRotate: 64 << 10, WriteThrough: 24 << 10}
			ts := startServer(t, cfg)
			ctx := t.Context()
			sent, acked := shipCrashing(ctx, t, ts, j, 2, crashAfter)
			ts2, _ := restartRecovered(t, ts, cfg, j, sent, acked)
			finishShip(ctx, t, ts2, j)
		})
	}
}

// payloadBytes sums the payloads of the journal's entries.
func (j *testJournal) payloadBytes(t testing.TB) int64 {
	t.Helper()
	r, err := journal.NewReader(bytes.NewReader(j.b), int64(len(j.b)))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		n += e.PayloadLen()
	}
	return n
}
