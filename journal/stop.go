package journal

// Stop is a stop condition with replay-log's meaning: a walk stops at (and
// includes) the first entry that meets the conditions set.
//
// The rules are replay-log's (xfstests src/log-writes/replay-log.c,
// should_stop), including the one that surprises: when EndMark is set, only
// that mark stops the walk, and NextFlush and NextFUA are ignored (replay-log
// asks every flag it stops on to belong to a mark with that label). Limit
// counts on its own in every case.
type Stop struct {
	Limit     int64  // stop at the Limit-th entry walked (from the start position); 0: no limit
	EndMark   string // stop at a mark with exactly this label; NextFlush and NextFUA then count for nothing
	NextFlush bool   // stop at an entry with the FLUSH bit (unless EndMark is set)
	NextFUA   bool   // stop at an entry with the FUA bit (unless EndMark is set)
}

// IsZero reports whether no condition is set.
func (s Stop) IsZero() bool { return s == Stop{} }

// Hit reports whether e, the walked-th entry of a walk (counting from 1),
// ends the walk.
func (s Stop) Hit(e Entry, walked int64) bool {
	switch {
	case s.Limit > 0 && walked == s.Limit:
		return true
	case s.EndMark != "":
		return e.IsMark() && e.Label == s.EndMark
	case s.NextFlush && e.Flags&FlagFlush != 0:
		return true
	case s.NextFUA && e.Flags&FlagFUA != 0:
		return true
	}
	return false
}
