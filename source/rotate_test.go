package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// fakeRotateDM is one log-writes target whose table Rotate reads and
// reloads.
type fakeRotateDM struct {
	table    []devio.DMTarget
	reloads  [][]devio.DMTarget
	marks    []string
	markErrs int
}

func (f *fakeRotateDM) Table(name string) ([]devio.DMTarget, error) {
	if name != "vol" {
		return nil, &devio.Error{Op: "dm table", Path: name, Offset: -1, Err: unix.ENXIO}
	}
	return f.table, nil
}

func (f *fakeRotateDM) Reload(name string, ts []devio.DMTarget) error {
	f.reloads = append(f.reloads, ts)
	f.table = ts
	return nil
}

func (f *fakeRotateDM) Mark(name, label string) error {
	if f.markErrs > 0 {
		f.markErrs--
		return errors.New("busy")
	}
	f.marks = append(f.marks, label)
	return nil
}

// journalWithMark is a small journal that starts with a rotation mark of
// seq (none if 0).
func journalWithMark(t *testing.T, seq uint64, seed uint64) []byte {
	t.Helper()
	var buf fixtures.WriterAtBuffer
	w, err := journal.NewWriter(&buf, 512)
	if err != nil {
		t.Fatal(err)
	}
	if seq > 0 {
		if err := w.Append(journal.Entry{Flags: journal.FlagMark, Label: LogLabel(seq)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	wl := fixtures.DefaultWorkload(seed, 512)
	wl.Entries = 50
	if err := wl.Write(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mm(l *devio.Loop) string {
	d, _ := blockDev(l.Path())
	return fmt.Sprintf("%d:%d", unix.Major(d), unix.Minor(d))
}

func TestRotate(t *testing.T) {
	requireRoot(t)
	RotateLockDir = t.TempDir()
	data, _ := fixtures.Loop(t, "data", nil, 8<<20, devio.LoopOptions{})
	cur, _ := fixtures.Loop(t, "a", journalWithMark(t, 3, 1), 4<<20, devio.LoopOptions{})
	stale := journalWithMark(t, 1, 2)
	next, nextFile := fixtures.Loop(t, "b", bytes.Repeat([]byte{0xAA}, 2<<20), 4<<20, devio.LoopOptions{})
	// The next log holds an older journal: what the check is shown.
	if f, err := os.OpenFile(nextFile, os.O_WRONLY, 0); err == nil {
		f.WriteAt(stale, 0)
		f.Close()
	}
	table := func(log *devio.Loop) []devio.DMTarget {
		return []devio.DMTarget{{Start: 0, Length: 16384, Type: "log-writes", Status: mm(data) + " " + mm(log)}}
	}
	ctx := t.Context()

	// Refusals change nothing.
	refused := errors.New("not shipped yet")
	for _, tc := range []struct {
		name string
		cfg  RotateConfig
		want error
	}{
		{"the data device", RotateConfig{DMName: "vol", NextLog: data.Path()}, ErrSameLog},
		{"the current log", RotateConfig{DMName: "vol", NextLog: cur.Path()}, ErrSameLog},
		{"the check says no", RotateConfig{DMName: "vol", NextLog: next.Path(), Check: func(n, c LogInfo) error {
			if n.Blank || n.Seq != 1 || c.Seq != 3 || c.Path != cur.Path() {
				return fmt.Errorf("check shown next %+v, current %+v", n, c)
			}
			return refused
		}}, refused},
		{"not a block device", RotateConfig{DMName: "vol", NextLog: nextFile}, nil},
		{"no such target", RotateConfig{DMName: "other", NextLog: next.Path()}, unix.ENXIO},
	} {
		dm := &fakeRotateDM{table: table(cur)}
		tc.cfg.dm = dm
		_, err := Rotate(ctx, tc.cfg)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: Rotate: %v, want %v", tc.name, err, tc.want)
		}
		if len(dm.reloads) != 0 || len(dm.marks) != 0 {
			t.Errorf("%s: refused, but reloaded %v, marked %v", tc.name, dm.reloads, dm.marks)
		}
	}
	if b, _ := os.ReadFile(nextFile); !bytes.Equal(b[:len(stale)], stale) {
		t.Fatal("a refused rotation wrote to the next log")
	}
	dm := &fakeRotateDM{table: []devio.DMTarget{{Length: 8, Type: "linear", Status: mm(data) + " 0"}}}
	if _, err := Rotate(ctx, RotateConfig{DMName: "vol", NextLog: next.Path(), dm: dm}); !errors.Is(err, ErrNotLogWrites) {
		t.Errorf("a linear target: %v", err)
	}

	// The rotation: zeroed start, table with the next log, mark seq 4.
	dm = &fakeRotateDM{table: table(cur), markErrs: 2}
	res, err := Rotate(ctx, RotateConfig{DMName: "vol", NextLog: next.Path(), dm: dm, Check: func(n, c LogInfo) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if seq, ok := ParseLogLabel(res.Label); !ok || seq != 4 || res.Seq != 4 || res.PreviousSeq != 3 || res.Previous != cur.Path() || res.Data != data.Path() {
		t.Fatalf("result %+v", res)
	}
	if len(dm.reloads) != 1 || dm.reloads[0][0].Status != mm(data)+" "+mm(next) || dm.reloads[0][0].Length != 16384 || dm.reloads[0][0].Type != "log-writes" {
		t.Fatalf("reloaded %+v", dm.reloads)
	}
	if len(dm.marks) != 1 || dm.marks[0] != res.Label {
		t.Fatalf("marks %q, label %q", dm.marks, res.Label)
	}
	b, _ := os.ReadFile(nextFile)
	if !bytes.Equal(b[:1<<20], make([]byte, 1<<20)) || b[1<<20] != 0xAA {
		t.Fatal("the next log's first MiB (and only it) should be zeroed")
	}
	if in, err := ScanLog(next.Path()); err != nil || !in.Blank {
		t.Fatalf("the next log after the rotation: %+v, %v", in, err)
	}
	// Back to the first log, no longer current: no Reuse needed. The
	// fake target wrote nothing to the log it switched to, so ScanLog
	// finds that one blank (seq 0) and the next is seq 1.
	res, err = Rotate(ctx, RotateConfig{DMName: "vol", NextLog: cur.Path(), dm: dm})
	if err != nil || res.PreviousSeq != 0 || res.Seq != 1 {
		t.Fatalf("rotating back: %+v, %v", res, err)
	}
	// Reuse: the current log itself.
	res, err = Rotate(ctx, RotateConfig{DMName: "vol", NextLog: cur.Path(), Reuse: true, dm: dm})
	if err != nil || res.Next != cur.Path() {
		t.Fatalf("reuse: %+v, %v", res, err)
	}
}

// Two rotations of one target do not interleave: the second waits for the
// lock (here until its context ends).
func TestRotateLock(t *testing.T) {
	RotateLockDir = t.TempDir()
	unlock, err := lockRotation(t.Context(), "vol")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	dm := &fakeRotateDM{}
	if _, err := Rotate(ctx, RotateConfig{DMName: "vol", NextLog: "/dev/null", dm: dm}); err == nil || !strings.Contains(err.Error(), "rotation lock") {
		t.Fatalf("Rotate while another holds the lock: %v", err)
	}
	unlock()
	if _, err := Rotate(t.Context(), RotateConfig{DMName: "vol", NextLog: "/dev/null", dm: dm}); err == nil || strings.Contains(err.Error(), "rotation lock") {
		t.Fatalf("Rotate once the lock is free: %v (want the table's error)", err)
	}
	if _, err := Rotate(t.Context(), RotateConfig{DMName: "a/b", NextLog: "/dev/null", dm: dm}); err == nil {
		t.Fatal("Rotate accepted a name with a slash")
	}
}
