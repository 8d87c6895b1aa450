package barrier_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// replay is a list of entries with their payloads.
type replay struct {
	es       []journal.Entry
	payloads [][]byte
}

func (d *journalData) window(w *barrier.Window) replay {
	return replay{w.Entries, d.payloads[w.First() : w.Last()+1]}
}

// sequential applies the entries one at a time, in journal order, onto a
// copy of before: the obviously right way.
func sequential(before []byte, r replay) []byte {
	all := make([]int, len(r.es))
	for i := range all {
		all[i] = i
	}
	return sequentialSubset(before, r, all)
}

// sequentialSubset is sequential of only the entries at keep.
func sequentialSubset(before []byte, r replay, keep []int) []byte {
	img := slices.Clone(before)
	for i, e := range r.es {
		if !slices.Contains(keep, i) {
			continue
		}
		switch {
		case e.IsMark() || e.Len() == 0:
		case e.IsDiscard():
			clear(img[e.Start():e.End()])
		default:
			copy(img[e.Start():e.End()], r.payloads[i])
		}
	}
	return img
}

// checkExtents checks the shape of Coalesce's output: extents sorted,
// disjoint, not empty, maximal (touching extents differ in kind), discards
// without parts, writes filled exactly by parts of write entries that put
// each byte where that entry wrote it, and no part that could have been
// merged with the one before.
func checkExtents(es []journal.Entry, xs []barrier.Extent) error {
	for k, x := range xs {
		if x.Len <= 0 || x.Start < 0 {
			return fmt.Errorf("extent %d: %+v is empty or negative", k, x)
		}
		if k > 0 {
			prev := xs[k-1]
			if x.Start < prev.End() {
				return fmt.Errorf("extent %d [%d,%d) is before or overlaps extent %d [%d,%d)", k, x.Start, x.End(), k-1, prev.Start, prev.End())
			}
			if x.Start == prev.End() && x.Discard == prev.Discard {
				return fmt.Errorf("extents %d and %d touch at %d and should have merged", k-1, k, x.Start)
			}
		}
		if x.Discard {
			if len(x.Parts) != 0 {
				return fmt.Errorf("discard extent %d has %d parts", k, len(x.Parts))
			}
			continue
		}
		if len(x.Parts) == 0 {
			return fmt.Errorf("write extent %d has no parts", k)
		}
		pos := x.Start
		for n, p := range x.Parts {
			if p.Entry < 0 || p.Entry >= len(es) {
				return fmt.Errorf("extent %d part %d: entry %d of %d", k, n, p.Entry, len(es))
			}
			e := es[p.Entry]
			if !e.IsWrite() {
				return fmt.Errorf("extent %d part %d: entry %d is a %s, not a write", k, n, p.Entry, e.Flags)
			}
			if p.Len <= 0 || p.Off < 0 || p.Off+p.Len > e.Len() {
				return fmt.Errorf("extent %d part %d: [%d,+%d) outside the %d-byte payload of entry %d", k, n, p.Off, p.Len, e.Len(), p.Entry)
			}
			if e.Start()+p.Off != pos {
				return fmt.Errorf("extent %d part %d: entry %d's byte %d belongs at %d, not %d", k, n, p.Entry, p.Off, e.Start()+p.Off, pos)
			}
			if n > 0 && x.Parts[n-1].Entry == p.Entry && x.Parts[n-1].Off+x.Parts[n-1].Len == p.Off {
				return fmt.Errorf("extent %d parts %d and %d continue each other", k, n-1, n)
			}
			pos += p.Len
		}
		if pos != x.End() {
			return fmt.Errorf("extent %d [%d,%d): parts fill up to %d", k, x.Start, x.End(), pos)
		}
	}
	return nil
}

// applyExtent writes one extent into img.
func applyExtent(img []byte, x barrier.Extent, r replay) {
	if x.Discard {
		clear(img[x.Start:x.End()])
		return
	}
	pos := x.Start
	for _, p := range x.Parts {
		pos += int64(copy(img[pos:pos+p.Len], r.payloads[p.Entry][p.Off:p.Off+p.Len]))
	}
}

// images are scratch images for checkApply.
var images = sync.Pool{New: func() any { return new([]byte) }}

// checkApply applies xs onto copies of before in a random order, and
// concurrently from four goroutines (under -race, extents that share a
// byte are reported), and compares both images with want.
func checkApply(before, want []byte, xs []barrier.Extent, r replay, rng *rand.Rand) error {
	if err := checkExtents(r.es, xs); err != nil {
		return err
	}
	perm := rng.Perm(len(xs))
	scratch := images.Get().(*[]byte)
	defer images.Put(scratch)
	img := append((*scratch)[:0], before...)
	*scratch = img
	for _, k := range perm {
		applyExtent(img, xs[k], r)
	}
	if err := compareImages(img, want, r.es); err != nil {
		return fmt.Errorf("extents applied in random order: %w", err)
	}
	img = append(img[:0], before...)
	const workers = 4
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for n := g; n < len(perm); n += workers {
				applyExtent(img, xs[perm[n]], r)
			}
		})
	}
	wg.Wait()
	if err := compareImages(img, want, r.es); err != nil {
		return fmt.Errorf("extents applied concurrently: %w", err)
	}
	return nil
}

func TestCoalesce(t *testing.T) {
	t.Parallel()
	const s = ss
	ext := func(start, n int64, parts ...barrier.Part) barrier.Extent {
		return barrier.Extent{Start: start * s, Len: n * s, Parts: parts}
	}
	dis := func(start, n int64) barrier.Extent {
		return barrier.Extent{Start: start * s, Len: n * s, Discard: true}
	}
	part := func(entry int, off, n int64) barrier.Part {
		return barrier.Part{Entry: entry, Off: off * s, Len: n * s}
	}
	tests := []struct {
		name    string
		entries []journal.Entry
		want    []barrier.Extent
	}{
		{"nothing", nil, nil},
		{"only flush and mark", seq(flush(), mark("a")), nil},
		{"one write", seq(wr(3, 4)), []barrier.Extent{ext(3, 4, part(0, 0, 4))}},
		{"identical writes", seq(wr(0, 4), wr(0, 4)), []barrier.Extent{ext(0, 4, part(1, 0, 4))}},
		{"partial overlap, later to the right", seq(wr(0, 4), wr(2, 4)),
			[]barrier.Extent{ext(0, 6, part(0, 0, 2), part(1, 0, 4))}},
		{"partial overlap, later to the left", seq(wr(2, 4), wr(0, 4)),
			[]barrier.Extent{ext(0, 6, part(1, 0, 4), part(0, 2, 2))}},
		{"later write contained", seq(wr(0, 8), wr(2, 2)),
			[]barrier.Extent{ext(0, 8, part(0, 0, 2), part(1, 0, 2), part(0, 4, 4))}},
		{"later write containing", seq(wr(2, 2), wr(0, 8)), []barrier.Extent{ext(0, 8, part(1, 0, 8))}},
		{"write then discard", seq(wr(0, 4), disc(2, 4)), []barrier.Extent{ext(0, 2, part(0, 0, 2)), dis(2, 4)}},
		{"discard then write", seq(disc(0, 8), wr(2, 2)), []barrier.Extent{dis(0, 2), ext(2, 2, part(1, 0, 2)), dis(4, 4)}},
		{"discard overwritten", seq(disc(2, 2), wr(0, 8)), []barrier.Extent{ext(0, 8, part(1, 0, 8))}},
		{"write discarded", seq(wr(2, 2), disc(0, 8)), []barrier.Extent{dis(0, 8)}},
		{"adjacent writes merge", seq(wr(0, 2), wr(2, 2), wr(10, 1)),
			[]barrier.Extent{ext(0, 4, part(0, 0, 2), part(1, 0, 2)), ext(10, 1, part(2, 0, 1))}},
		{"adjacent discards merge", seq(disc(4, 1), disc(0, 2), disc(2, 2)), []barrier.Extent{dis(0, 5)}},
		{"overlapping discards merge", seq(disc(0, 4), disc(2, 4)), []barrier.Extent{dis(0, 6)}},
		{"flush, mark and a gap", seq(wr(0, 1), flush(), mark("m"), wr(5, 1)),
			[]barrier.Extent{ext(0, 1, part(0, 0, 1)), ext(5, 1, part(3, 0, 1))}},
		{"flags: FUA, METADATA, FLUSH with data", seq(wrf(0, 1, journal.FlagFUA), wrf(1, 1, journal.FlagMetadata), wrf(2, 1, journal.FlagFlush)),
			[]barrier.Extent{ext(0, 3, part(0, 0, 1), part(1, 0, 1), part(2, 0, 1))}},
		{"three layers", seq(wr(0, 8), disc(2, 2), wr(3, 2)),
			[]barrier.Extent{ext(0, 2, part(0, 0, 2)), dis(2, 1), ext(3, 5, part(2, 0, 2), part(0, 5, 3))}},
		{"an entry split and rejoined", seq(wr(0, 6), wr(2, 2), wr(2, 2), disc(8, 1)),
			[]barrier.Extent{ext(0, 6, part(0, 0, 2), part(2, 0, 2), part(0, 4, 2)), dis(8, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := barrier.Coalesce(tt.entries)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Coalesce (-want +got):\n%s", diff)
			}
			if err := checkExtents(tt.entries, got); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCoalesceSubset(t *testing.T) {
	t.Parallel()
	es := seq(wr(0, 4), disc(2, 4), flush(), wr(3, 1))
	const s = ss
	for _, tt := range []struct {
		keep []int
		want []barrier.Extent
	}{
		{nil, nil},
		{[]int{}, nil},
		{[]int{2}, nil},
		{[]int{0, 3}, []barrier.Extent{{Start: 0, Len: 4 * s, Parts: []barrier.Part{{0, 0, 3 * s}, {3, 0, s}}}}},
		{[]int{3, 0}, []barrier.Extent{{Start: 0, Len: 4 * s, Parts: []barrier.Part{{0, 0, 3 * s}, {3, 0, s}}}}},
		{[]int{1, 3}, []barrier.Extent{{Start: 2 * s, Len: s, Discard: true}, {Start: 3 * s, Len: s, Parts: []barrier.Part{{3, 0, s}}},
			{Start: 4 * s, Len: 2 * s, Discard: true}}},
		{[]int{0, 1, 2, 3}, barrier.Coalesce(es)},
	} {
		if diff := cmp.Diff(tt.want, barrier.CoalesceSubset(es, tt.keep)); diff != "" {
			t.Errorf("CoalesceSubset(%v) (-want +got):\n%s", tt.keep, diff)
		}
	}
}

// TestCoalesceReplay is the property the applier relies on: for every
// window of random, heavily overlapping journals, the coalesced extents
// applied in any order, or concurrently, onto the state before the window
// give exactly the state that sequential replay gives after it. The same
// holds for random subsets of each window (crash states) and for a whole
// journal coalesced at once.
func TestCoalesceReplay(t *testing.T) {
	seeds := uint64(20)
	if testing.Short() || raceEnabled {
		seeds = 5
	}
	for _, sectorSize := range []int{512, 4096} {
		t.Run(fmt.Sprint(sectorSize), func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= seeds; seed++ {
				rng := rand.New(rand.NewPCG(seed, 7))
				d := load(t, overlapWorkload(seed, sectorSize))
				checkJournal(t, d, seed, rng)
			}
		})
	}
}

func checkJournal(t *testing.T, d *journalData, seed uint64, rng *rand.Rand) {
	t.Helper()
	zero := make([]byte, d.device)
	for n, l := range []barrier.Limits{{}, {MaxEntries: 6}} {
		subsets := 3 - 2*n // crash states mostly in the larger windows
		cur := slices.Clone(zero)
		for _, w := range splitAll(d.entries, l) {
			r := d.window(w)
			want := sequential(cur, r)
			if err := checkApply(cur, want, w.Coalesce(), r, rng); err != nil {
				t.Fatalf("seed %d, limits %+v, %v: %v", seed, l, w, err)
			}
			for range subsets {
				keep := w.RandomSubset(rng)
				wantSub := sequentialSubset(cur, r, keep)
				if err := checkApply(cur, wantSub, barrier.CoalesceSubset(w.Entries, keep), r, rng); err != nil {
					t.Fatalf("seed %d, limits %+v, %v, subset %v: %v", seed, l, w, keep, err)
				}
			}
			if seed%5 == 0 {
				// Cross-check the in-test replay against the fixtures' one.
				ref := slices.Clone(zero)
				if err := fixtures.ReplaySequential(d.j, ref, w.Last()); err != nil {
					t.Fatal(err)
				}
				if err := compareImages(want, ref, w.Entries); err != nil {
					t.Fatalf("seed %d, after %v: in-test replay vs fixtures.ReplaySequential: %v", seed, w, err)
				}
			}
			cur = want
		}
		ref := slices.Clone(zero)
		if err := fixtures.ReplaySequential(d.j, ref, -1); err != nil {
			t.Fatal(err)
		}
		if err := compareImages(cur, ref, d.entries); err != nil {
			t.Fatalf("seed %d, limits %+v: the windows replayed in turn differ from the whole journal: %v", seed, l, err)
		}
	}
	// The whole journal as one list: many more overlaps per call.
	r := replay{d.entries, d.payloads}
	if err := checkApply(zero, sequential(zero, r), barrier.Coalesce(d.entries), r, rng); err != nil {
		t.Fatalf("seed %d, whole journal: %v", seed, err)
	}
}

// TestCoalesceReplayCanFail shows the property test can fail: putting the
// last data entry of a window before an earlier one that it overlaps, and
// coalescing that, must give an image that checkApply rejects.
func TestCoalesceReplayCanFail(t *testing.T) {
	t.Parallel()
	tried := 0
	for _, sectorSize := range []int{512, 4096} {
		for seed := uint64(1); seed <= 5; seed++ {
			rng := rand.New(rand.NewPCG(seed, 9))
			d := load(t, overlapWorkload(seed, sectorSize))
			cur := make([]byte, d.device)
			for _, w := range splitAll(d.entries, barrier.Limits{}) {
				r := d.window(w)
				want := sequential(cur, r)
				if i, j, ok := overlappingPair(w.Entries); ok {
					tried++
					swapped := replay{slices.Clone(r.es), slices.Clone(r.payloads)}
					swapped.es[i], swapped.es[j] = swapped.es[j], swapped.es[i]
					swapped.payloads[i], swapped.payloads[j] = swapped.payloads[j], swapped.payloads[i]
					err := checkApply(cur, want, barrier.Coalesce(swapped.es), swapped, rng)
					if err == nil {
						t.Errorf("seed %d, %v: entries %d and %d swapped, and checkApply found no difference", seed, w, i, j)
					}
				}
				cur = want
			}
		}
	}
	if tried < 20 {
		t.Fatalf("only %d windows had overlapping entries to swap", tried)
	}
}

// overlappingPair finds the window's last entry j that touches the device
// and an earlier entry i that overlaps it, not both discards (whose order
// does not matter).
func overlappingPair(es []journal.Entry) (i, j int, ok bool) {
	data := func(e journal.Entry) bool { return e.Len() > 0 && !e.IsMark() }
	for j = len(es) - 1; j >= 0 && !data(es[j]); j-- {
	}
	for i = j - 1; i >= 0; i-- {
		if data(es[i]) && es[i].Start() < es[j].End() && es[j].Start() < es[i].End() && !(es[i].IsDiscard() && es[j].IsDiscard()) {
			return i, j, true
		}
	}
	return 0, 0, false
}
