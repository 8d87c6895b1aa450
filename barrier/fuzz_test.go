package barrier_test

import (
	"slices"
	"testing"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/journal"
)

// decodeEntries turns fuzz bytes into a list of entries on a small device
// of 512-byte sectors, three bytes an entry: kind, sector, length. The top
// bit of the kind byte marks the entry as kept, for subsets.
func decodeEntries(b []byte) (es []journal.Entry, keep []int) {
	for i := 0; i+3 <= len(b); i += 3 {
		sector, n := uint64(b[i+1]%64), uint64(1+b[i+2]%16)
		var e journal.Entry
		switch b[i] % 8 {
		case 0, 1:
			e = wr(sector, n)
		case 2:
			e = disc(sector, n)
		case 3:
			e = flush()
		case 4:
			e = wrf(sector, n, journal.FlagFUA)
		case 5:
			e = wrf(sector, n, journal.FlagFUA|journal.FlagMetadata)
		case 6:
			e = mark("m")
		case 7:
			e = wrf(sector, n, journal.FlagFlush)
		}
		e.Index = int64(len(es))
		if b[i]&0x80 != 0 {
			keep = append(keep, len(es))
		}
		es = append(es, e)
	}
	return es, keep
}

// payloads gives each write bytes that differ from every other write's and
// from one sector to the next, so that any misplaced byte shows.
func payloads(es []journal.Entry) [][]byte {
	ps := make([][]byte, len(es))
	for i, e := range es {
		if e.IsWrite() {
			ps[i] = make([]byte, e.Len())
			for k := range ps[i] {
				ps[i][k] = byte(i*37 + k/ss*11 + 1)
			}
		}
	}
	return ps
}

// FuzzSplit checks on arbitrary entry lists and caps that windows close
// right after every barrier and only there or at a cap, and that they hold
// the entries in their order, none lost or repeated.
func FuzzSplit(f *testing.F) {
	f.Add([]byte{3, 0}, []byte{0, 1, 2, 3, 0, 0, 4, 5, 6, 6, 0, 0, 2, 9, 9})
	f.Add([]byte{0, 0}, []byte{0, 0, 15, 4, 0, 15, 0, 1, 1, 7, 3, 3, 5, 2, 2})
	f.Add([]byte{1, 2}, []byte{0, 0, 0, 0, 0, 0, 3, 0, 0})
	f.Fuzz(func(t *testing.T, lim, b []byte) {
		var l barrier.Limits
		if len(lim) >= 2 {
			// Zero means the default; small caps make many cap windows.
			l = barrier.Limits{MaxEntries: int(lim[0] % 8), MaxBytes: int64(lim[1]%24) * ss}
		}
		es, _ := decodeEntries(b)
		ws := splitAll(es, l)
		if err := checkWindows(es, ws, l); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzCoalesce checks on arbitrary entry lists that the coalesced extents,
// applied forwards or backwards, give what sequential replay gives, for the
// whole list and for the subset the fuzz bytes mark.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{0, 0, 4, 0, 2, 4})
	f.Add([]byte{2, 0, 8, 0, 2, 2, 0x80, 10, 3, 0x82, 11, 1})
	f.Add([]byte{0, 0, 15, 0x80, 3, 2, 2, 1, 1, 0x84, 0, 3, 3, 0, 0, 0x87, 5, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, keep := decodeEntries(b)
		r := replay{es, payloads(es)}
		before := make([]byte, 80*ss)
		for i := range before {
			before[i] = 0xee
		}
		for _, tc := range []struct {
			name string
			xs   []barrier.Extent
			want []byte
		}{
			{"all", barrier.Coalesce(es), sequential(before, r)},
			{"subset", barrier.CoalesceSubset(es, keep), sequentialSubset(before, r, keep)},
		} {
			if err := checkExtents(es, tc.xs); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			for _, order := range []string{"forwards", "backwards"} {
				img := slices.Clone(before)
				xs := slices.Clone(tc.xs)
				if order == "backwards" {
					slices.Reverse(xs)
				}
				for _, x := range xs {
					applyExtent(img, x, r)
				}
				if err := compareImages(img, tc.want, es); err != nil {
					t.Fatalf("%s, applied %s: %v", tc.name, order, err)
				}
			}
		}
	})
}
