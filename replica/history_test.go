package replica

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// journalMarks lists the marks of j: label and entry index.
func journalMarks(t *testing.T, j *testJournal) (labels []string, at []int64) {
	t.Helper()
	marks, err := fixtures.Marks(j.b)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range marks {
		labels, at = append(labels, m.Label), append(at, m.Index)
	}
	return labels, at
}

// readAll reads the whole image a session's block calls see.
func readAll(t *testing.T, s *parallel.Session, size int64) []byte {
	t.Helper()
	img := make([]byte, size)
	for off := int64(0); off < size; off += control.MaxReadLength {
		r := &control.Read{Offset: off, Length: min(control.MaxReadLength, size-off), Granularity: 4096}
		resp, err := s.Call(t.Context(), control.Marshal(control.Request{Op: control.OpRead, Read: r}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ParseRead(resp, img[off:off+r.Length]); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// atOpen is an open at a mark.
func atOpen(label string) control.Open {
	return control.Open{Journal: "at-test", SectorSize: 512, At: label}
}

// TestOpenAtMark: a task shipped in two sessions with a server restart
// between them, its staging logs retained and rotated often; opening it
// at each of its marks reads the journal replayed up to that mark, and
// the temporary state is gone when the session ends.
func TestOpenAtMark(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(61, 512)
	wl.Entries = 600
	j := newJournal(t, wl)
	labels, at := journalMarks(t, j)
	if len(labels) < 4 {
		t.Fatalf("the workload has %d marks, the test needs a few", len(labels))
	}
	cfg := Config{Retain: true, CheckpointEvery: 10 * time.Millisecond, StagingRotate: 32 << 10}
	ts := startServer(t, cfg)
	ctx := t.Context()
	s := ts.dial(t, "t", 3)
	openAndShip(ctx, t, s, j, shipOpts{stopAt: at[len(at)/2]})
	s.Close()
	ts.stop()
	cfg.Dir = ts.cfg.Dir
	ts = startServer(t, cfg)
	s = ts.dial(t, "t", 3)
	openAndShip(ctx, t, s, j, shipOpts{})
	s.Close()
	ts.waitIdle(t)
	dir := filepath.Join(cfg.Dir, "t")
	if ns, _ := stagingFiles(dir); len(ns) < 3 {
		t.Fatalf("staging logs %v: the test wants several", ns)
	}
	for _, k := range []int{0, 1, len(labels) / 2, len(labels) - 1} {
		s := ts.dial(t, "t", 2)
		got, err := openCall(ctx, s, atOpen(labels[k]))
		if err != nil {
			t.Fatalf("open at %s: %v", labels[k], err)
		}
		if got.At != labels[k] || got.ImageSize != j.size {
			t.Fatalf("open at %s answered %+v", labels[k], got)
		}
		sameBytes(t, "the state at "+labels[k], readAll(t, s, j.size), j.replayTo(t, at[k]))
		s.Close()
		ts.waitIdle(t)
		if m, _ := filepath.Glob(filepath.Join(dir, atPrefix+"*")); len(m) > 0 {
			t.Fatalf("left behind after the session: %v", m)
		}
	}
	// The live image is untouched by all that.
	sameBytes(t, "the image", readImage(t, cfg.Dir, "t"), j.replayTo(t, -1))
}

// TestOpenAtRefused: a mark that is not there, a window on a session
// opened at a mark, a task without a full history, a task that does not
// exist.
func TestOpenAtRefused(t *testing.T) {
	t.Parallel()
	ship := func(t *testing.T, ts *testServer, task string, j *testJournal) {
		s := ts.dial(t, task, 2)
		tk, err := openCall(t.Context(), s, j.open(j.size))
		if err != nil {
			t.Fatal(err)
		}
		sent, err := shipJournal(t.Context(), s, j, tk.Durable, shipOpts{})
		if err == nil {
			err = s.WaitAck(t.Context(), sent[len(sent)-1].seq)
		}
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		ts.waitIdle(t)
	}
	j := newJournal(t, fixtures.DefaultWorkload(62, 512))
	labels, _ := journalMarks(t, j)
	if len(labels) == 0 {
		t.Fatal("no marks in the workload")
	}
	ts := startServer(t, Config{Retain: true})
	ship(t, ts, "t", j)
	for name, tc := range map[string]struct {
		task, label string
		code        control.Code
	}{
		"no such mark": {"t", "no such mark", control.CodeNoHistory},
		"no such task": {"nothing", labels[0], control.CodeNoTask},
	} {
		t.Run(name, func(t *testing.T) {
			s := ts.dial(t, tc.task, 1)
			if _, err := openCall(t.Context(), s, atOpen(tc.label)); codeOfErr(err) != tc.code {
				t.Fatalf("open at %q of %s: %v, want %v", tc.label, tc.task, err, tc.code)
			}
		})
	}
	t.Run("window", func(t *testing.T) {
		s := ts.dial(t, "t", 1)
		if _, err := openCall(t.Context(), s, atOpen(labels[0])); err != nil {
			t.Fatal(err)
		}
		before := readImage(t, ts.cfg.Dir, "t")
		if err := s.SendFrame(t.Context(), parallel.Frame{Window: 0, Entry: 0, Payload: control.AppendEntry(nil, journal.Entry{Sector: 0, NrSectors: 1}, make([]byte, 512))}); err != nil {
			t.Fatal(err)
		}
		if err := s.EndWindow(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitAck(t.Context(), 0); codeOfErr(err) != control.CodeReadOnly {
			t.Fatalf("a window on a session opened at a mark: %v, want code READ_ONLY", err)
		}
		ts.waitIdle(t)
		sameBytes(t, "the image after a refused window", readImage(t, ts.cfg.Dir, "t"), before)
	})
	// The same task on a server without Retain loses its history for good.
	ts.stop()
	ts2 := startServer(t, Config{Dir: ts.cfg.Dir})
	s := ts2.dial(t, "t", 1)
	if _, err := openCall(t.Context(), s, atOpen(labels[0])); codeOfErr(err) != control.CodeNoHistory {
		t.Fatalf("open at a mark after a server without retain: %v, want NO_HISTORY", err)
	}
	s.Close()
	ts2.stop()
	ts3 := startServer(t, Config{Dir: ts.cfg.Dir, Retain: true})
	s = ts3.dial(t, "t", 1)
	if _, err := openCall(t.Context(), s, atOpen(labels[0])); codeOfErr(err) != control.CodeNoHistory {
		t.Fatalf("open at a mark with retain again, history lost before: %v, want NO_HISTORY", err)
	}
}

// TestAppliedMarks: the last maxAppliedMarks labels are remembered, older
// ones forgotten; a wait ends when its mark is noted, and not before. It
// runs in a synctest bubble: the short waits time out on the bubble's
// clock, and synctest.Wait says when the late wait is blocked.
func TestAppliedMarks(t *testing.T) {
	synctest.Test(t, testAppliedMarks)
}

func testAppliedMarks(t *testing.T) {
	var m appliedMarks
	win := func(labels ...string) *window {
		w := &window{}
		for _, l := range labels {
			w.entries = append(w.entries, journal.Entry{Sector: 8, NrSectors: 1}, journal.Entry{Flags: journal.FlagMark, Label: l})
		}
		return w
	}
	for i := range maxAppliedMarks + 10 {
		m.note(win(fmt.Sprint("tick-", i)))
	}
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	for label, want := range map[string]bool{
		"tick-0":                               false, // forgotten
		"tick-9":                               false,
		"tick-10":                              true, // the oldest kept
		fmt.Sprint("tick-", maxAppliedMarks+9): true,
		"never":                                false,
	} {
		if err := m.wait(short(), label); (err == nil) != want {
			t.Errorf("wait for %s: %v, want found %v", label, err, want)
		}
	}
	done := make(chan error, 1)
	go func() { done <- m.wait(t.Context(), "late") }()
	synctest.Wait()
	m.note(win("other"))
	synctest.Wait()
	select {
	case err := <-done:
		t.Fatalf("the wait for mark late ended before it was noted: %v", err)
	default:
	}
	m.note(win("other", "late"))
	synctest.Wait()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("the wait did not end when its mark was noted")
	}
}
