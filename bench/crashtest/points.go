package crashtest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/logship/logship/journal"
)

// Points selects the crash points: the entries after which the state is
// checked. The zero value selects none.
type Points struct {
	Flush bool  // every entry with the FLUSH bit
	FUA   bool  // every entry with the FUA bit
	Mark  bool  // every MARK
	Every int64 // every Every-th entry, counted from where checking starts
}

// DefaultPoints are every FLUSH, FUA and MARK: the states the source
// promised were durable.
var DefaultPoints = Points{Flush: true, FUA: true, Mark: true}

// ParsePoints reads a comma-separated list of flush, fua, mark and every:N,
// e.g. "flush,fua,mark" or "every:100".
func ParsePoints(s string) (Points, error) {
	var p Points
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); {
		case f == "flush":
			p.Flush = true
		case f == "fua":
			p.FUA = true
		case f == "mark":
			p.Mark = true
		case strings.HasPrefix(f, "every:"):
			n, err := strconv.ParseInt(strings.TrimPrefix(f, "every:"), 10, 64)
			if err != nil || n <= 0 {
				return p, fmt.Errorf("points %q: every:N needs a positive entry count", f)
			}
			p.Every = n
		default:
			return p, fmt.Errorf("points %q: want flush, fua, mark or every:N", f)
		}
	}
	return p, nil
}

// IsZero reports whether no point is selected.
func (p Points) IsZero() bool { return p == Points{} }

func (p Points) String() string {
	var s []string
	if p.Flush {
		s = append(s, "flush")
	}
	if p.FUA {
		s = append(s, "fua")
	}
	if p.Mark {
		s = append(s, "mark")
	}
	if p.Every > 0 {
		s = append(s, "every:"+strconv.FormatInt(p.Every, 10))
	}
	return strings.Join(s, ",")
}

// hit reports whether e is a point; k counts the entries from where
// checking starts (the from-mark is 0, else entry 0 is 1).
func (p Points) hit(e journal.Entry, k int64) bool {
	return (p.Flush && e.Flags&journal.FlagFlush != 0) ||
		(p.FUA && e.Flags&journal.FlagFUA != 0) ||
		(p.Mark && e.IsMark()) ||
		(p.Every > 0 && k > 0 && k%p.Every == 0)
}
