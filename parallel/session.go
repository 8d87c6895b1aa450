package parallel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

type role uint8

const (
	roleClient role = iota
	roleServer
)

// endMode says how a session ends, and so what its goroutines do on the
// way out (docs/protocol.md §8).
type endMode uint8

const (
	endNone      endMode = iota
	endClose             // local orderly close: drain the queues, then CLOSED
	endAbort             // local failure: ERROR, queued frames dropped
	endQuiet             // the peer failed: send nothing, close at once
	endPeerClose         // the peer closed in order: read each stream up to its CLOSED
)

// abortGrace bounds how long a failing session waits for its ERROR frames
// to be written and for the peer to hang up.
const abortGrace = 2 * time.Second

// A Session is one client-server session of N streams. A client session
// (from Dial) sends windows and makes calls; a server session (from
// Listener.Accept) delivers windows, acks them and answers calls.
//
// A session fails as a whole: the first error on any stream, a refused
// frame, or Fail, ends it, and from then on every method returns that same
// error (Err). Close must be called in every case; it waits for all of the
// session's goroutines.
type Session struct {
	role     role
	id       [16]byte
	task     string
	mode     AuthMode
	t        Timeouts
	compress bool          // compress DATA/CALL/REPLY payloads
	idle     time.Duration // read deadline while waiting for a header
	streams  []*stream

	g      errgroup.Group     // every goroutine of the session
	ctx    context.Context    // canceled when the session has shut down
	cancel context.CancelFunc //

	done chan struct{} // closed when the session ends (err is set)

	mu        sync.Mutex // guards the four fields below
	err       error      // sticky error
	end       endMode    // how it ends
	abortCode Code       // endAbort: what to tell the peer
	abortMsg  string     //

	writersLeft, readersLeft atomic.Int32
	writersDone, readersDone chan struct{} // closed when the last writer/reader exits

	// client side
	snd    sender
	credit credit
	acks   acks
	calls  calls

	// server side
	rcv      receiver
	handler  Handler
	srvMu    sync.Mutex // guards srvCalls
	srvCalls int        // CALLs being handled
	maxCalls int        // limit advertised in HELLO_OK
}

// stream is one TCP connection of a session.
type stream struct {
	s     *Session
	index int
	c     *conn

	mu     sync.Mutex    // guards prio, data and queued
	prio   []Frame       // control frames (CALL, REPLY), written before data
	data   []Frame       // DATA and WINDOW_END frames, in order
	queued int64         // raw payload bytes in data and being written
	wake   chan struct{} // 1-buffered: a frame was queued

	lastWrite time.Time // owned by the writer goroutine

	bytesOut, bytesIn, framesOut, framesIn atomic.Uint64
}

func newSession(r role, conns []*conn, t Timeouts, peerKeepAlive time.Duration) *Session {
	s := &Session{
		role:        r,
		t:           t,
		idle:        3*peerKeepAlive + time.Second,
		done:        make(chan struct{}),
		writersDone: make(chan struct{}),
		readersDone: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for i, c := range conns {
		c.fr.stream = i
		s.streams = append(s.streams, &stream{s: s, index: i, c: c, wake: make(chan struct{}, 1)})
	}
	return s
}

// start launches the session's goroutines: a reader and a writer per
// stream, and the shutdown sequence.
func (s *Session) start() {
	n := int32(len(s.streams))
	s.writersLeft.Store(n)
	s.readersLeft.Store(n)
	for _, st := range s.streams {
		s.g.Go(st.writeLoop)
		s.g.Go(st.readLoop)
	}
	s.g.Go(s.shutdown)
}

// ID returns the session id.
func (s *Session) ID() [16]byte { return s.id }

// Task returns the task name from the hello.
func (s *Session) Task() string { return s.task }

// Streams returns the number of streams.
func (s *Session) Streams() int { return len(s.streams) }

// Auth returns how the session was authenticated.
func (s *Session) Auth() AuthMode { return s.mode }

// Done is closed when the session has ended; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns the session's sticky error, nil while it is up.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Session) ending() (endMode, Code, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end, s.abortCode, s.abortMsg
}

// finish ends the session with err, once; later calls do nothing.
func (s *Session) finish(err error, mode endMode, code Code, msg string) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err, s.end, s.abortCode, s.abortMsg = err, mode, code, msg
	close(s.done)
	s.mu.Unlock()
	s.rcv.signal()
}

// fail ends the session because of a local error, telling the peer.
func (s *Session) fail(err error) {
	s.finish(err, endAbort, codeOf(err), err.Error())
}

// Fail ends the session and sends the peer an ERROR frame with code and
// msg; the peer's calls then return a *RemoteError{Code: code, Msg: msg}.
// Codes from CodeApplication up are the upper layers'. Local calls return
// an error wrapping ErrSessionClosed. Close must still be called.
func (s *Session) Fail(code Code, msg string) {
	if len(msg) > MaxErrorMessage {
		msg = msg[:MaxErrorMessage]
	}
	s.finish(fmt.Errorf("%w: failed locally with %v: %s", ErrSessionClosed, code, msg), endAbort, code, msg)
}

// Close ends the session in order: frames already queued are sent, then
// every stream gets a CLOSED frame (bounded by Timeouts.Close). It waits
// for all of the session's goroutines and is safe to call more than once
// and after a failure. A client that needs its windows durable waits for
// their ack (WaitAck) before it closes.
func (s *Session) Close() error {
	s.finish(ErrSessionClosed, endClose, CodeClosed, "closed")
	s.g.Wait()
	return nil
}

// shutdown waits for the end of the session and tears it down as its end
// mode asks.
func (s *Session) shutdown() error {
	<-s.done
	mode, _, _ := s.ending()
	switch mode {
	case endClose:
		waitFor(s.writersDone, s.t.Close)
		waitFor(s.readersDone, s.t.Close)
	case endAbort:
		waitFor(s.writersDone, abortGrace)
		waitFor(s.readersDone, abortGrace)
	case endPeerClose:
		waitFor(s.readersDone, s.t.Close)
	}
	for _, st := range s.streams {
		st.c.nc.Close()
	}
	s.cancel()
	<-s.writersDone
	<-s.readersDone
	for _, st := range s.streams {
		st.c.fr.close()
		st.c.fw.close()
	}
	s.rcv.signal()
	return nil
}

func waitFor(ch <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// frameDeadline is the I/O deadline for a frame of n payload bytes.
func (t *Timeouts) frameDeadline(n int) time.Time {
	return time.Now().Add(t.Frame + time.Duration(float64(n)/float64(t.MinRate)*float64(time.Second)))
}

// enqueue queues a DATA or WINDOW_END frame.
func (st *stream) enqueue(f Frame) {
	st.mu.Lock()
	st.data = append(st.data, f)
	st.queued += int64(len(f.Payload))
	st.mu.Unlock()
	st.signal()
}

// enqueuePrio queues a control frame ahead of data.
func (st *stream) enqueuePrio(f Frame) {
	st.mu.Lock()
	st.prio = append(st.prio, f)
	st.mu.Unlock()
	st.signal()
}

func (st *stream) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

func (st *stream) queuedBytes() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.queued
}

// pop takes the next frame to write: session control (server stream 0:
// CREDIT, ACK), then control frames, then data.
func (st *stream) pop() (Frame, bool) {
	if st.index == 0 && st.s.role == roleServer {
		if f, ok := st.s.rcv.control(); ok {
			return f, true
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.prio) > 0 {
		f := st.prio[0]
		st.prio[0] = Frame{}
		st.prio = st.prio[1:]
		return f, true
	}
	if len(st.data) > 0 {
		f := st.data[0]
		st.data[0] = Frame{}
		st.data = st.data[1:]
		return f, true
	}
	return Frame{}, false
}

type action uint8

const (
	actWait  action = iota // nothing to write
	actWrite               // write the frame
	actFinal               // write the frame, flush, half-close, exit
	actExit                // exit without writing
)

// next decides what the writer does.
func (st *stream) next() (Frame, action) {
	select {
	case <-st.s.done:
		mode, code, msg := st.s.ending()
		switch mode {
		case endClose:
			if f, ok := st.pop(); ok {
				return f, actWrite
			}
			return Frame{Type: TypeError, Payload: errorBody(CodeClosed, msg)}, actFinal
		case endAbort:
			return Frame{Type: TypeError, Payload: errorBody(code, msg)}, actFinal
		default:
			return Frame{}, actExit
		}
	default:
	}
	if f, ok := st.pop(); ok {
		return f, actWrite
	}
	return Frame{}, actWait
}

// writeLoop is the stream's writer goroutine.
func (st *stream) writeLoop() error {
	defer func() {
		if st.s.writersLeft.Add(-1) == 0 {
			close(st.s.writersDone)
		}
	}()
	ka := st.s.t.KeepAlive
	tick := time.NewTicker(ka / 2)
	defer tick.Stop()
	st.lastWrite = time.Now()
	for {
		f, a := st.next()
		switch a {
		case actExit:
			return nil
		case actWait:
			if err := st.flush(); err != nil {
				return st.writeFailed(err)
			}
			select {
			case <-st.wake:
			case <-st.s.done:
			case now := <-tick.C:
				if now.Sub(st.lastWrite) >= ka {
					if err := st.write(&Frame{Type: TypePing}); err != nil {
						return st.writeFailed(err)
					}
				}
			}
			continue
		}
		if err := st.write(&f); err != nil {
			return st.writeFailed(err)
		}
		if f.Type == TypeData || f.Type == TypeWindowEnd {
			st.mu.Lock()
			st.queued -= int64(len(f.Payload))
			st.mu.Unlock()
		}
		if a == actFinal {
			if err := st.flush(); err != nil {
				return nil
			}
			if cw, ok := st.c.nc.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			return nil
		}
	}
}

func (st *stream) write(f *Frame) error {
	st.c.nc.SetWriteDeadline(st.s.t.frameDeadline(len(f.Payload)))
	n, err := st.c.fw.write(f, st.s.compress)
	if err != nil {
		return err
	}
	st.lastWrite = time.Now()
	st.framesOut.Add(1)
	st.bytesOut.Add(uint64(n))
	return nil
}

func (st *stream) flush() error {
	if n := st.c.fw.w.Buffered(); n > 0 {
		st.c.nc.SetWriteDeadline(st.s.t.frameDeadline(n))
		return st.c.fw.flush()
	}
	return nil
}

func (st *stream) writeFailed(err error) error {
	select {
	case <-st.s.done:
		return nil // the session is going down anyway
	default:
	}
	se := &StreamError{Stream: st.index, Op: "write", Err: timeoutErr(err)}
	st.s.fail(se)
	return se
}

// readLoop is the stream's reader goroutine.
func (st *stream) readLoop() error {
	defer func() {
		if st.s.readersLeft.Add(-1) == 0 {
			close(st.s.readersDone)
		}
	}()
	for {
		st.c.nc.SetReadDeadline(time.Now().Add(st.s.idle))
		h, err := st.c.fr.readHeader()
		if err != nil {
			return st.readFailed(err)
		}
		st.c.nc.SetReadDeadline(st.s.t.frameDeadline(int(h.length())))
		f, err := st.c.fr.readPayload(h)
		if err != nil {
			return st.readFailed(err)
		}
		st.framesIn.Add(1)
		st.bytesIn.Add(uint64(HeaderSize) + uint64(h.length()))
		stop, err := st.s.dispatch(st, f)
		if err != nil {
			return st.readFailed(err)
		}
		if stop {
			return nil
		}
	}
}

func (st *stream) readFailed(err error) error {
	select {
	case <-st.s.done:
		return nil
	default:
	}
	var fe *FrameError
	if !errors.As(err, &fe) && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrWindow) && !errors.Is(err, ErrCredit) {
		err = &StreamError{Stream: st.index, Op: "read", Err: timeoutErr(err)}
	}
	st.s.fail(err)
	return err
}

// timeoutErr marks deadline errors with ErrTimeout.
func timeoutErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// dispatch handles one frame read from st. stop ends the reader.
func (s *Session) dispatch(st *stream, f Frame) (stop bool, err error) {
	switch f.Type {
	case TypePing:
		return false, nil
	case TypeError:
		re := parseErrorBody(f.Payload)
		if re.Code == CodeClosed {
			s.finish(re, endPeerClose, 0, "")
		} else {
			s.finish(re, endQuiet, 0, "")
		}
		return true, nil
	}
	select {
	case <-s.done:
		if mode, _, _ := s.ending(); mode != endPeerClose {
			return false, nil // going down: read on, but discard
		}
	default:
	}
	if s.role == roleServer {
		return false, s.serverFrame(st, f)
	}
	return false, s.clientFrame(st, f)
}

// unexpected is the error for a frame that has no business where it came.
func unexpected(st *stream, f Frame, why string) error {
	return &FrameError{Stream: st.index, Type: f.Type, Window: f.Window, Entry: f.Entry, Ordinal: f.Ordinal,
		Err: fmt.Errorf("%w: %s", ErrProtocol, why)}
}

// StreamStats counts one stream's traffic. Bytes are bytes on the wire
// (headers and payloads as sent, after compression).
type StreamStats struct {
	BytesOut, BytesIn   uint64
	FramesOut, FramesIn uint64
	Queued              int64 // payload bytes queued to send
}

// Stats is a snapshot of a session's counters.
type Stats struct {
	Streams []StreamStats
	// Credit is the credit the server granted.
	Credit int64
	// InFlight is, on a client, the credit taken and not yet returned; on
	// a server, the cost of received frames not yet released.
	InFlight int64
	// MaxInFlight is the highest InFlight seen.
	MaxInFlight int64
	// CreditWaits counts the times a client blocked for want of credit;
	// CreditBlocked is how many callers are blocked now.
	CreditWaits   uint64
	CreditBlocked int
	// Windows counts windows ended (client) or delivered (server), and
	// DataBytes their raw (uncompressed) payload bytes.
	Windows   uint64
	DataBytes uint64
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	var st Stats
	for _, x := range s.streams {
		st.Streams = append(st.Streams, StreamStats{
			BytesOut: x.bytesOut.Load(), BytesIn: x.bytesIn.Load(),
			FramesOut: x.framesOut.Load(), FramesIn: x.framesIn.Load(),
			Queued: x.queuedBytes(),
		})
	}
	if s.role == roleClient {
		s.credit.stats(&st)
		s.snd.stats(&st)
	} else {
		s.rcv.stats(&st)
	}
	return st
}
