package crashtest

import (
	"fmt"
	"strconv"
	"strings"
)

// Shard is a share of a run's states for one of N machines: shard K of N
// (K from 1 to N) checks the states that need a check whose number in the
// run, counted from 0 in journal order, is K-1 modulo N. Every shard still
// replays the whole journal, so every shard decides the same way which
// states need a check: a point Dedupe finds the same as the point before it
// goes to the shard that checks that point. The N shards of a run check
// every state exactly once, and their counts differ by at most one. The
// zero value is the whole run.
type Shard struct {
	K, N int
}

// IsZero reports whether s is the whole run.
func (s Shard) IsZero() bool { return s == Shard{} }

func (s Shard) String() string {
	if s.IsZero() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.K, s.N)
}

// ParseShard reads "K/N", 1 ≤ K ≤ N.
func ParseShard(v string) (Shard, error) {
	k, n, ok := strings.Cut(v, "/")
	var s Shard
	var err1, err2 error
	s.K, err1 = strconv.Atoi(strings.TrimSpace(k))
	s.N, err2 = strconv.Atoi(strings.TrimSpace(n))
	if !ok || err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("%w: shard %q: want K/N, e.g. 2/4", ErrBadOptions, v)
	}
	if err := s.valid(); err != nil {
		return Shard{}, err
	}
	return s, nil
}

func (s Shard) valid() error {
	if s.IsZero() || (s.N >= 1 && s.K >= 1 && s.K <= s.N) {
		return nil
	}
	return fmt.Errorf("%w: shard %d/%d: want 1 ≤ K ≤ N", ErrBadOptions, s.K, s.N)
}

// owns reports whether the unit-th state that needs a check is this
// shard's.
func (s Shard) owns(unit int) bool {
	return s.IsZero() || unit%s.N == s.K-1
}
