package barrier_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// splitAll runs es through a Splitter and closes it.
func splitAll(es []journal.Entry, l barrier.Limits) []*barrier.Window {
	s := barrier.NewSplitter(l)
	var ws []*barrier.Window
	for _, e := range es {
		ws = append(ws, s.Add(e)...)
	}
	if w := s.Close(); w != nil {
		ws = append(ws, w)
	}
	return ws
}

// checkWindows checks every rule of splitting: windows in order and
// numbered, none empty, together exactly es in order, a boundary right
// after every barrier and nowhere else except at a cap (which must have
// been reached or about to be exceeded) or the end, and caps respected.
func checkWindows(es []journal.Entry, ws []*barrier.Window, l barrier.Limits) error {
	if l.MaxEntries <= 0 {
		l.MaxEntries = barrier.DefaultMaxEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = barrier.DefaultMaxBytes
	}
	var all []journal.Entry
	for k, w := range ws {
		if w.Seq != uint64(k) {
			return fmt.Errorf("window %d has Seq %d", k, w.Seq)
		}
		if len(w.Entries) == 0 {
			return fmt.Errorf("window %d is empty", k)
		}
		var bytes int64
		for i, e := range w.Entries {
			bytes += e.PayloadLen()
			if e.IsBarrier() && i != len(w.Entries)-1 {
				return fmt.Errorf("window %d: barrier entry %d (%s) is not its last", k, e.Index, e.Flags)
			}
		}
		if bytes != w.Bytes {
			return fmt.Errorf("window %d: Bytes %d, entries hold %d", k, w.Bytes, bytes)
		}
		if len(w.Entries) > l.MaxEntries {
			return fmt.Errorf("window %d: %d entries, cap %d", k, len(w.Entries), l.MaxEntries)
		}
		if w.Bytes > l.MaxBytes && len(w.Entries) > 1 {
			return fmt.Errorf("window %d: %d bytes in %d entries, cap %d", k, w.Bytes, len(w.Entries), l.MaxBytes)
		}
		last := w.Entries[len(w.Entries)-1]
		if w.First() != w.Entries[0].Index || w.Last() != last.Index {
			return fmt.Errorf("window %d: First/Last %d/%d", k, w.First(), w.Last())
		}
		switch w.Reason {
		case barrier.Flush, barrier.FUA, barrier.Mark:
			want := barrier.FUA
			if last.IsMark() {
				want = barrier.Mark
			} else if last.Flags&journal.FlagFlush != 0 {
				want = barrier.Flush
			}
			if !last.IsBarrier() || w.Reason != want {
				return fmt.Errorf("window %d closed by %s after a %s entry", k, w.Reason, last.Flags)
			}
		case barrier.Cap:
			if last.IsBarrier() {
				return fmt.Errorf("window %d closed by %s after a %s entry", k, w.Reason, last.Flags)
			}
			full := len(w.Entries) == l.MaxEntries || w.Bytes >= l.MaxBytes
			if !full && (k+1 == len(ws) || w.Bytes+ws[k+1].Entries[0].PayloadLen() <= l.MaxBytes) {
				return fmt.Errorf("window %d closed by a cap it had not reached (%d entries, %d bytes)",
					k, len(w.Entries), w.Bytes)
			}
		case barrier.End:
			if k != len(ws)-1 || last.IsBarrier() {
				return fmt.Errorf("window %d of %d closed by END after a %s entry", k, len(ws), last.Flags)
			}
		default:
			return fmt.Errorf("window %d: reason %s", k, w.Reason)
		}
		all = append(all, w.Entries...)
	}
	if len(all) != len(es) {
		return fmt.Errorf("windows hold %d entries, input had %d", len(all), len(es))
	}
	for i := range es {
		if all[i] != es[i] {
			return fmt.Errorf("entry %d of the windows is %+v, input had %+v", i, all[i], es[i])
		}
	}
	return nil
}

func TestSplit(t *testing.T) {
	t.Parallel()
	fua := func(sector, n uint64) journal.Entry { return wrf(sector, n, journal.FlagFUA) }
	tests := []struct {
		name    string
		entries []journal.Entry
		limits  barrier.Limits
		want    [][]int64 // entry indexes of each window
		reasons []barrier.Reason
	}{
		{"empty", nil, barrier.Limits{}, nil, nil},
		{"no barrier", seq(wr(0, 1), wr(1, 1), disc(2, 3)), barrier.Limits{},
			[][]int64{{0, 1, 2}}, []barrier.Reason{barrier.End}},
		{"flush closes after itself", seq(wr(0, 1), flush(), wr(1, 1)), barrier.Limits{},
			[][]int64{{0, 1}, {2}}, []barrier.Reason{barrier.Flush, barrier.End}},
		{"fua, fua|metadata, mark", seq(wr(0, 1), fua(0, 1), wrf(8, 1, journal.FlagFUA|journal.FlagMetadata), wr(3, 1), mark("a")),
			barrier.Limits{}, [][]int64{{0, 1}, {2}, {3, 4}}, []barrier.Reason{barrier.FUA, barrier.FUA, barrier.Mark}},
		{"metadata alone is no barrier", seq(wrf(0, 1, journal.FlagMetadata), wr(1, 1)), barrier.Limits{},
			[][]int64{{0, 1}}, []barrier.Reason{barrier.End}},
		{"flush with data and flush|fua", seq(wrf(0, 2, journal.FlagFlush), wrf(4, 1, journal.FlagFlush|journal.FlagFUA)), barrier.Limits{},
			[][]int64{{0}, {1}}, []barrier.Reason{barrier.Flush, barrier.Flush}},
		{"barrier first and consecutive", seq(flush(), flush(), mark("x")), barrier.Limits{},
			[][]int64{{0}, {1}, {2}}, []barrier.Reason{barrier.Flush, barrier.Flush, barrier.Mark}},
		{"entry cap closes when full", seq(wr(0, 1), wr(1, 1), wr(2, 1), wr(3, 1), wr(4, 1)), barrier.Limits{MaxEntries: 2},
			[][]int64{{0, 1}, {2, 3}, {4}}, []barrier.Reason{barrier.Cap, barrier.Cap, barrier.End}},
		{"entry cap and barrier on the same entry", seq(wr(0, 1), flush(), wr(1, 1)), barrier.Limits{MaxEntries: 2},
			[][]int64{{0, 1}, {2}}, []barrier.Reason{barrier.Flush, barrier.End}},
		{"byte cap closes before exceeding", seq(wr(0, 2), wr(2, 3), wr(5, 2)), barrier.Limits{MaxBytes: 4 * ss},
			[][]int64{{0}, {1}, {2}}, []barrier.Reason{barrier.Cap, barrier.Cap, barrier.End}},
		{"byte cap reached exactly", seq(wr(0, 3), wr(3, 1)), barrier.Limits{MaxBytes: 3 * ss},
			[][]int64{{0}, {1}}, []barrier.Reason{barrier.Cap, barrier.End}},
		{"discards and marks weigh nothing", seq(disc(0, 100), mark("a"), disc(0, 100), wr(0, 2)), barrier.Limits{MaxBytes: 2 * ss},
			[][]int64{{0, 1}, {2, 3}}, []barrier.Reason{barrier.Mark, barrier.Cap}},
		{"oversized entry alone", seq(wr(0, 1), wr(1, 8), wr(9, 1)), barrier.Limits{MaxBytes: 4 * ss},
			[][]int64{{0}, {1}, {2}}, []barrier.Reason{barrier.Cap, barrier.Cap, barrier.End}},
		{"oversized fua closes two windows", seq(wr(0, 1), fua(1, 8), wr(9, 1)), barrier.Limits{MaxBytes: 4 * ss},
			[][]int64{{0}, {1}, {2}}, []barrier.Reason{barrier.Cap, barrier.FUA, barrier.End}},
		{"fua that does not fit", seq(wr(0, 3), fua(3, 2)), barrier.Limits{MaxBytes: 4 * ss},
			[][]int64{{0}, {1}}, []barrier.Reason{barrier.Cap, barrier.FUA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := splitAll(tt.entries, tt.limits)
			if err := checkWindows(tt.entries, ws, tt.limits); err != nil {
				t.Error(err)
			}
			var got [][]int64
			var reasons []barrier.Reason
			for _, w := range ws {
				var idx []int64
				for _, e := range w.Entries {
					idx = append(idx, e.Index)
				}
				got = append(got, idx)
				reasons = append(reasons, w.Reason)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || !slices.Equal(reasons, tt.reasons) {
				t.Errorf("windows %v closed by %v, want %v closed by %v", got, reasons, tt.want, tt.reasons)
			}
		})
	}
}

// TestAddReturnsClosedWindows checks that Add hands out each window the
// moment it closes: a barrier's window comes back from the Add of the
// barrier, not later.
func TestAddReturnsClosedWindows(t *testing.T) {
	t.Parallel()
	s := barrier.NewSplitter(barrier.Limits{MaxBytes: 4 * ss})
	steps := []struct {
		e      journal.Entry
		closed int
	}{
		{wr(0, 1), 0}, {wr(1, 1), 0}, {flush(), 1}, {wr(0, 3), 0}, {wrf(3, 2, journal.FlagFUA), 2}, {wr(0, 9), 1}, {wr(0, 1), 0},
	}
	for i, st := range steps {
		st.e.Index = int64(i)
		if got := s.Add(st.e); len(got) != st.closed {
			t.Fatalf("Add(entry %d) closed %d windows, want %d", i, len(got), st.closed)
		}
	}
	if s.Pending() != 1 {
		t.Errorf("Pending = %d, want 1", s.Pending())
	}
	w := s.Close()
	if w == nil || w.Seq != 4 || w.Reason != barrier.End || w.First() != 6 {
		t.Errorf("Close = %v, want window 4 of entry 6 closed by END", w)
	}
	if w := s.Close(); w != nil {
		t.Errorf("second Close = %v, want nil", w)
	}
}

func TestSplitWorkloads(t *testing.T) {
	t.Parallel()
	limits := []barrier.Limits{{}, {MaxEntries: 5}, {MaxBytes: 16 << 10}, {MaxEntries: 1}, {MaxEntries: 9, MaxBytes: 4096}}
	for _, sectorSize := range []int{512, 4096} {
		for seed := uint64(1); seed <= 8; seed++ {
			d := load(t, fixtures.DefaultWorkload(seed, sectorSize))
			for _, l := range limits {
				name := fmt.Sprintf("ss%d/seed%d/%d-entries/%d-bytes", sectorSize, seed, l.MaxEntries, l.MaxBytes)
				ws := splitAll(d.entries, l)
				if err := checkWindows(d.entries, ws, l); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				// Split over the Reader gives the same windows.
				r, err := journal.NewReader(bytes.NewReader(d.j), int64(len(d.j)))
				if err != nil {
					t.Fatal(err)
				}
				k := 0
				for w, err := range barrier.Split(r, l) {
					if err != nil {
						t.Fatalf("%s: Split: %v", name, err)
					}
					if k >= len(ws) || w.Seq != ws[k].Seq || w.Reason != ws[k].Reason || !slices.Equal(w.Entries, ws[k].Entries) {
						t.Fatalf("%s: Split window %d differs from the Splitter's", name, k)
					}
					k++
				}
				if k != len(ws) {
					t.Errorf("%s: Split gave %d windows, the Splitter %d", name, k, len(ws))
				}
			}
		}
	}
}

func TestSplitError(t *testing.T) {
	t.Parallel()
	d := load(t, fixtures.DefaultWorkload(3, 512))
	// Cut the journal in the middle of the payload of a write near the end.
	var cut journal.Entry
	for _, e := range slices.Backward(d.entries) {
		if e.IsWrite() {
			cut = e
			break
		}
	}
	j := d.j[:cut.PayloadOffset()+1]
	r, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if err != nil {
		t.Fatal(err)
	}
	var last int64 = -1
	var gotErr error
	for w, err := range barrier.Split(r, barrier.Limits{}) {
		if err != nil {
			if w != nil {
				t.Errorf("window %v yielded with error %v", w, err)
			}
			gotErr = err
			continue
		}
		if gotErr != nil {
			t.Fatalf("window %v after the error", w)
		}
		last = w.Last()
	}
	if !errors.Is(gotErr, io.ErrUnexpectedEOF) {
		t.Fatalf("Split error = %v, want io.ErrUnexpectedEOF", gotErr)
	}
	if last >= cut.Index {
		t.Errorf("a window ends at entry %d, at or past the torn entry %d", last, cut.Index)
	}
}

func TestReasonString(t *testing.T) {
	t.Parallel()
	for r, want := range map[barrier.Reason]string{barrier.Flush: "FLUSH", barrier.FUA: "FUA", barrier.Mark: "MARK",
		barrier.Cap: "CAP", barrier.End: "END", 0: "Reason(0)", 99: "Reason(99)"} {
		if r.String() != want {
			t.Errorf("Reason(%d).String() = %q, want %q", int(r), r.String(), want)
		}
	}
}
