package replay

// span is the byte range [start, end) of a target; empty when end <= start.
type span struct{ start, end int64 }

func (s span) empty() bool { return s.end <= s.start }

// union is the smallest span holding s and t.
func (s span) union(t span) span {
	switch {
	case t.empty():
		return s
	case s.empty():
		return t
	}
	return span{min(s.start, t.start), max(s.end, t.end)}
}

// writebackBytes is how many bytes the writer lets pile up before it hands
// their span to the flusher: large enough that a journal of small writes,
// which rewrites the same blocks window after window, is left alone.
const writebackBytes = 8 << 20

// writeback hands spans of written bytes from the writer to the flusher,
// which starts their writeback to the disk (startWriteback). A nil
// *writeback does nothing.
type writeback struct {
	fd      int
	spans   chan span // capacity 1: one span waits while one is flushed
	pending span      // written, not handed over yet (the writer's)
	bytes   int64     // bytes written in pending
}

// run is the flusher: it starts the writeback of each span handed over,
// until close. Errors are ignored: this is advice, and a failed write
// shows in the Sync that follows.
func (w *writeback) run() error {
	for s := range w.spans {
		startWriteback(w.fd, s.start, s.end-s.start)
	}
	return nil
}

// add records that n bytes were written inside s, and hands the pending
// span over once writebackBytes have piled up and the flusher can take it;
// otherwise the span grows and waits: the writer never blocks here.
func (w *writeback) add(s span, n int64) {
	if w == nil || s.empty() {
		return
	}
	w.pending = w.pending.union(s)
	w.bytes += n
	if w.bytes < writebackBytes {
		return
	}
	select {
	case w.spans <- w.pending:
		w.pending, w.bytes = span{}, 0
	default:
	}
}

// close ends run. What is still pending is left to the final Sync.
func (w *writeback) close() {
	if w != nil {
		close(w.spans)
	}
}
