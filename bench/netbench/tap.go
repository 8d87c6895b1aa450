package netbench

import (
	"encoding/binary"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/logship/logship/parallel"
)

// The proxy reads the frames going through it (docs/protocol.md §2, §3):
// it learns each connection's session from its HELLO, which windows the
// source closed and their last entries from DATA and WINDOW_END frames,
// and which windows the server declared durable from ACK frames. That is
// enough to time every window from its last WINDOW_END to its ack (the
// apply latency), and for the fault campaign to know every position the
// server ever acked. parallel.ReadFrameHeader and
// parallel.ReadHelloSession read the frozen layout.

// tapEvent is one frame header seen on a connection.
type tapEvent struct {
	typ     parallel.Type
	window  uint64
	entry   uint64
	payload []byte    // the payload of a HELLO or ERROR frame
	at      time.Time // when the chunk that completed it was fed
}

// tapSpan locates frame bytes in a chunk just fed to a tap: the first
// byte of a DATA payload and the end of that run of payload bytes inside
// the chunk (-1 if the chunk holds none), and the first header byte (-1
// if none starts or continues in the chunk).
type tapSpan struct {
	data, dataEnd int
	header        int
}

// tap follows the frames of one direction of one connection.
type tap struct {
	hdr    [parallel.HeaderSize]byte
	n      int   // header bytes collected
	left   int64 // payload bytes of the current frame still to come
	typ    parallel.Type
	keep   bool // the current frame's payload is collected (HELLO, ERROR)
	ev     tapEvent
	broken bool // the stream stopped making sense (a corrupted header)
	emit   func(tapEvent)
}

// tapKeep bounds the payloads a tap collects.
const tapKeep = 2 + parallel.MaxErrorMessage

// feed follows p, which passed the proxy at now, calling emit for every
// complete header (for HELLO and ERROR, once the payload has arrived), and
// says where p holds frame bytes.
func (t *tap) feed(p []byte, now time.Time) tapSpan {
	sp := tapSpan{data: -1, dataEnd: -1, header: -1}
	for i := 0; i < len(p) && !t.broken; {
		if t.left > 0 {
			n := int(min(t.left, int64(len(p)-i)))
			if t.typ == parallel.TypeData && sp.data < 0 {
				sp.data, sp.dataEnd = i, i+n
			}
			if t.keep {
				t.ev.payload = append(t.ev.payload, p[i:i+n]...)
			}
			t.left -= int64(n)
			i += n
			if t.left == 0 && t.keep {
				t.ev.at = now
				t.emit(t.ev)
			}
			continue
		}
		if sp.header < 0 {
			sp.header = i
		}
		n := copy(t.hdr[t.n:], p[i:])
		t.n += n
		i += n
		if t.n < len(t.hdr) {
			continue
		}
		t.n = 0
		h, err := parallel.ReadFrameHeader(t.hdr[:])
		if err != nil {
			t.broken = true
			break
		}
		t.typ, t.left = h.Type, int64(h.Length)
		t.ev = tapEvent{typ: t.typ, window: h.Window, entry: h.Entry, at: now}
		t.keep = (t.typ == parallel.TypeHello || t.typ == parallel.TypeError) && t.left <= tapKeep
		if t.left == 0 || !t.keep {
			t.emit(t.ev)
		}
	}
	return sp
}

// A Ledger is what the proxy learned from the frames it carried: every
// session, its windows, and the server's acks. It is safe for concurrent
// use.
type Ledger struct {
	mu       sync.Mutex
	sessions map[[16]byte]*sessionLog
	order    []*sessionLog         // in order of arrival
	acked    AckedPosition         // the highest position any ack named
	errors   map[parallel.Code]int // ERROR frames seen, by code
	lat      []time.Duration
}

// AckedPosition is the highest window the server acked and the entry
// position that window ends at (its last entry + 1). Entry is -1 when the
// ack named a window the ledger never saw.
type AckedPosition struct {
	Valid  bool
	Window uint64
	Next   int64
}

// Boundary is a window the source closed: the position after it.
type Boundary struct {
	NextWindow uint64
	NextEntry  int64
}

type sessionLog struct {
	id      [16]byte
	streams int
	windows map[uint64]*windowLog
	done    []uint64 // complete windows not yet acked, in order
}

type windowLog struct {
	seq      uint64
	last     int64 // highest entry seen in it (-1: none)
	ends     int   // WINDOW_END frames seen
	complete time.Time
	acked    bool
}

// NewLedger returns an empty Ledger.
func NewLedger() *Ledger {
	return &Ledger{sessions: make(map[[16]byte]*sessionLog), errors: make(map[parallel.Code]int)}
}

// errorFrame counts an ERROR frame.
func (l *Ledger) errorFrame(ev tapEvent) {
	code := parallel.Code(0xffff) // a truncated body: not a valid code
	if len(ev.payload) >= 2 {
		code = parallel.Code(binary.LittleEndian.Uint16(ev.payload))
	}
	l.errors[code]++
}

// hello registers a connection of a session; it returns the session's log.
func (l *Ledger) hello(payload []byte) *sessionLog {
	id, streams, ok := parallel.ReadHelloSession(payload)
	if !ok {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sessions[id]
	if s == nil {
		s = &sessionLog{id: id, streams: streams, windows: make(map[uint64]*windowLog)}
		l.sessions[id] = s
		l.order = append(l.order, s)
	}
	return s
}

func (s *sessionLog) window(seq uint64) *windowLog {
	w := s.windows[seq]
	if w == nil {
		w = &windowLog{seq: seq, last: -1}
		s.windows[seq] = w
	}
	return w
}

// clientFrame records a frame the source sent in session s.
func (l *Ledger) clientFrame(s *sessionLog, ev tapEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ev.typ {
	case parallel.TypeData:
		w := s.window(ev.window)
		w.last = max(w.last, int64(ev.entry))
	case parallel.TypeWindowEnd:
		w := s.window(ev.window)
		w.ends++
		if w.ends == s.streams {
			// An empty window ends where the one before it ended; that
			// one is complete too, since every stream carries windows in
			// order.
			if p := s.windows[w.seq-1]; w.last < 0 && w.seq > 0 && p != nil {
				w.last = p.last
			}
			w.complete = ev.at
			s.done = append(s.done, w.seq)
		}
	case parallel.TypeError:
		l.errorFrame(ev)
	}
}

// serverFrame records a frame the server sent in session s.
func (l *Ledger) serverFrame(s *sessionLog, ev tapEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ev.typ {
	case parallel.TypeAck:
		a := ev.window
		k := 0
		for ; k < len(s.done) && s.done[k] <= a; k++ {
			w := s.windows[s.done[k]]
			w.acked = true
			l.lat = append(l.lat, ev.at.Sub(w.complete))
		}
		s.done = s.done[k:]
		next := int64(-1)
		if w := l.completeWindow(s, a); w != nil {
			next = w.last + 1
		}
		if !l.acked.Valid || a > l.acked.Window {
			l.acked.Window = a
		}
		if !l.acked.Valid || next > l.acked.Next {
			l.acked.Next = next
		}
		l.acked.Valid = true
	case parallel.TypeError:
		l.errorFrame(ev)
	}
}

// completeWindow finds window seq complete in session s, or else in the
// latest earlier session that completed it (an ack may name a window of
// an earlier session).
func (l *Ledger) completeWindow(s *sessionLog, seq uint64) *windowLog {
	if w := s.windows[seq]; w != nil && w.ends == s.streams {
		return w
	}
	for _, o := range slices.Backward(l.order) {
		if w := o.windows[seq]; w != nil && w.ends == o.streams {
			return w
		}
	}
	return nil
}

// Acked is the highest position the server acked so far.
func (l *Ledger) Acked() AckedPosition {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// IsBoundary reports whether b is the position after a window some
// session closed, or the start (nothing durable).
func (l *Ledger) IsBoundary(b Boundary) bool {
	if b.NextWindow == 0 && b.NextEntry == 0 {
		return true
	}
	if b.NextWindow == 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.order {
		if w := s.windows[b.NextWindow-1]; w != nil && w.ends == s.streams && w.last+1 == b.NextEntry {
			return true
		}
	}
	return false
}

// Sessions is the number of sessions seen.
func (l *Ledger) Sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.order)
}

// Errors counts the ERROR frames seen (either direction) by code; an
// orderly close is code CLOSED.
func (l *Ledger) Errors() map[parallel.Code]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.errors)
}

// Latencies returns the time from each window's last WINDOW_END to the
// ack that covered it, in ack order.
func (l *Ledger) Latencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lat)
}
