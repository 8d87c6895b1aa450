package replica

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/parallel"
)

// modes are the durability modes, as Config tweaks.
var modes = []struct {
	name string
	cfg  Config
}{
	{"sync-per-window", Config{SyncPerWindow: true}},
	{"group-commit", Config{CheckpointEvery: 20 * time.Millisecond, StagingRotate: 256 << 10}},
	// Windows of 16 KiB or more go straight to the image, the others
	// through the staging log: the workloads mix both.
	{"write-through", Config{CheckpointEvery: 20 * time.Millisecond, StagingRotate: 256 << 10, WriteThrough: 16 << 10}},
}

func TestShip(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		for _, tc := range []struct {
			name     string
			ss       int
			streams  int
			maxFrame int
		}{
			{"512/1-stream", 512, 1, 0},
			{"512/4-streams/split", 512, 4, 2048},
			{"4096/3-streams/split", 4096, 3, 8192},
		} {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				wl := fixtures.DefaultWorkload(uint64(tc.ss+tc.streams), tc.ss)
				wl.Entries = 600
				if tc.ss == 4096 {
					wl.DeviceSize = 16 << 20
				}
				j := newJournal(t, wl)
				ts := startServer(t, m.cfg)
				s := ts.dial(t, "vol-1", tc.streams)
				ctx := t.Context()
				task, err := openCall(ctx, s, j.open(j.size))
				if err != nil {
					t.Fatal(err)
				}
				if !task.Created || task.ImageSize != j.size || task.Durable != (control.Position{Journal: j.id}) {
					t.Fatalf("open: %+v", task)
				}
				sent, err := shipJournal(ctx, s, j, task.Durable, shipOpts{maxFrame: tc.maxFrame, limits: barrier.Limits{MaxEntries: 16}})
				if err != nil {
					t.Fatal(err)
				}
				last := sent[len(sent)-1]
				if err := s.WaitAck(ctx, last.seq); err != nil {
					t.Fatal(err)
				}
				// The status call sees the durable position.
				var st control.Status
				if err := call(ctx, s, control.Request{Op: control.OpStatus}, &st); err != nil {
					t.Fatal(err)
				}
				want := control.Position{Journal: j.id, NextEntry: last.last + 1, NextWindow: last.seq + 1}
				if len(st.Tasks) != 1 || st.Tasks[0].Name != "vol-1" || st.Tasks[0].Durable != want || st.Tasks[0].ImageSize != j.size {
					t.Fatalf("status %+v, want durable %+v", st, want)
				}
				s.Close()
				ts.waitIdle(t)
				sameBytes(t, "image", readImage(t, ts.cfg.Dir, "vol-1"), j.replayTo(t, -1))
				st2, err := loadState(filepath.Join(ts.cfg.Dir, "vol-1"))
				if err != nil {
					t.Fatal(err)
				}
				if st2.Durable != want {
					t.Fatalf("state after the session: %+v, want durable %+v", st2, want)
				}
				// Without --retain no staging log outlives its checkpoint.
				if ns, _ := stagingFiles(filepath.Join(ts.cfg.Dir, "vol-1")); len(ns) > 1 {
					t.Errorf("staging logs %v left", ns)
				}
			})
		}
	}
}

// TestResume ships a journal in three sessions: the second and third
// resume from the durable position open reports.
func TestResume(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			wl := fixtures.DefaultWorkload(7, 512)
			wl.Entries = 900
			j := newJournal(t, wl)
			ts := startServer(t, m.cfg)
			ctx := t.Context()
			pos := control.Position{Journal: j.id}
			for i, stop := range []int64{300, 600, 0} {
				s := ts.dial(t, "t", 2)
				task, err := openCall(ctx, s, j.open(j.size))
				if err != nil {
					t.Fatal(err)
				}
				if task.Durable != pos || task.Created != (i == 0) {
					t.Fatalf("session %d: open says %+v, want durable %+v", i, task, pos)
				}
				sent, err := shipJournal(ctx, s, j, pos, shipOpts{stopAt: stop})
				if err != nil {
					t.Fatal(err)
				}
				last := sent[len(sent)-1]
				if err := s.WaitAck(ctx, last.seq); err != nil {
					t.Fatal(err)
				}
				s.Close()
				ts.waitIdle(t)
				pos = control.Position{Journal: j.id, NextEntry: last.last + 1, NextWindow: last.seq + 1}
				sameBytes(t, fmt.Sprintf("image after session %d", i), readImage(t, ts.cfg.Dir, "t"), j.replayTo(t, pos.NextEntry))
			}
			// Another journal starts at its entry 0; window numbers go on.
			s := ts.dial(t, "t", 1)
			task, err := openCall(ctx, s, control.Open{Journal: "other", SectorSize: 4096})
			if err != nil {
				t.Fatal(err)
			}
			if want := (control.Position{Journal: "other", NextWindow: pos.NextWindow}); task.Durable != want {
				t.Fatalf("open of another journal: %+v, want %+v", task.Durable, want)
			}
		})
	}
}

// TestRestart ships part of a journal, stops the server in order, starts
// a new one on the same directory and finishes.
func TestRestart(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			j := newJournal(t, fixtures.DefaultWorkload(11, 512))
			ts := startServer(t, m.cfg)
			ctx := t.Context()
			s := ts.dial(t, "t", 4)
			sent := openAndShip(ctx, t, s, j, shipOpts{stopAt: 200})
			ts.stop()
			// The client learns that the server shut down.
			if err := s.WaitAck(ctx, sent[len(sent)-1].seq+1); codeOfErr(err) != control.CodeShutdown {
				t.Errorf("after the server stopped: %v, want code SHUTDOWN", err)
			}
			cfg := m.cfg
			cfg.Dir = ts.cfg.Dir
			ts2 := startServer(t, cfg)
			if from := finishShip(ctx, t, ts2, j); from.NextEntry != sent[len(sent)-1].last+1 {
				t.Fatalf("after a restart: resumed from %+v, want entry %d", from, sent[len(sent)-1].last+1)
			}
		})
	}
}

func TestTaskBusy(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	j := newJournal(t, fixtures.DefaultWorkload(3, 512))
	ctx := t.Context()
	s1 := ts.dial(t, "busy", 2)
	if _, err := openCall(ctx, s1, j.open(j.size)); err != nil {
		t.Fatal(err)
	}
	s2 := ts.dial(t, "busy", 2)
	_, err := openCall(ctx, s2, j.open(j.size))
	t.Log(err)
	if codeOfErr(err) != control.CodeTaskBusy {
		t.Fatalf("second session: %v, want code TASK_BUSY", err)
	}
	// Another task is not affected, and once the first session is gone
	// the task can be opened again.
	s3 := ts.dial(t, "other", 1)
	if _, err := openCall(ctx, s3, j.open(j.size)); err != nil {
		t.Fatal(err)
	}
	// Once the first session has ended (its client closed it), a new
	// session for the task waits for it to let go instead of being
	// refused, even while the old one is still finishing.
	id := s1.ID()
	sent, err := shipJournal(ctx, s1, j, control.Position{Journal: j.id}, shipOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.WaitAck(ctx, sent[len(sent)-1].seq); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	ts.srv.mu.Lock()
	var old *parallel.Session
	for ps := range ts.srv.sessions {
		if ps.ID() == id {
			old = ps
		}
	}
	ts.srv.mu.Unlock()
	if old != nil {
		<-old.Done()
	}
	s4 := ts.dial(t, "busy", 1)
	task, err := openCall(ctx, s4, j.open(0))
	if err != nil {
		t.Fatal(err)
	}
	if task.Durable.NextEntry != sent[len(sent)-1].last+1 {
		t.Fatalf("reopened at %+v", task.Durable)
	}
	s3.Close()
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	ctx := t.Context()
	s := ts.dial(t, "exists", 1)
	if _, err := openCall(ctx, s, control.Open{Size: 1 << 20, Journal: "j", SectorSize: 512}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ts.waitIdle(t)
	for _, tc := range []struct {
		name string
		task string
		open control.Open
		code control.Code
	}{
		{"no such task", "missing", control.Open{Journal: "j", SectorSize: 512}, control.CodeNoTask},
		{"size mismatch", "exists", control.Open{Size: 2 << 20, Journal: "j", SectorSize: 512}, control.CodeMismatch},
		{"sector size mismatch", "exists", control.Open{Journal: "j", SectorSize: 4096}, control.CodeMismatch},
		{"bad sector size", "exists", control.Open{Journal: "j", SectorSize: 1000}, control.CodeBadRequest},
		{"negative size", "new", control.Open{Size: -1, Journal: "j", SectorSize: 512}, control.CodeBadRequest},
		{"journal id too long", "new", control.Open{Size: 1 << 20, Journal: string(make([]byte, 300)), SectorSize: 512}, control.CodeBadRequest},
		{"journal id not printable", "new", control.Open{Size: 1 << 20, Journal: "a\nb", SectorSize: 512}, control.CodeBadRequest},
		{"task name too long", "x123456789x123456789x123456789x123456789x123456789x123456789x12345", control.Open{Size: 1 << 20, Journal: "j", SectorSize: 512}, control.CodeBadTask},
		{"no task in the hello", "", control.Open{Size: 1 << 20, Journal: "j", SectorSize: 512}, control.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ts.dial(t, tc.task, 1)
			_, err := openCall(ctx, s, tc.open)
			if codeOfErr(err) != tc.code {
				t.Fatalf("open: %v, want %v", err, tc.code)
			}
			t.Log(err)
		})
	}
	// Nothing was created by the refused opens.
	des, _ := os.ReadDir(ts.cfg.Dir)
	for _, de := range des {
		if n := de.Name(); n != "exists" && n != ".lock" {
			t.Errorf("%s left in the server directory", n)
		}
	}
	// Unknown ops and bodies are refused, the session stays up.
	s = ts.dial(t, "", 1)
	for _, req := range []string{`{"op":"nosuch"}`, `not json`, `{"op":"open"}`} {
		if _, err := s.Call(ctx, []byte(req)); codeOfErr(err) != control.CodeBadRequest {
			t.Errorf("call %s: %v, want code BAD_REQUEST", req, err)
		}
	}
	var st control.Status
	if err := call(ctx, s, control.Request{Op: control.OpStatus}, &st); err != nil || len(st.Tasks) != 1 {
		t.Fatalf("status: %+v, %v", st, err)
	}
}

// TestDirLocked: two servers cannot share a directory.
func TestDirLocked(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	if _, err := Open(t.Context(), Config{Dir: ts.cfg.Dir}); err == nil || !errorsIs(err, ErrDirBusy) {
		t.Fatalf("second server on the directory: %v, want ErrDirBusy", err)
	}
}

// TestWindowBeforeOpen: a window needs an open first.
func TestWindowBeforeOpen(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	s := ts.dial(t, "t", 1)
	ctx := t.Context()
	if err := s.EndWindow(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitAck(ctx, 0); codeOfErr(err) != control.CodeNotOpen {
		t.Fatalf("window before open: %v, want code NOT_OPEN", err)
	}
	_ = parallel.DefaultCredit
}

// TestSmallCredit ships through a credit that holds only a few windows:
// the server's memory is bounded by it, and nothing waits for more.
func TestSmallCredit(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			wl := fixtures.DefaultWorkload(13, 512)
			wl.Entries = 1500
			j := newJournal(t, wl)
			const credit = 256 << 10
			ts := startServerCredit(t, m.cfg, credit)
			ctx := t.Context()
			s := ts.dial(t, "t", 4)
			openAndShip(ctx, t, s, j, shipOpts{limits: barrier.Limits{MaxEntries: 8}})
			if st := s.Stats(); st.MaxInFlight > credit || st.CreditWaits == 0 {
				t.Fatalf("in flight at most %d bytes with a credit of %d, %d waits for credit", st.MaxInFlight, credit, st.CreditWaits)
			}
			s.Close()
			ts.waitIdle(t)
			sameBytes(t, "image", readImage(t, ts.cfg.Dir, "t"), j.replayTo(t, -1))
		})
	}
}
