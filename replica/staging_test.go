package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// testWindows cuts j into windows as the server would hold them.
func testWindows(t testing.TB, j *testJournal, limits barrier.Limits) []*window {
	t.Helper()
	r, err := journal.NewReader(bytes.NewReader(j.b), int64(len(j.b)))
	if err != nil {
		t.Fatal(err)
	}
	var ws []*window
	for bw, err := range barrier.Split(r, limits) {
		if err != nil {
			t.Fatal(err)
		}
		w := &window{seq: uint64(len(ws)), journal: j.id, first: bw.First(), next: bw.Last() + 1, entries: bw.Entries}
		for _, e := range bw.Entries {
			d := make([]byte, e.PayloadLen())
			if err := r.ReadPayload(e, d); err != nil {
				t.Fatal(err)
			}
			w.data = append(w.data, d)
			w.bytes += int64(len(d))
		}
		ws = append(ws, w)
	}
	return ws
}

// writeStaging appends ws to new staging logs in dir, syncing every few
// windows.
func writeStaging(t testing.TB, dir string, j *testJournal, ws []*window, rotate int64) {
	t.Helper()
	l, err := createStaging(dir, 1, j.id, j.ss, rotate)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	for i, w := range ws {
		if err := l.append(w); err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 || i == len(ws)-1 {
			if err := l.sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestStagingScan(t *testing.T) {
	t.Parallel()
	j := newJournal(t, fixtures.DefaultWorkload(5, 512))
	ws := testWindows(t, j, barrier.Limits{MaxEntries: 8})
	dir := t.TempDir()
	writeStaging(t, dir, j, ws, 32<<10)
	ns, err := stagingFiles(dir)
	if err != nil || len(ns) < 3 {
		t.Fatalf("staging logs %v (%v), want rotation into several", ns, err)
	}
	start := control.Position{Journal: j.id}
	sc, err := scanStaging(dir, Checkpoint{Staging: 1, Entry: 1}, start)
	if err != nil {
		t.Fatal(err)
	}
	if sc.windows != int64(len(ws)) || sc.pos != ws[len(ws)-1].pos() || sc.sectorSize != 512 {
		t.Fatalf("scan found %d windows to %+v, want %d to %+v (%s)", sc.windows, sc.pos, len(ws), ws[len(ws)-1].pos(), sc.stop)
	}
	// From every checkpoint, the rest.
	for k, w := range ws {
		sc, err := scanStaging(dir, Checkpoint{Staging: w.stagingFile, Entry: w.stagingNext}, w.pos())
		if err != nil {
			t.Fatal(err)
		}
		if sc.windows != int64(len(ws)-k-1) || sc.pos != ws[len(ws)-1].pos() {
			t.Fatalf("from window %d: %d windows to %+v (%s)", k, sc.windows, sc.pos, sc.stop)
		}
	}
	// A checkpoint that does not match the log is corruption, not a torn tail.
	if _, err := scanStaging(dir, Checkpoint{Staging: 1, Entry: 1}, control.Position{Journal: j.id, NextWindow: 3, NextEntry: 30}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("scan from a wrong position: %v, want ErrCorrupt", err)
	}
	if _, err := scanStaging(dir, Checkpoint{Staging: 1, Entry: 1 << 30}, start); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("checkpoint past the log: %v, want ErrCorrupt", err)
	}
	// A new journal's windows start at entry 0 after another journal.
	sc, err = scanStaging(dir, Checkpoint{Staging: 1, Entry: 1}, control.Position{Journal: "older", NextEntry: 500})
	if err != nil || sc.windows != int64(len(ws)) {
		t.Fatalf("scan after another journal: %d windows, %v", sc.windows, err)
	}
}

// markEnds lists, for the staging log at p, the byte offset where each
// window's closing mark ends.
func markEnds(t testing.TB, p string) []int64 {
	t.Helper()
	var ends []int64
	for _, m := range stagedWindows(t, p) {
		ends = append(ends, m.end)
	}
	return ends
}

// stagedWindow is where a window lies in a staging log.
type stagedWindow struct {
	first, firstOff int64 // its first staging entry, and that entry's offset
	end             int64 // the byte offset where its mark ends
	mark            windowMark
}

// stagedWindows lists the windows of the staging log at p.
func stagedWindows(t testing.TB, p string) []stagedWindow {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := journal.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var ws []stagedWindow
	first, firstOff := int64(1), int64(0)
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		if e.Index == 1 {
			firstOff = e.Offset
		}
		if m, ok := parseWindowMark(e.Label); ok {
			ws = append(ws, stagedWindow{first: first, firstOff: firstOff, end: e.NextOffset(), mark: m})
			first, firstOff = e.Index+1, e.NextOffset()
		}
	}
	return ws
}

// TestStagingTornTail cuts the last staging log at every sector and
// corrupts bytes in it. A cut, zeros over the tail, or a flipped byte in a
// window that no later window mark shows was durable (the last batch) is a
// torn tail: the scan ends at the last intact window before the damage,
// never after it, and does not fail. A flipped byte in a window that was
// durable before a later window was appended is corruption: a
// *StagingError naming the file, the window's first entry and its offset.
func TestStagingTornTail(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(6, 512)
	wl.Entries, wl.MaxWriteSectors = 200, 8
	j := newJournal(t, wl)
	ws := testWindows(t, j, barrier.Limits{MaxEntries: 6})
	dir := t.TempDir()
	writeStaging(t, dir, j, ws, 200<<10)
	ns, _ := stagingFiles(dir)
	if len(ns) < 2 {
		t.Fatalf("staging logs %v, want several", ns)
	}
	lastNum := ns[len(ns)-1]
	p := filepath.Join(dir, stagingName(lastNum))
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ends := markEnds(t, p)
	if len(ends) < 5 {
		t.Fatalf("%d windows in the last staging log, want more to cut", len(ends))
	}
	before := 0 // windows in the earlier files
	for _, w := range ws {
		if w.stagingFile < lastNum {
			before++
		}
	}
	start := control.Position{Journal: j.id}
	start0 := start
	check := func(what string, data []byte, want int) {
		t.Helper()
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		sc, err := scanStaging(dir, Checkpoint{Staging: 1, Entry: 1}, start)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		wantPos := start
		if want > 0 {
			wantPos = ws[want-1].pos()
		}
		if sc.windows != int64(want) || sc.pos != wantPos {
			t.Fatalf("%s: %d windows to %+v, want %d (%s)", what, sc.windows, sc.pos, want, sc.stop)
		}
	}
	for cut := 0; cut <= len(orig); cut += 512 {
		want := before
		for _, e := range ends {
			if e <= int64(cut) {
				want++
			}
		}
		check("cut at "+itoa(cut), orig[:cut], want)
	}
	// A flipped byte in window k's entries or mark: the scan stops before
	// k, or fails when a later mark says k was durable.
	sws := stagedWindows(t, p)
	corrupted, torn := 0, 0
	for k, sw := range sws {
		start := int64(512)
		if k > 0 {
			start = ends[k-1]
		}
		durable := false // a later window's mark says k was durable
		for _, later := range sws[k+1:] {
			durable = durable || later.mark.synced > sw.first
		}
		for _, off := range []int64{start + 512, (start + sw.end) / 2, sw.end - 512 + 40} { // an entry, a payload, the mark's label
			if off <= start || off >= sw.end {
				continue
			}
			bad := bytes.Clone(orig)
			bad[off] ^= 0x40
			what := "byte " + itoa(int(off)) + " flipped in window " + itoa(k)
			if !durable {
				torn++
				check(what, bad, before+k)
				continue
			}
			corrupted++
			if err := os.WriteFile(p, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := scanStaging(dir, Checkpoint{Staging: 1, Entry: 1}, start0)
			var se *StagingError
			if !errors.As(err, &se) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: %v, want a StagingError", what, err)
			}
			if se.Path != p || se.Entry != sw.first || se.Offset != sw.firstOff {
				t.Fatalf("%s: error names %s entry %d offset %d, want %s entry %d offset %d (%v)", what, se.Path, se.Entry, se.Offset, p, sw.first, sw.firstOff, err)
			}
		}
	}
	if corrupted == 0 || torn == 0 {
		t.Fatalf("%d flips in durable windows, %d in the last batch: want some of each", corrupted, torn)
	}
	// Zeros over the tail (what a file system shows after a crash).
	bad := bytes.Clone(orig)
	clear(bad[ends[len(ends)/2]:])
	check("zeroed tail", bad, before+len(ends)/2+1)
	// A superblock whose count lost bits, ending the log after window 0
	// of the file: the marks past it show it was durable.
	bad = bytes.Clone(orig)
	binary.LittleEndian.PutUint64(bad[16:], uint64(sws[1].first))
	if err := os.WriteFile(p, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	var se *StagingError
	if _, err := scanStaging(dir, Checkpoint{Staging: 1, Entry: 1}, start); !errors.As(err, &se) || se.Entry != sws[1].first {
		t.Fatalf("superblock counting %d entries: %v, want a StagingError at that entry", sws[1].first, err)
	}
	// A missing last log, after logs that were durable: a torn tail (its
	// creation may not have been durable).
	os.WriteFile(p, orig, 0o600)
	os.Rename(p, filepath.Join(dir, "gone"))
	if sc, err := scanStaging(dir, Checkpoint{Staging: 1, Entry: 1}, start); err != nil || sc.windows != int64(before) {
		t.Fatalf("without the last log: %d windows, %v; want %d", sc.windows, err, before)
	}
	os.Rename(filepath.Join(dir, "gone"), p)
	// A missing first log, before a log that was synced: corruption.
	os.Rename(filepath.Join(dir, stagingName(1)), filepath.Join(dir, "gone"))
	sc, err := scanStaging(dir, Checkpoint{Staging: 1, Entry: 1}, start)
	if !errors.As(err, &se) || se.Path != filepath.Join(dir, stagingName(1)) || sc.windows != 0 {
		t.Fatalf("without the first log: %d windows, %v", sc.windows, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestRecover: a task whose checkpoint is at the start of its staging
// logs is brought to the end of them by recover.
func TestRecover(t *testing.T) {
	t.Parallel()
	for _, retain := range []bool{false, true} {
		j := newJournal(t, fixtures.DefaultWorkload(9, 512))
		ws := testWindows(t, j, barrier.Limits{MaxEntries: 10})
		root := t.TempDir()
		if err := createTask(root, "t", j.size, j.id, 512); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "t")
		writeStaging(t, dir, j, ws, 64<<10)
		// The image holds the first five windows, the checkpoint is after them.
		k := 5
		img, err := devio.Open(filepath.Join(dir, imageFile), devio.Options{Write: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws[:k] {
			if err := w.apply(context.Background(), img, 4); err != nil {
				t.Fatal(err)
			}
		}
		img.Close()
		if err := saveState(dir, State{Size: j.size, SectorSize: 512, Durable: ws[k-1].pos(),
			Checkpoint: Checkpoint{Staging: ws[k-1].stagingFile, Entry: ws[k-1].stagingNext}}); err != nil {
			t.Fatal(err)
		}
		tk, err := openTask(root, "t")
		if err != nil {
			t.Fatal(err)
		}
		res, err := tk.recover(t.Context(), retain, 4)
		tk.close()
		if err != nil {
			t.Fatal(err)
		}
		if res.Windows != int64(len(ws)-k) {
			t.Fatalf("recovered %d windows, want %d (%s)", res.Windows, len(ws)-k, res.Stop)
		}
		sameBytes(t, "recovered image", readImage(t, root, "t"), j.replayTo(t, -1))
		st, err := loadState(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.Durable != ws[len(ws)-1].pos() || st.Checkpoint != (Checkpoint{}) {
			t.Fatalf("state after recovery: %+v", st)
		}
		ns, _ := stagingFiles(dir)
		if retain != (len(ns) > 0) {
			t.Fatalf("retain=%v: staging logs %v after recovery", retain, ns)
		}
	}
}
