package parallel

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
)

// sender is the client's window state.
type sender struct {
	mu      sync.Mutex // guards everything below; held by SendFrame and EndWindow
	started bool       // a window has been opened in this session
	window  uint64     // the open window, or the next one
	ordinal uint32     // next DATA ordinal in the window
	cost    int64      // credit taken by the open window so far
	per     []windowEnd
	frames  uint64 // DATA frames of the open window
	bytes   uint64 // their raw bytes
	rr      int    // rotating start for the least-queued choice

	windows atomic.Uint64 // windows ended; read by Stats without mu
	sent    atomic.Uint64 // raw DATA bytes queued; read by Stats without mu
}

func (sn *sender) stats(st *Stats) {
	st.Windows = sn.windows.Load()
	st.DataBytes = sn.sent.Load()
}

// credit is the client's view of the server's byte credit.
type credit struct {
	mu       sync.Mutex    // guards everything below
	limit    int64         // granted in HELLO_OK
	inFlight int64         // taken and not returned
	max      int64         // highest inFlight
	waits    uint64        // times a caller blocked
	blocked  int           // callers blocked now
	changed  chan struct{} // closed and replaced when credit comes back
}

func (c *credit) stats(st *Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st.Credit, st.InFlight, st.MaxInFlight = c.limit, c.inFlight, c.max
	st.CreditWaits, st.CreditBlocked = c.waits, c.blocked
}

// take blocks until n bytes of credit are available and takes them.
func (s *Session) takeCredit(ctx context.Context, n int64) error {
	c := &s.credit
	c.mu.Lock()
	counted := false
	for c.limit-c.inFlight < n {
		if !counted {
			c.waits++
			counted = true
		}
		c.blocked++
		ch := c.changed
		c.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-s.done:
			err = s.Err()
		}
		c.mu.Lock()
		c.blocked--
		if err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.inFlight += n
	if c.inFlight > c.max {
		c.max = c.inFlight
	}
	c.mu.Unlock()
	return nil
}

// returnCredit handles a CREDIT frame.
func (s *Session) returnCredit(n int64) error {
	c := &s.credit
	c.mu.Lock()
	defer c.mu.Unlock()
	if n <= 0 || n > c.inFlight {
		return fmt.Errorf("CREDIT returns %d bytes, %d in flight", n, c.inFlight)
	}
	c.inFlight -= n
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

// Credit returns the credit the server granted: the most a window may
// cost (its raw payload bytes plus CreditOverhead per DATA frame plus
// CreditOverhead per stream).
func (s *Session) Credit() int64 {
	if s.role == roleServer {
		return s.rcv.limit
	}
	return s.credit.limit
}

// WindowCost is what a window of frames DATA frames carrying bytes raw
// payload bytes costs in credit on this session.
func (s *Session) WindowCost(frames int, bytes int64) int64 {
	return bytes + int64(frames)*CreditOverhead + int64(len(s.streams))*CreditOverhead
}

func (s *Session) clientOnly(op string) error {
	if s.role != roleClient {
		return fmt.Errorf("%w: %s on a server session", ErrWrongSide, op)
	}
	return s.Err()
}

// SendFrame queues a DATA frame of window f.Window with entry index
// f.Entry (f.Type must be 0 or TypeData; Flags and Ordinal are ignored).
// The frame goes on the stream with the fewest queued bytes.
//
// Windows are sent one at a time in consecutive order: all frames of
// window W, then EndWindow(W), then window W+1. The first window of a
// session may have any number. SendFrame blocks while the server's credit
// is used up (backpressure); a canceled ctx leaves the window as it was.
//
// The payload is handed over: it is kept until the frame has been
// written, so the caller must not modify it after the call. SendFrame and
// EndWindow must not be called concurrently with each other.
func (s *Session) SendFrame(ctx context.Context, f Frame) error {
	if err := s.clientOnly("SendFrame"); err != nil {
		return err
	}
	if f.Type != 0 && f.Type != TypeData {
		return fmt.Errorf("%w: SendFrame sends DATA frames, not %v", ErrProtocol, f.Type)
	}
	if len(f.Payload) > MaxPayload {
		return fmt.Errorf("%w: DATA frame (window %d, entry %d) of %d bytes, limit %d", ErrFrameTooLarge, f.Window, f.Entry, len(f.Payload), MaxPayload)
	}
	sn := &s.snd
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.started && f.Window != sn.window {
		return fmt.Errorf("%w: DATA frame for window %d while window %d is open", ErrWindowOrder, f.Window, sn.window)
	}
	cost := frameCost(len(f.Payload))
	if w := sn.cost + cost + int64(len(s.streams))*CreditOverhead; w > s.credit.limit {
		return fmt.Errorf("%w: window %d would cost %d bytes, credit is %d", ErrWindowTooLarge, f.Window, w, s.credit.limit)
	}
	if err := s.takeCredit(ctx, cost); err != nil {
		return err
	}
	if !sn.started {
		sn.started, sn.window = true, f.Window
		sn.per = make([]windowEnd, len(s.streams))
	}
	st := s.leastQueued()
	st.enqueue(Frame{Type: TypeData, Window: f.Window, Entry: f.Entry, Ordinal: sn.ordinal, Payload: f.Payload})
	n := uint64(len(f.Payload))
	sn.ordinal++
	sn.cost += cost
	sn.frames++
	sn.bytes += n
	sn.sent.Add(n)
	sn.per[st.index].streamFrames++
	sn.per[st.index].streamBytes += n
	return nil
}

// leastQueued picks the stream with the fewest queued bytes; ties go
// round the streams.
func (s *Session) leastQueued() *stream {
	sn := &s.snd
	n := len(s.streams)
	best := s.streams[sn.rr%n]
	bq := best.queuedBytes()
	for i := 1; i < n && bq > 0; i++ {
		st := s.streams[(sn.rr+i)%n]
		if q := st.queuedBytes(); q < bq {
			best, bq = st, q
		}
	}
	sn.rr++
	return best
}

// EndWindow ends window seq: a WINDOW_END frame goes on every stream,
// behind that stream's DATA frames of the window, carrying the stream's
// and the window's frame and byte counts. The server delivers the window
// once all of them have arrived and the counts match. An empty window (no
// SendFrame) is allowed.
func (s *Session) EndWindow(ctx context.Context, seq uint64) error {
	if err := s.clientOnly("EndWindow"); err != nil {
		return err
	}
	sn := &s.snd
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.started && seq != sn.window {
		return fmt.Errorf("%w: end of window %d while window %d is open", ErrWindowOrder, seq, sn.window)
	}
	if err := s.takeCredit(ctx, int64(len(s.streams))*CreditOverhead); err != nil {
		return err
	}
	if !sn.started {
		sn.started, sn.window = true, seq
		sn.per = make([]windowEnd, len(s.streams))
	}
	for i, st := range s.streams {
		e := sn.per[i]
		e.frames, e.bytes = sn.frames, sn.bytes
		st.enqueue(Frame{Type: TypeWindowEnd, Window: seq, Payload: e.marshal()})
		sn.per[i] = windowEnd{}
	}
	sn.window = seq + 1
	sn.ordinal, sn.cost, sn.frames, sn.bytes = 0, 0, 0, 0
	sn.windows.Add(1)
	return nil
}

// acks is the client's record of the server's acks.
type acks struct {
	mu      sync.Mutex    // guards everything below
	has     bool          // an ack arrived
	seq     uint64        // highest acked window
	changed chan struct{} // closed and replaced on every new ack
}

func (s *Session) ack(seq uint64) {
	a := &s.acks
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.has && seq <= a.seq {
		return
	}
	a.has, a.seq = true, seq
	close(a.changed)
	a.changed = make(chan struct{})
}

// Acked returns the highest window the server has acked as durable in
// this session, and whether there was an ack at all.
func (s *Session) Acked() (uint64, bool) {
	a := &s.acks
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seq, a.has
}

// WaitAck waits until the server has acked window seq (or a later one).
// An ack that arrived before the session ended still counts.
func (s *Session) WaitAck(ctx context.Context, seq uint64) error {
	if s.role != roleClient {
		return fmt.Errorf("%w: WaitAck on a server session", ErrWrongSide)
	}
	a := &s.acks
	for {
		a.mu.Lock()
		if a.has && a.seq >= seq {
			a.mu.Unlock()
			return nil
		}
		ch := a.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			if v, ok := s.Acked(); ok && v >= seq {
				return nil
			}
			return s.Err()
		}
	}
}

// calls is the client's table of outstanding calls.
type calls struct {
	mu      sync.Mutex               // guards next and pending
	next    uint64                   // next call id
	pending map[uint64]chan callDone // by call id; 1-buffered
	slots   chan struct{}            // one per call the server allows; freed by the reply
}

type callDone struct {
	resp []byte
	err  error
}

// Call sends a control request on stream 0 and waits for the server's
// reply. An error reply comes back as a *RemoteError and leaves the
// session up. At most the server's max calls are outstanding; more calls
// wait. If ctx ends first Call returns ctx.Err(); the reply is then
// dropped when it comes.
func (s *Session) Call(ctx context.Context, req []byte) ([]byte, error) {
	if err := s.clientOnly("Call"); err != nil {
		return nil, err
	}
	if len(req) > MaxPayload {
		return nil, fmt.Errorf("%w: CALL of %d bytes, limit %d", ErrFrameTooLarge, len(req), MaxPayload)
	}
	c := &s.calls
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, s.Err()
	}
	ch := make(chan callDone, 1)
	c.mu.Lock()
	id := c.next
	c.next++
	c.pending[id] = ch
	c.mu.Unlock()
	s.streams[0].enqueuePrio(Frame{Type: TypeCall, Entry: id, Payload: req})
	select {
	case d := <-ch:
		return d.resp, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, s.Err()
	}
}

// reply handles a REPLY frame.
func (s *Session) reply(st *stream, f Frame) error {
	c := &s.calls
	c.mu.Lock()
	ch, ok := c.pending[f.Entry]
	delete(c.pending, f.Entry)
	c.mu.Unlock()
	if !ok {
		return unexpected(st, f, "reply to a call that is not outstanding")
	}
	<-c.slots
	if f.Flags&FlagError != 0 {
		ch <- callDone{err: parseErrorBody(f.Payload)}
	} else {
		ch <- callDone{resp: f.Payload}
	}
	return nil
}

// clientFrame handles a frame read by a client session.
func (s *Session) clientFrame(st *stream, f Frame) error {
	switch f.Type {
	case TypeAck, TypeCredit, TypeReply:
		if st.index != 0 {
			return unexpected(st, f, "control frame on a stream other than 0")
		}
	default:
		return unexpected(st, f, "frame not expected by a client")
	}
	switch f.Type {
	case TypeAck:
		s.ack(f.Window)
	case TypeCredit:
		n := binary.LittleEndian.Uint64(f.Payload)
		if n > uint64(s.credit.limit) {
			return unexpected(st, f, fmt.Sprintf("CREDIT returns %d bytes, more than the %d granted", n, s.credit.limit))
		}
		if err := s.returnCredit(int64(n)); err != nil {
			return unexpected(st, f, err.Error())
		}
	case TypeReply:
		return s.reply(st, f)
	}
	return nil
}
