package barrier

import (
	"slices"

	"github.com/logship/logship/journal"
)

// Part is bytes [Off, Off+Len) of the payload of entry Entry (an index into
// the slice given to Coalesce, or w.Entries for Window.Coalesce).
type Part struct {
	Entry    int
	Off, Len int64
}

// Extent is a range of the device and what ends up in it.
type Extent struct {
	Start, Len int64 // bytes on the device
	Discard    bool  // zero the range; no Parts
	Parts      []Part
	// For a write: pieces of payloads that fill [Start, Start+Len) in order,
	// so one vectored write (pwritev) applies the extent. A long extent may
	// have more parts than one pwritev accepts (IOV_MAX); the applier splits.
}

// End is Start+Len.
func (x Extent) End() int64 { return x.Start + x.Len }

// Coalesce resolves the overlaps among entries as replaying them one by one
// in slice order would (the last writer wins; a discard zeroes its range) and
// returns the result as disjoint extents sorted by Start. Touching discards
// merge into one extent, and so do touching pieces of writes (as the Parts
// of one extent). FLUSH and MARK entries, and anything else of no length,
// yield nothing. Applying the extents in any order, or concurrently, gives
// the same bytes as the sequential replay.
//
// Coalesce takes O(n log n) time and O(n) memory for n entries.
func Coalesce(entries []journal.Entry) []Extent {
	return coalesce(entries, nil, true)
}

// Coalesce coalesces the window's entries; Parts index w.Entries.
func (w *Window) Coalesce() []Extent { return Coalesce(w.Entries) }

// CoalesceSubset is Coalesce of only the entries at the indexes in keep, as
// if the others had never happened. Parts index entries, not keep. keep
// need not be sorted; journal order is the order of entries.
func CoalesceSubset(entries []journal.Entry, keep []int) []Extent {
	return coalesce(entries, keep, false)
}

// coalesce paints the device in reverse journal order: each entry claims
// the pieces of its range that no later entry has claimed. The device is cut
// at every entry's start and end into elementary segments; a union-find over
// the segments skips the claimed ones, so each is painted once.
func coalesce(entries []journal.Entry, keep []int, all bool) []Extent {
	idx := make([]int, 0, len(entries)) // entries that touch the device, in journal order
	add := func(i int) {
		if touchesDevice(entries[i]) {
			idx = append(idx, i)
		}
	}
	if all {
		for i := range entries {
			add(i)
		}
	} else {
		for _, i := range keep {
			add(i)
		}
		if !slices.IsSorted(idx) {
			slices.Sort(idx)
		}
	}
	if len(idx) == 0 {
		return nil
	}

	cuts := make([]int64, 0, 2*len(idx))
	for _, i := range idx {
		cuts = append(cuts, entries[i].Start(), entries[i].End())
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	nseg := len(cuts) - 1 // segment k is [cuts[k], cuts[k+1])

	segs := make([]int32, 2*nseg+1)
	owner := segs[:nseg] // the entry whose bytes segment k ends with, or -1
	for k := range owner {
		owner[k] = -1
	}
	// next[k] leads to the first unpainted segment at or after k (nseg: none).
	next := segs[nseg:]
	for k := range next {
		next[k] = int32(k)
	}
	find := func(k int32) int32 {
		r := k
		for next[r] != r {
			r = next[r]
		}
		for next[k] != r {
			next[k], k = r, next[k]
		}
		return r
	}
	segment := func(off int64) int32 {
		k, _ := slices.BinarySearch(cuts, off)
		return int32(k)
	}
	for _, i := range slices.Backward(idx) {
		e := entries[i]
		end := segment(e.End())
		for k := find(segment(e.Start())); k < end; k = find(k + 1) {
			owner[k] = int32(i)
			next[k] = k + 1
		}
	}

	var (
		xs    = make([]Extent, 0, len(idx))
		parts = make([]Part, 0, len(idx))
		first = make([]int, 0, len(idx)+1) // first[x] is the index in parts of extent x's first part
	)
	for k, o := range owner {
		if o < 0 {
			continue
		}
		start, n := cuts[k], cuts[k+1]-cuts[k]
		e := entries[o]
		touching := len(xs) > 0 && xs[len(xs)-1].End() == start
		if e.IsDiscard() {
			if touching && xs[len(xs)-1].Discard {
				xs[len(xs)-1].Len += n
			} else {
				xs = append(xs, Extent{Start: start, Len: n, Discard: true})
				first = append(first, len(parts))
			}
			continue
		}
		if touching && !xs[len(xs)-1].Discard {
			xs[len(xs)-1].Len += n
			// Segments of one entry that follow each other continue its part.
			if p := &parts[len(parts)-1]; p.Entry == int(o) {
				p.Len += n
				continue
			}
		} else {
			xs = append(xs, Extent{Start: start, Len: n})
			first = append(first, len(parts))
		}
		parts = append(parts, Part{Entry: int(o), Off: start - e.Start(), Len: n})
	}
	first = append(first, len(parts))
	for x := range xs {
		if a, b := first[x], first[x+1]; a < b {
			xs[x].Parts = parts[a:b:b]
		}
	}
	return xs
}
