package barrier_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/journal"
)

func TestRandomSubset(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []journal.Entry
		data    []int // the writes and discards
	}{
		{"one write", seq(wr(0, 1), flush()), nil},
		{"only barriers", seq(flush()), nil},
		{"write and discard", seq(wr(0, 1), disc(0, 1)), []int{0, 1}},
		{"three and a mark", seq(wr(0, 1), mark("a"), disc(4, 1), wrf(0, 2, journal.FlagFUA)), []int{0, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &barrier.Window{Entries: tt.entries}
			rng := rand.New(rand.NewPCG(1, 2))
			seen := map[string]int{}
			for range 600 {
				keep := w.RandomSubset(rng)
				if tt.data == nil {
					if keep != nil {
						t.Fatalf("RandomSubset = %v, want nil", keep)
					}
					continue
				}
				if len(keep) == 0 || len(keep) == len(tt.data) {
					t.Fatalf("RandomSubset = %v: empty or all of %v", keep, tt.data)
				}
				if !slices.IsSorted(keep) || len(slices.Compact(slices.Clone(keep))) != len(keep) {
					t.Fatalf("RandomSubset = %v: not strictly ascending", keep)
				}
				for _, i := range keep {
					if !slices.Contains(tt.data, i) {
						t.Fatalf("RandomSubset = %v: %d is not a write or discard", keep, i)
					}
				}
				seen[fmt.Sprint(keep)]++
			}
			// Every proper, non-empty subset shows up, about equally often.
			if want := 1<<len(tt.data) - 2; tt.data != nil && len(seen) != want {
				t.Errorf("saw %d different subsets %v, want %d", len(seen), seen, want)
			}
			for s, n := range seen {
				if n < 600/len(seen)/3 {
					t.Errorf("subset %s drawn %d times of 600 (%d subsets)", s, n, len(seen))
				}
			}
		})
	}
}
