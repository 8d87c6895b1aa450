package crashtest_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"testing"

	"github.com/logship/logship/bench/crashtest"
	"github.com/logship/logship/fixtures"
)

// TestShards: the shards of a run check every state of it exactly once,
// their counts differ by at most one, and together they report what the
// whole run reports: the same states, verdicts and dedupes.
func TestShards(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(13, 512)
	wl.Entries = 300
	s := newSynth(t, wl, nil)
	// Fails about a third of the states, by their bytes alone.
	check := crashtest.CheckFunc(func(ctx context.Context, st *crashtest.State) ([]byte, error) {
		b, err := os.ReadFile(st.Image)
		if err != nil {
			return nil, err
		}
		h := fnv.New64a()
		h.Write(b)
		if h.Sum64()%3 == 0 {
			return []byte("unlucky\n"), errors.New("unlucky state")
		}
		return nil, nil
	})
	type state struct {
		seq, explore, sameAs int
		failed               bool
	}
	run := func(sh crashtest.Shard) ([]state, crashtest.Summary) {
		var out []state
		sum, err := crashtest.Crashtest(t.Context(), s.path, crashtest.Options{Check: check, Dedupe: true, Explore: 2, Seed: 3,
			Jobs: 2, Shard: sh, KeepGoing: true, Device: crashtest.DeviceFile, WorkDir: t.TempDir(),
			Report: func(r crashtest.Result) {
				out = append(out, state{r.Seq, r.Explore, r.SameAs, r.Err != nil})
			}})
		if err != nil && !errors.Is(err, crashtest.ErrFailed) {
			t.Fatal(err)
		}
		return out, sum
	}
	whole, wsum := run(crashtest.Shard{})
	if wsum.Deduped == 0 || wsum.Explored == 0 || wsum.Failed == 0 || !wsum.Complete || wsum.RunStates != len(whole) {
		t.Fatalf("whole run: %+v: want dedupes, explored states, failures, complete, %d states", wsum, len(whole))
	}
	for _, n := range []int{1, 3, 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var merged []state
			var counts []int
			for k := 1; k <= n; k++ {
				part, sum := run(crashtest.Shard{K: k, N: n})
				if sum.RunStates != wsum.RunStates || !sum.Complete {
					t.Errorf("shard %d/%d: %d states in the run, complete %v; want %d", k, n, sum.RunStates, sum.Complete, wsum.RunStates)
				}
				merged = append(merged, part...)
				counts = append(counts, len(part)-sum.Deduped)
			}
			slices.SortFunc(merged, func(a, b state) int {
				if a.seq != b.seq {
					return a.seq - b.seq
				}
				return a.explore - b.explore
			})
			if !slices.Equal(merged, whole) {
				t.Errorf("the shards' states merged:\n%v\nthe whole run's:\n%v", merged, whole)
			}
			if slices.Max(counts)-slices.Min(counts) > 1 {
				t.Errorf("states checked per shard %v: not balanced", counts)
			}
		})
	}
}

func TestParseShard(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want crashtest.Shard
		ok   bool
	}{
		{"1/1", crashtest.Shard{K: 1, N: 1}, true},
		{"3/4", crashtest.Shard{K: 3, N: 4}, true},
		{"0/4", crashtest.Shard{}, false},
		{"5/4", crashtest.Shard{}, false},
		{"2", crashtest.Shard{}, false},
		{"a/b", crashtest.Shard{}, false},
	} {
		got, err := crashtest.ParseShard(tt.in)
		if got != tt.want || (err == nil) != tt.ok || (err != nil && !errors.Is(err, crashtest.ErrBadOptions)) {
			t.Errorf("ParseShard(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
