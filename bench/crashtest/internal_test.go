package crashtest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/logship/logship/journal"
)

func TestSpanSetMerged(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want []span
	}{
		{nil, nil},
		{[]span{{0, 4}}, []span{{0, 4}}},
		{[]span{{8, 9}, {0, 4}, {4, 6}}, []span{{0, 6}, {8, 9}}},
		{[]span{{0, 10}, {2, 3}, {9, 12}, {20, 21}, {12, 13}}, []span{{0, 13}, {20, 21}}},
	} {
		var s spanSet
		for _, x := range tt.in {
			s.add(x.off, x.end)
		}
		s.add(5, 5) // empty: ignored
		if diff := cmp.Diff(tt.want, s.merged(), cmp.AllowUnexported(span{})); diff != "" {
			t.Errorf("merged(%v) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func entries(specs ...string) []journal.Entry {
	var es []journal.Entry
	for i, s := range specs {
		e := journal.Entry{Index: int64(i), Sector: uint64(i), SectorSize: 512}
		switch s {
		case "w":
			e.NrSectors = 1
		case "d":
			e.NrSectors, e.Flags = 1, journal.FlagDiscard
		case "fua":
			e.NrSectors, e.Flags = 1, journal.FlagFUA
		case "flushdata":
			e.NrSectors, e.Flags = 1, journal.FlagFlush|journal.FlagFUA
		case "flush":
			e.Flags = journal.FlagFlush
		case "mark":
			e.Flags = journal.FlagMark
		}
		es = append(es, e)
	}
	return es
}

func TestCrashSubsets(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct {
		name string
		win  []journal.Entry
		k    int
		want [][]int // nil: only check the count and validity
		n    int
	}{
		{name: "empty", win: nil, k: 5},
		{name: "one write", win: entries("w", "flush"), k: 5},
		{name: "two writes: both alone", win: entries("w", "w", "flush"), k: 5, want: [][]int{{0}, {1}}},
		{name: "write, discard, FUA", win: entries("w", "d", "fua"), k: 10,
			want: [][]int{{0}, {1}, {0, 1}, {2}, {0, 2}, {1, 2}}},
		{name: "flush with data kept only with all", win: entries("w", "w", "flushdata"), k: 10,
			want: [][]int{{0}, {1}, {0, 1}}},
		{name: "flush with data after one write", win: entries("w", "flushdata"), k: 10, want: [][]int{{0}}},
		{name: "k bounds the count", win: entries("w", "w", "w", "w", "w", "w", "w", "w", "flush"), k: 7, n: 7},
		{name: "many writes", win: entries(slices.Repeat([]string{"w"}, 40)...), k: 25, n: 25},
		{name: "k 0", win: entries("w", "w"), k: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := crashSubsets(tt.win, tt.k, rng)
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				return
			}
			if len(got) != tt.n {
				t.Fatalf("%d subsets, want %d", len(got), tt.n)
			}
			writes := 0
			for _, e := range tt.win {
				if e.IsWrite() {
					writes++
				}
			}
			seen := map[string]bool{}
			for _, s := range got {
				key := fmt.Sprint(s)
				if seen[key] || len(s) == 0 || !slices.IsSorted(s) || len(s) >= writes {
					t.Errorf("subset %v: repeated, empty, unsorted or all", s)
				}
				seen[key] = true
			}
		})
	}
}

// newImage makes an image of size bytes holding data at the given blocks
// of 4 KiB (random bytes), holes elsewhere.
func newImage(t *testing.T, name string, size int64, blocks []int64, rng *rand.Rand) *image {
	t.Helper()
	im, err := createImage(filepath.Join(t.TempDir(), name), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.close() })
	b := make([]byte, 4096)
	for _, k := range blocks {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if _, err := im.f.WriteAt(b, k*4096); err != nil {
			t.Fatal(err)
		}
	}
	return im
}

func readImage(t *testing.T, im *image) []byte {
	t.Helper()
	b, err := os.ReadFile(im.path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLevelAndDiff: diff finds exactly the differing blocks, and level over
// them (or over everything) makes the images equal, keeping holes holes.
func TestLevelAndDiff(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	const size = 4 << 20
	buf, buf2 := make([]byte, 64<<10), make([]byte, 64<<10)
	for round := range 20 {
		var ba, bb []int64
		for range 30 {
			ba = append(ba, rng.Int64N(size/4096))
			bb = append(bb, rng.Int64N(size/4096))
		}
		a := newImage(t, "a", size, ba, rng)
		b := newImage(t, "b", size, bb, rng)
		// Some blocks equal on both.
		for range 5 {
			k := rng.Int64N(size / 4096)
			copyRange(b, a, k*4096, 4096, buf)
		}
		da, db := readImage(t, a), readImage(t, b)
		var want []span
		for k := int64(0); k < size/4096; k++ {
			if !bytes.Equal(da[k*4096:(k+1)*4096], db[k*4096:(k+1)*4096]) {
				if n := len(want); n > 0 && want[n-1].end == k*4096 {
					want[n-1].end += 4096
				} else {
					want = append(want, span{k * 4096, (k + 1) * 4096})
				}
			}
		}
		got, _, err := diff(a, b, buf, buf2)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got, cmp.AllowUnexported(span{})); d != "" {
			t.Fatalf("round %d: diff (-want +got):\n%s", round, d)
		}
		if round%2 == 0 {
			for _, s := range got {
				if _, err := level(b, a, s.off, s.end, buf); err != nil {
					t.Fatal(err)
				}
			}
		} else if _, err := level(b, a, 0, size, buf); err != nil {
			t.Fatal(err)
		}
		if db := readImage(t, b); !bytes.Equal(da, db) {
			t.Fatalf("round %d: after level, images differ at byte %d", round, firstDiffAt(da, db))
		}
		if round%2 == 1 {
			sa, _ := a.dataSpans(0, size)
			sb, _ := b.dataSpans(0, size)
			if !slices.Equal(sa, sb) {
				t.Errorf("round %d: after a full level, data extents %v, want %v", round, sb, sa)
			}
		}
	}
}

func firstDiffAt(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestMtimeSentinel(t *testing.T) {
	t.Parallel()
	im := newImage(t, "m", 1<<20, nil, rand.New(rand.NewPCG(1, 1)))
	if err := im.markClean(); err != nil {
		t.Fatal(err)
	}
	if touched, err := im.touched(); err != nil || touched {
		t.Fatalf("touched after markClean: %v, %v", touched, err)
	}
	f, err := os.OpenFile(im.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{1}, 4096)
	f.Close()
	if touched, err := im.touched(); err != nil || !touched {
		t.Fatalf("not touched after a write: %v, %v", touched, err)
	}
}

func TestParsePoints(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want Points
		err  bool
	}{
		{"flush,fua,mark", DefaultPoints, false},
		{"fua", Points{FUA: true}, false},
		{"every:10", Points{Every: 10}, false},
		{"mark, every:3", Points{Mark: true, Every: 3}, false},
		{"every:0", Points{}, true},
		{"every:x", Points{}, true},
		{"discard", Points{}, true},
		{"", Points{}, true},
	} {
		got, err := ParsePoints(tt.in)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("ParsePoints(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if !tt.err {
			if again, _ := ParsePoints(got.String()); again != got {
				t.Errorf("ParsePoints(%q).String() = %q does not parse back", tt.in, got.String())
			}
		}
	}
}

func TestParseFault(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want *Fault
	}{
		{"drop:12", &Fault{Kind: DropWindow, Entry: 12}},
		{"delay:5:9", &Fault{Kind: DelayWrite, Entry: 5, Until: 9}},
		{"drop:-1", nil},
		{"delay:5", nil},
		{"move:1:2", nil},
	} {
		got, err := ParseFault(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("ParseFault(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || *got != *tt.want || got.String() != tt.in {
			t.Errorf("ParseFault(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestTrackedRecord: ranges recorded past the merge threshold are merged
// on the way and still give the same union.
func TestTrackedRecord(t *testing.T) {
	t.Parallel()
	var tr tracked
	rng := rand.New(rand.NewPCG(4, 4))
	covered := make([]bool, 1<<20)
	for range 3*mergeAt + 17 {
		off := rng.Int64N(1<<20 - 64)
		n := 1 + rng.Int64N(64)
		tr.record(off, off+n)
		for i := off; i < off+n; i++ {
			covered[i] = true
		}
	}
	if len(tr.dirty) >= 3*mergeAt {
		t.Errorf("%d ranges kept: never merged", len(tr.dirty))
	}
	var want []span
	for i := int64(0); i < int64(len(covered)); i++ {
		if !covered[i] {
			continue
		}
		if n := len(want); n > 0 && want[n-1].end == i {
			want[n-1].end++
		} else {
			want = append(want, span{i, i + 1})
		}
	}
	if d := cmp.Diff(want, tr.take().merged(), cmp.AllowUnexported(span{})); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if len(tr.take()) != 0 {
		t.Error("take did not empty the set")
	}
}
