package parallel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Handler answers a client's Call on a server session. It may run
// concurrently, up to ServerConfig.MaxCalls at a time per session. ctx is
// canceled when the session ends; Close waits for running handlers. An
// error is sent back as an error reply: a *RemoteError keeps its code, any
// other error gets CodeApplication. The session stays up either way.
type Handler func(ctx context.Context, s *Session, req []byte) ([]byte, error)

// Window is a complete window delivered by Next: its DATA frames in the
// order the client sent them (by ordinal). Release it when its frames are
// no longer needed, so that the server can return its credit.
type Window struct {
	Seq    uint64
	Frames []Frame
	Bytes  int64 // raw payload bytes of all frames

	cost     int64
	s        *Session
	released atomic.Bool
}

// Release gives the window's credit back to the client, and the frames'
// payload buffers back to the session's pools. The frames' payloads must
// not be used afterwards. Release is idempotent.
func (w *Window) Release() {
	if w == nil || !w.released.CompareAndSwap(false, true) {
		return
	}
	for i := range w.Frames {
		putPayload(w.Frames[i].Payload)
		w.Frames[i].Payload = nil
	}
	r := &w.s.rcv
	r.mu.Lock()
	r.held -= w.cost
	r.pendingCredit += w.cost
	r.mu.Unlock()
	w.s.streams[0].signal()
}

// receiver is the server's window reassembly and credit state.
type receiver struct {
	mu      sync.Mutex // guards everything below
	n       int        // streams
	limit   int64      // credit granted
	based   bool       // the session's first window is known
	first   uint64     // the session's first window
	next    uint64     // next window to deliver
	open    []uint64   // per stream: the window open on it
	started []bool     // per stream: a window frame has arrived
	windows map[uint64]*winState
	held    int64 // cost of frames received and not released
	max     int64 // highest held

	pendingCredit int64  // released, not yet sent back
	ackSet        bool   // an ack was given
	ackSeq        uint64 // highest ack given
	ackDirty      bool   // ackSeq not yet sent

	delivered uint64
	dataBytes uint64

	changed chan struct{} // closed and replaced when a window completes or the session ends
}

// winState is a window being reassembled.
type winState struct {
	frames []Frame     // arrival order until done, then by ordinal
	got    []windowEnd // per stream: frames and bytes received (stream fields)
	ended  []bool      // per stream: WINDOW_END arrived
	ends   int         // WINDOW_ENDs arrived
	total  windowEnd   // window fields of the first WINDOW_END
	cost   int64       // credit held
	bytes  uint64      // raw payload bytes when done
	done   bool        // complete and checked
}

func (r *receiver) init(n int, limit int64) {
	r.n, r.limit = n, limit
	r.open = make([]uint64, n)
	r.started = make([]bool, n)
	r.windows = make(map[uint64]*winState)
	r.changed = make(chan struct{})
}

func (r *receiver) signal() {
	r.mu.Lock()
	r.signalLocked()
	r.mu.Unlock()
}

func (r *receiver) signalLocked() {
	if r.changed != nil {
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

func (r *receiver) stats(st *Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st.Credit, st.InFlight, st.MaxInFlight = r.limit, r.held, r.max
	st.Windows, st.DataBytes = r.delivered, r.dataBytes
}

// control returns the next CREDIT or ACK frame to send, if any.
func (r *receiver) control() (Frame, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pendingCredit > 0 {
		n := r.pendingCredit
		r.pendingCredit = 0
		return Frame{Type: TypeCredit, Payload: creditBody(n)}, true
	}
	if r.ackDirty {
		r.ackDirty = false
		return Frame{Type: TypeAck, Window: r.ackSeq}, true
	}
	return Frame{}, false
}

func frameErr(st int, f Frame, sentinel error, format string, args ...any) error {
	return &FrameError{Stream: st, Type: f.Type, Window: f.Window, Entry: f.Entry, Ordinal: f.Ordinal,
		Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}

// enter checks that f belongs to the window open on stream st.
func (r *receiver) enter(st int, f Frame) error {
	if !r.started[st] {
		if !r.based {
			r.based, r.first, r.next = true, f.Window, f.Window
		} else if f.Window != r.first {
			return frameErr(st, f, ErrWindow, "the stream's first window is %d, the session's is %d", f.Window, r.first)
		}
		r.started[st], r.open[st] = true, f.Window
	}
	if f.Window != r.open[st] {
		return frameErr(st, f, ErrWindow, "window %d is open on this stream", r.open[st])
	}
	return nil
}

func (r *receiver) window(seq uint64) *winState {
	ws := r.windows[seq]
	if ws == nil {
		ws = &winState{got: make([]windowEnd, r.n), ended: make([]bool, r.n)}
		r.windows[seq] = ws
	}
	return ws
}

func (r *receiver) hold(st int, f Frame, cost int64) error {
	if r.held+cost > r.limit {
		return frameErr(st, f, ErrCredit, "frame costs %d bytes with %d of %d in use", cost, r.held, r.limit)
	}
	r.held += cost
	if r.held > r.max {
		r.max = r.held
	}
	return nil
}

// data takes a DATA frame that arrived on stream st.
func (r *receiver) data(st int, f Frame) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.enter(st, f); err != nil {
		return err
	}
	cost := frameCost(len(f.Payload))
	if err := r.hold(st, f, cost); err != nil {
		return err
	}
	ws := r.window(f.Window)
	ws.got[st].streamFrames++
	ws.got[st].streamBytes += uint64(len(f.Payload))
	ws.frames = append(ws.frames, f)
	ws.cost += cost
	return nil
}

// end takes a WINDOW_END frame that arrived on stream st.
func (r *receiver) end(st int, f Frame) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.enter(st, f); err != nil {
		return err
	}
	e := parseWindowEnd(f.Payload)
	ws := r.window(f.Window)
	g := ws.got[st]
	if g.streamFrames != e.streamFrames || g.streamBytes != e.streamBytes {
		return frameErr(st, f, ErrWindow, "%d DATA frames (%d bytes) of the window arrived on this stream, WINDOW_END says %d (%d bytes)",
			g.streamFrames, g.streamBytes, e.streamFrames, e.streamBytes)
	}
	if ws.ends == 0 {
		ws.total = e
	} else if e.frames != ws.total.frames || e.bytes != ws.total.bytes {
		return frameErr(st, f, ErrWindow, "window of %d frames (%d bytes), another stream said %d (%d bytes)",
			e.frames, e.bytes, ws.total.frames, ws.total.bytes)
	}
	if err := r.hold(st, f, CreditOverhead); err != nil {
		return err
	}
	ws.cost += CreditOverhead
	ws.ended[st] = true
	ws.ends++
	r.open[st] = f.Window + 1
	if ws.ends < r.n {
		return nil
	}
	var frames, bytes uint64
	for _, g := range ws.got {
		frames += g.streamFrames
		bytes += g.streamBytes
	}
	if frames != ws.total.frames || bytes != ws.total.bytes {
		return frameErr(st, f, ErrWindow, "the streams carried %d frames (%d bytes), the window has %d (%d bytes)",
			frames, bytes, ws.total.frames, ws.total.bytes)
	}
	slots := make([]Frame, frames)
	filled := make([]bool, frames)
	for _, d := range ws.frames {
		switch {
		case uint64(d.Ordinal) >= frames:
			return frameErr(st, f, ErrWindow, "DATA frame (entry %d) has ordinal %d in a window of %d frames", d.Entry, d.Ordinal, frames)
		case filled[d.Ordinal]:
			return frameErr(st, f, ErrWindow, "two DATA frames with ordinal %d (entries %d and %d)", d.Ordinal, slots[d.Ordinal].Entry, d.Entry)
		}
		slots[d.Ordinal], filled[d.Ordinal] = d, true
	}
	ws.frames, ws.bytes, ws.done = slots, bytes, true
	r.signalLocked()
	return nil
}

func (s *Session) serverOnly(op string) error {
	if s.role != roleServer {
		return fmt.Errorf("%w: %s on a client session", ErrWrongSide, op)
	}
	return nil
}

// Next returns the next complete window, strictly in sequence order. It
// waits for one, or for ctx. A window is delivered only after every one of
// its frames arrived and the counts of all WINDOW_END frames matched.
// After the client closed in order, windows that completed before are
// still delivered, then Next returns the close error; after a failure it
// returns the error at once.
func (s *Session) Next(ctx context.Context) (*Window, error) {
	if err := s.serverOnly("Next"); err != nil {
		return nil, err
	}
	r := &s.rcv
	for {
		err := s.Err()
		drain := false
		if err != nil {
			mode, _, _ := s.ending()
			if drain = mode == endPeerClose; !drain {
				return nil, err
			}
		}
		r.mu.Lock()
		if ws := r.windows[r.next]; ws != nil && ws.done {
			w := &Window{Seq: r.next, Frames: ws.frames, Bytes: int64(ws.bytes), cost: ws.cost, s: s}
			delete(r.windows, r.next)
			r.next++
			r.delivered++
			r.dataBytes += ws.bytes
			r.mu.Unlock()
			return w, nil
		}
		ch := r.changed
		r.mu.Unlock()
		if drain {
			select {
			case <-s.readersDone:
				return nil, err
			default:
			}
		}
		select {
		case <-ch:
		case <-s.readersDone:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ack tells the client that window seq and all before it are durable.
// Acks only move forward; a lower seq is ignored.
func (s *Session) Ack(seq uint64) error {
	if err := s.serverOnly("Ack"); err != nil {
		return err
	}
	if err := s.Err(); err != nil {
		return err
	}
	r := &s.rcv
	r.mu.Lock()
	if !r.ackSet || seq > r.ackSeq {
		r.ackSet, r.ackSeq, r.ackDirty = true, seq, true
	}
	r.mu.Unlock()
	s.streams[0].signal()
	return nil
}

// serverFrame handles a frame read by a server session.
func (s *Session) serverFrame(st *stream, f Frame) error {
	switch f.Type {
	case TypeData:
		return s.rcv.data(st.index, f)
	case TypeWindowEnd:
		return s.rcv.end(st.index, f)
	case TypeCall:
		if st.index != 0 {
			return unexpected(st, f, "CALL on a stream other than 0")
		}
		return s.startCall(st, f)
	}
	return unexpected(st, f, "frame not expected by a server")
}

func (s *Session) startCall(st *stream, f Frame) error {
	s.srvMu.Lock()
	if s.srvCalls >= s.maxCalls {
		s.srvMu.Unlock()
		return unexpected(st, f, fmt.Sprintf("more than %d outstanding calls", s.maxCalls))
	}
	s.srvCalls++
	s.srvMu.Unlock()
	if s.handler == nil {
		s.replyCall(f.Entry, nil, &RemoteError{Code: CodeUnsupported, Msg: "the server has no call handler"})
		return nil
	}
	s.g.Go(func() error {
		resp, err := s.handler(s.ctx, s, f.Payload)
		s.replyCall(f.Entry, resp, err)
		return nil
	})
	return nil
}

func (s *Session) replyCall(id uint64, resp []byte, err error) {
	if err == nil && len(resp) > MaxPayload {
		err = &RemoteError{Code: CodeInternal, Msg: fmt.Sprintf("reply of %d bytes, limit %d", len(resp), MaxPayload)}
	}
	f := Frame{Type: TypeReply, Entry: id, Payload: resp}
	if err != nil {
		code, msg := CodeApplication, err.Error()
		var re *RemoteError
		if errors.As(err, &re) {
			code, msg = re.Code, re.Msg
		}
		f.Flags, f.Payload = FlagError, errorBody(code, msg)
	}
	s.srvMu.Lock()
	s.srvCalls--
	s.srvMu.Unlock()
	s.streams[0].enqueuePrio(f)
}
