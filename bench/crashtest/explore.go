package crashtest

import (
	"math/bits"
	"math/rand/v2"

	"github.com/logship/logship/journal"
)

// crashSubsets picks up to k crash states inside a window: subsets of its
// entries (indexes into w, ascending) that change data, other than none of
// them and all of them (the states at the points around the window). Every
// such subset is a state the source could have crashed into, applied in
// journal order on top of the state before the window.
//
// One rule narrows the choice: an entry with the FLUSH bit that carries data
// (the kernel logs such an entry after the writes its flush made durable,
// docs/journal-format.md §3) is durable only after every
// entry before it in the window, so it is only ever kept with all of them,
// and that state is the one after the window. It is therefore never chosen;
// all the other entries without it then is a state of its own.
//
// When there are at most k such subsets, crashSubsets returns all of them;
// otherwise k distinct ones chosen uniformly at random.
func crashSubsets(w []journal.Entry, k int, rng *rand.Rand) [][]int {
	if k <= 0 {
		return nil
	}
	var cand []int
	flushData := false
	for i, e := range w {
		if e.Len() == 0 || e.IsMark() {
			continue
		}
		if e.IsWrite() && e.Flags&journal.FlagFlush != 0 && i == len(w)-1 {
			flushData = true
			continue
		}
		cand = append(cand, i)
	}
	n := len(cand)
	// valid reports whether a subset of ones candidates is a new state.
	valid := func(ones int) bool {
		return ones > 0 && (flushData || ones < n)
	}
	total := -1 // the number of valid subsets, when it is small
	if n < 20 {
		total = 1<<n - 1
		if !flushData {
			total--
		}
		if total <= 0 {
			return nil
		}
	}
	subset := func(take func(j int) bool) []int {
		s := make([]int, 0, n)
		for j, i := range cand {
			if take(j) {
				s = append(s, i)
			}
		}
		return s
	}
	var out [][]int
	if total >= 0 && total <= k {
		for mask := uint64(1); mask < 1<<n; mask++ {
			if valid(bits.OnesCount64(mask)) {
				out = append(out, subset(func(j int) bool { return mask&(1<<j) != 0 }))
			}
		}
		return out
	}
	seen := map[string]bool{}
	key := make([]byte, n)
	for len(out) < k {
		ones := 0
		for j := range key {
			key[j] = byte(rng.IntN(2))
			ones += int(key[j])
		}
		if !valid(ones) || seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		out = append(out, subset(func(j int) bool { return key[j] == 1 }))
	}
	return out
}
