package journal

// Stop is a stop condition with replay-log's meaning: a walk stops at (and
// includes) the first entry that meets any of the conditions set.
type Stop struct {
	Limit     int64  // stop at the Limit-th entry walked (from the start position); 0: no limit
	EndMark   string // stop at a mark with exactly this label
	NextFlush bool   // stop at an entry with the FLUSH bit
	NextFUA   bool   // stop at an entry with the FUA bit
}

// IsZero reports whether no condition is set.
func (s Stop) IsZero() bool { return s == Stop{} }

// Hit reports whether e, the walked-th entry of a walk (counting from 1),
// ends the walk.
func (s Stop) Hit(e Entry, walked int64) bool {
	switch {
	case s.Limit > 0 && walked == s.Limit:
		return true
	case s.NextFlush && e.Flags&FlagFlush != 0:
		return true
	case s.NextFUA && e.Flags&FlagFUA != 0:
		return true
	case s.EndMark != "" && e.IsMark() && e.Label == s.EndMark:
		return true
	}
	return false
}
