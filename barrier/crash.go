package barrier

import (
	"math/rand/v2"

	"github.com/logship/logship/journal"
)

// RandomSubset picks a crash state inside the window: the indexes (into
// w.Entries, ascending) of a random subset of the window's writes and
// discards, never none and never all of them, so that it names a state
// other than those before and after the window. Every such subset is
// equally likely. FLUSH and MARK entries change no data and are left out.
// A window with fewer than two writes and discards has no such state, and
// RandomSubset returns nil.
//
// Apply the subset with CoalesceSubset(w.Entries, keep) on top of the state
// before the window.
func (w *Window) RandomSubset(rng *rand.Rand) []int {
	var data []int
	for i, e := range w.Entries {
		if touchesDevice(e) {
			data = append(data, i)
		}
	}
	if len(data) < 2 {
		return nil
	}
	keep := make([]int, 0, len(data))
	for {
		keep = keep[:0]
		for _, i := range data {
			if rng.IntN(2) == 1 {
				keep = append(keep, i)
			}
		}
		if len(keep) > 0 && len(keep) < len(data) {
			return keep
		}
	}
}

// touchesDevice reports whether replaying e changes bytes on the device.
func touchesDevice(e journal.Entry) bool { return e.Len() > 0 && !e.IsMark() }
