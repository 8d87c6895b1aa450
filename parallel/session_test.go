package parallel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every wait in a test; tests do not assert on time.
const testTimeout = 30 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// listen starts a server on a loopback port; insecure unless cfg says
// otherwise.
func listen(t testing.TB, cfg ServerConfig) *Listener {
	t.Helper()
	if cfg.TLS == nil && cfg.PSK == nil && cfg.PSKKeys == nil {
		cfg.Insecure = true
	}
	l, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t testing.TB, l *Listener, cfg ClientConfig) *Session {
	t.Helper()
	if cfg.TLS == nil && cfg.PSK == nil {
		cfg.Insecure = true
	}
	c, err := Dial(testCtx(t), l.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func accept(t testing.TB, l *Listener) *Session {
	t.Helper()
	s, err := l.Accept(testCtx(t))
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pair returns a connected client and server session.
func pair(t testing.TB, scfg ServerConfig, ccfg ClientConfig) (client, server *Session) {
	t.Helper()
	l := listen(t, scfg)
	c := dial(t, l, ccfg)
	return c, accept(t, l)
}

// fill makes a deterministic payload for (window, ordinal).
func fill(window uint64, ord uint32, n int) []byte {
	b := make([]byte, n)
	x := window*0x9E3779B97F4A7C15 ^ uint64(ord)*0xBF58476D1CE4E5B9 ^ uint64(n)
	for i := 0; i+8 <= n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(x >> (8 * (i & 7)))
	}
	return b
}

// planned is a window of the test plan: its frame sizes.
type planned struct {
	seq   uint64
	sizes []int
}

func makePlan(rng *rand.Rand, first uint64, windows, maxFrames, maxSize int) []planned {
	plan := make([]planned, windows)
	for i := range plan {
		p := planned{seq: first + uint64(i)}
		for range rng.IntN(maxFrames + 1) {
			n := rng.IntN(maxSize + 1)
			if rng.IntN(10) == 0 {
				n = rng.IntN(16) // tiny and empty payloads too
			}
			p.sizes = append(p.sizes, n)
		}
		plan[i] = p
	}
	return plan
}

func entryOf(seq uint64, ord int) uint64 { return seq*1000 + uint64(ord) }

// sendPlan sends the plan's windows from the client.
func sendPlan(ctx context.Context, c *Session, plan []planned) error {
	for _, p := range plan {
		for i, n := range p.sizes {
			f := Frame{Window: p.seq, Entry: entryOf(p.seq, i), Payload: fill(p.seq, uint32(i), n)}
			if err := c.SendFrame(ctx, f); err != nil {
				return fmt.Errorf("window %d frame %d: %w", p.seq, i, err)
			}
		}
		if err := c.EndWindow(ctx, p.seq); err != nil {
			return fmt.Errorf("end of window %d: %w", p.seq, err)
		}
	}
	return nil
}

// checkWindow compares a delivered window with its plan.
func checkWindow(w *Window, p planned) error {
	if w.Seq != p.seq {
		return fmt.Errorf("got window %d, want %d", w.Seq, p.seq)
	}
	if len(w.Frames) != len(p.sizes) {
		return fmt.Errorf("window %d: %d frames, want %d", w.Seq, len(w.Frames), len(p.sizes))
	}
	var total int64
	for i, f := range w.Frames {
		if f.Type != TypeData || f.Window != p.seq || f.Entry != entryOf(p.seq, i) || f.Ordinal != uint32(i) {
			return fmt.Errorf("window %d frame %d: got %v window %d entry %d ordinal %d", w.Seq, i, f.Type, f.Window, f.Entry, f.Ordinal)
		}
		if !bytes.Equal(f.Payload, fill(p.seq, uint32(i), p.sizes[i])) {
			return fmt.Errorf("window %d frame %d: payload of %d bytes differs", w.Seq, i, len(f.Payload))
		}
		total += int64(len(f.Payload))
	}
	if w.Bytes != total {
		return fmt.Errorf("window %d: Bytes %d, frames hold %d", w.Seq, w.Bytes, total)
	}
	return nil
}

// receivePlan receives, checks, releases and (if ack) acks the plan's
// windows.
func receivePlan(ctx context.Context, s *Session, plan []planned, ack bool) error {
	for _, p := range plan {
		w, err := s.Next(ctx)
		if err != nil {
			return fmt.Errorf("Next, want window %d: %w", p.seq, err)
		}
		if err := checkWindow(w, p); err != nil {
			return err
		}
		w.Release()
		if !ack {
			continue
		}
		if err := s.Ack(w.Seq); err != nil {
			return err
		}
	}
	return nil
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, 4, 8} {
		t.Run(fmt.Sprintf("streams=%d", n), func(t *testing.T) {
			ctx := testCtx(t)
			c, s := pair(t, ServerConfig{Credit: 16 << 20}, ClientConfig{Streams: n, Task: "rt-1"})
			if s.Task() != "rt-1" || s.Streams() != n || s.ID() != c.ID() {
				t.Fatalf("server session: task %q streams %d id %x, client id %x", s.Task(), s.Streams(), s.ID(), c.ID())
			}
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			plan := makePlan(rng, 1000, 80, 12, 96<<10)
			plan[3].sizes = nil                           // an empty window
			plan[5].sizes = []int{MaxPayload, 1, 1 << 20} // the largest frame
			errc := make(chan error, 1)
			go func() { errc <- receivePlan(ctx, s, plan, true) }()
			if err := sendPlan(ctx, c, plan); err != nil {
				t.Fatal(err)
			}
			last := plan[len(plan)-1].seq
			if err := c.WaitAck(ctx, last); err != nil {
				t.Fatalf("WaitAck(%d): %v", last, err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if got, ok := c.Acked(); !ok || got != last {
				t.Fatalf("Acked() = %d, %v; want %d", got, ok, last)
			}
			cs, ss := c.Stats(), s.Stats()
			if cs.Windows != uint64(len(plan)) || ss.Windows != uint64(len(plan)) || cs.DataBytes != ss.DataBytes {
				t.Fatalf("stats: client %d windows %d bytes, server %d windows %d bytes", cs.Windows, cs.DataBytes, ss.Windows, ss.DataBytes)
			}
			var used int
			for i, st := range cs.Streams {
				if st.BytesOut != ss.Streams[i].BytesIn {
					t.Errorf("stream %d: client wrote %d bytes, server read %d", i, st.BytesOut, ss.Streams[i].BytesIn)
				}
				if st.FramesOut > uint64(len(plan)) { // more than the WINDOW_ENDs
					used++
				}
			}
			if used != n {
				t.Errorf("DATA frames went on %d of %d streams", used, n)
			}
			if cs.InFlight != 0 || ss.InFlight != 0 {
				t.Errorf("credit in flight after all releases: client %d, server %d", cs.InFlight, ss.InFlight)
			}
			c.Close()
			if _, err := s.Next(ctx); !errors.Is(err, ErrSessionClosed) {
				t.Fatalf("server Next after client Close: %v, want ErrSessionClosed", err)
			}
		})
	}
}

// TestCreditBound: a server that does not release windows stalls the
// client, whose credit in flight never exceeds the grant.
func TestCreditBound(t *testing.T) {
	const credit = 256 << 10
	ctx := testCtx(t)
	c, s := pair(t, ServerConfig{Credit: credit}, ClientConfig{Streams: 4})
	plan := make([]planned, 64)
	for i := range plan {
		plan[i] = planned{seq: uint64(i), sizes: []int{16 << 10, 16 << 10}}
	}
	sent := make(chan error, 1)
	go func() { sent <- sendPlan(ctx, c, plan) }()

	// Take windows without releasing them until the client blocks for
	// credit. The wait is bounded by ctx, not asserted.
	var held []*Window
	for c.Stats().CreditBlocked == 0 {
		w, err := nextWithin(s, 20*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if w != nil {
			if err := checkWindow(w, plan[w.Seq]); err != nil {
				t.Fatal(err)
			}
			held = append(held, w)
		}
		if ctx.Err() != nil {
			t.Fatal("client never blocked for credit")
		}
	}
	select {
	case err := <-sent:
		t.Fatalf("client sent all windows without credit coming back (err %v)", err)
	default:
	}
	cost := c.WindowCost(2, 32<<10)
	if max := int64(len(held)) * cost; max > credit {
		t.Fatalf("server holds %d windows costing %d, credit %d", len(held), max, credit)
	}
	cs, ss := c.Stats(), s.Stats()
	if cs.InFlight > credit || cs.MaxInFlight > credit || ss.MaxInFlight > credit {
		t.Fatalf("in flight: client %d (max %d), server max %d; credit %d", cs.InFlight, cs.MaxInFlight, ss.MaxInFlight, credit)
	}
	if cs.InFlight+cost <= credit {
		t.Fatalf("client blocked with %d in flight although a window of %d fits in %d", cs.InFlight, cost, credit)
	}

	// Releasing lets the rest through.
	for _, w := range held {
		w.Release()
	}
	for i := len(held); i < len(plan); i++ {
		w, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkWindow(w, plan[i]); err != nil {
			t.Fatal(err)
		}
		w.Release()
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	cs, ss = c.Stats(), s.Stats()
	if cs.MaxInFlight > credit || ss.MaxInFlight > credit || cs.CreditWaits == 0 {
		t.Fatalf("max in flight: client %d, server %d, credit %d; client waited %d times", cs.MaxInFlight, ss.MaxInFlight, credit, cs.CreditWaits)
	}
}

// nextWithin returns a window, or nil if none came within d.
func nextWithin(s *Session, d time.Duration) (*Window, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	w, err := s.Next(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, nil
	}
	return w, err
}

// TestCut: a TCP connection of the session cut in the middle of a window
// fails both sides; the incomplete window is never delivered.
func TestCut(t *testing.T) {
	for _, side := range []string{"client", "server"} {
		t.Run(side, func(t *testing.T) {
			ctx := testCtx(t)
			c, s := pair(t, ServerConfig{}, ClientConfig{Streams: 4})
			first := []planned{{seq: 1, sizes: []int{100, 200, 300}}}
			if err := sendPlan(ctx, c, first); err != nil {
				t.Fatal(err)
			}
			if err := receivePlan(ctx, s, first, true); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitAck(ctx, 1); err != nil {
				t.Fatal(err)
			}
			for i := range 6 {
				if err := c.SendFrame(ctx, Frame{Window: 2, Entry: uint64(i), Payload: fill(2, uint32(i), 64<<10)}); err != nil {
					t.Fatal(err)
				}
			}
			if side == "client" {
				c.streams[2].c.nc.Close()
			} else {
				s.streams[2].c.nc.Close()
			}
			w, err := s.Next(ctx)
			if err == nil {
				t.Fatalf("server delivered window %d of an incomplete window", w.Seq)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("server never noticed the cut")
			}
			checkBroken(t, err)
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("client never noticed the cut")
			}
			cerr := c.Err()
			checkBroken(t, cerr)
			if err := c.EndWindow(ctx, 2); err != cerr {
				t.Fatalf("EndWindow after failure: %v, want the sticky %v", err, cerr)
			}
			if err := c.WaitAck(ctx, 2); err != cerr {
				t.Fatalf("WaitAck after failure: %v, want the sticky %v", err, cerr)
			}
			if _, err := s.Next(ctx); err == nil {
				t.Fatal("server Next after failure returned a window")
			}
		})
	}
}

// checkBroken accepts the errors a cut connection may surface as: the
// local stream's I/O error or the peer's report of it.
func checkBroken(t *testing.T, err error) {
	t.Helper()
	var se *StreamError
	var re *RemoteError
	switch {
	case errors.As(err, &se):
	case errors.As(err, &re) && re.Code == CodeStreamLost:
	default:
		t.Fatalf("error %v (%T), want a *StreamError or a STREAM_LOST *RemoteError", err, err)
	}
}

func TestZstd(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t, ServerConfig{}, ClientConfig{Streams: 2, Compress: true})
	text := bytes.Repeat([]byte("logship compresses journal entries full of repeated text. "), 4000)
	errc := make(chan error, 1)
	go func() {
		for i := range 10 {
			for j := range 4 {
				if err := c.SendFrame(ctx, Frame{Window: uint64(i), Entry: uint64(j), Payload: text[j:]}); err != nil {
					errc <- err
					return
				}
			}
			if err := c.EndWindow(ctx, uint64(i)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	var raw int64
	for i := range 10 {
		w, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w.Seq != uint64(i) || len(w.Frames) != 4 {
			t.Fatalf("window %d with %d frames, want %d with 4", w.Seq, len(w.Frames), i)
		}
		for j, f := range w.Frames {
			if !bytes.Equal(f.Payload, text[j:]) {
				t.Fatalf("window %d frame %d differs after decompression", i, j)
			}
		}
		raw += w.Bytes
		w.Release()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var wire uint64
	for _, st := range c.Stats().Streams {
		wire += st.BytesOut
	}
	if wire*4 > uint64(raw) {
		t.Fatalf("%d raw bytes took %d bytes on the wire: not compressed", raw, wire)
	}
}

func TestCall(t *testing.T) {
	ctx := testCtx(t)
	var mu sync.Mutex
	running, most := 0, 0
	handler := func(ctx context.Context, s *Session, req []byte) ([]byte, error) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		switch {
		case bytes.HasPrefix(req, []byte("fail")):
			return nil, &RemoteError{Code: CodeApplication + 1, Msg: "no such task"}
		case bytes.HasPrefix(req, []byte("plain")):
			return nil, errors.New("plain error")
		}
		time.Sleep(time.Millisecond)
		return append([]byte(s.Task()+":"), req...), nil
	}
	c, s := pair(t, ServerConfig{Handler: handler, MaxCalls: 2}, ClientConfig{Task: "calls"})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			req := fmt.Appendf(nil, "req %d", i)
			resp, err := c.Call(ctx, req)
			if err != nil {
				errs <- err
			} else if want := "calls:" + string(req); string(resp) != want {
				errs <- fmt.Errorf("reply %q, want %q", resp, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if most > 2 {
		t.Errorf("%d calls ran at once, limit 2", most)
	}
	_, err := c.Call(ctx, []byte("fail"))
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeApplication+1 || re.Msg != "no such task" {
		t.Fatalf("error reply: %v, want RemoteError code %d", err, CodeApplication+1)
	}
	_, err = c.Call(ctx, []byte("plain"))
	if !errors.As(err, &re) || re.Code != CodeApplication || re.Msg != "plain error" {
		t.Fatalf("error reply: %v, want RemoteError code %d", err, CodeApplication)
	}
	// The session survives error replies.
	if err := sendPlan(ctx, c, []planned{{seq: 9, sizes: []int{10}}}); err != nil {
		t.Fatal(err)
	}
	if err := receivePlan(ctx, s, []planned{{seq: 9, sizes: []int{10}}}, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}

	c2, _ := pair(t, ServerConfig{}, ClientConfig{})
	if _, err := c2.Call(ctx, []byte("x")); !errors.As(err, &re) || re.Code != CodeUnsupported {
		t.Fatalf("call without handler: %v, want UNSUPPORTED", err)
	}
}

func TestFail(t *testing.T) {
	ctx := testCtx(t)
	t.Run("client", func(t *testing.T) {
		c, s := pair(t, ServerConfig{}, ClientConfig{Streams: 3})
		c.Fail(CodeApplication+7, "sector 99 outside the image")
		_, err := s.Next(ctx)
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != CodeApplication+7 || re.Msg != "sector 99 outside the image" {
			t.Fatalf("server Next: %v, want the client's RemoteError", err)
		}
		if _, err2 := s.Next(ctx); err2 != err {
			t.Fatalf("second Next: %v, want the same error %v", err2, err)
		}
		if aerr := s.Ack(1); aerr != err {
			t.Fatalf("Ack after failure: %v, want %v", aerr, err)
		}
		cerr := c.SendFrame(ctx, Frame{Window: 1})
		if !errors.Is(cerr, ErrSessionClosed) {
			t.Fatalf("client after Fail: %v, want ErrSessionClosed", cerr)
		}
	})
	t.Run("server", func(t *testing.T) {
		c, s := pair(t, ServerConfig{}, ClientConfig{Streams: 3})
		s.Fail(CodeApplication+8, "disk full")
		err := c.WaitAck(ctx, 1)
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != CodeApplication+8 || re.Msg != "disk full" {
			t.Fatalf("client WaitAck: %v, want the server's RemoteError", err)
		}
		if err2 := c.SendFrame(ctx, Frame{Window: 1}); err2 != err {
			t.Fatalf("SendFrame after failure: %v, want %v", err2, err)
		}
		if _, err2 := c.Call(ctx, nil); err2 != err {
			t.Fatalf("Call after failure: %v, want %v", err2, err)
		}
	})
}

// TestCloseDrains: windows sent before an orderly close are delivered,
// then the close.
func TestCloseDrains(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t, ServerConfig{}, ClientConfig{Streams: 4})
	plan := makePlan(rand.New(rand.NewPCG(3, 3)), 50, 20, 6, 32<<10)
	if err := sendPlan(ctx, c, plan); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := receivePlan(ctx, s, plan, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(ctx); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("Next after the last window: %v, want ErrSessionClosed", err)
	}
	if err := c.SendFrame(ctx, Frame{Window: 70}); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("SendFrame after Close: %v", err)
	}

	// The server closing in order: the client sees its last ack, then
	// the close.
	c, s = pair(t, ServerConfig{}, ClientConfig{Streams: 2})
	if err := s.Ack(41); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := c.WaitAck(ctx, 41); err != nil {
		t.Fatalf("WaitAck of an ack sent before close: %v", err)
	}
	<-c.Done()
	if err := c.Err(); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("client after server Close: %v, want ErrSessionClosed", err)
	}
}

func TestMisuse(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t, ServerConfig{Credit: MinCredit}, ClientConfig{Streams: 2})
	if _, err := c.Next(ctx); !errors.Is(err, ErrWrongSide) {
		t.Errorf("client Next: %v", err)
	}
	if err := s.SendFrame(ctx, Frame{}); !errors.Is(err, ErrWrongSide) {
		t.Errorf("server SendFrame: %v", err)
	}
	if err := c.Ack(1); !errors.Is(err, ErrWrongSide) {
		t.Errorf("client Ack: %v", err)
	}
	if err := c.SendFrame(ctx, Frame{Window: 5, Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversize SendFrame: %v", err)
	}
	if err := c.SendFrame(ctx, Frame{Window: 5, Payload: make([]byte, MinCredit)}); !errors.Is(err, ErrWindowTooLarge) {
		t.Errorf("window over the credit: %v", err)
	}
	if err := c.SendFrame(ctx, Frame{Window: 5, Payload: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := c.SendFrame(ctx, Frame{Window: 6, Payload: []byte("b")}); !errors.Is(err, ErrWindowOrder) {
		t.Errorf("frame of the next window before the end: %v", err)
	}
	if err := c.EndWindow(ctx, 4); !errors.Is(err, ErrWindowOrder) {
		t.Errorf("end of another window: %v", err)
	}
	if err := c.EndWindow(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := c.EndWindow(ctx, 7); !errors.Is(err, ErrWindowOrder) {
		t.Errorf("skipped window: %v", err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("misuse failed the session: %v", err)
	}
	w, err := s.Next(ctx)
	if err != nil || w.Seq != 5 || len(w.Frames) != 1 {
		t.Fatalf("Next: %v, %v", w, err)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr string
		cfg  ServerConfig
		want error
	}{
		{"insecure on all interfaces", "0.0.0.0:0", ServerConfig{Insecure: true}, ErrInsecure},
		{"insecure on empty host", ":0", ServerConfig{Insecure: true}, ErrInsecure},
		{"insecure on ipv6 any", "[::]:0", ServerConfig{Insecure: true}, ErrInsecure},
		{"no auth mode", "127.0.0.1:0", ServerConfig{}, ErrAuth},
		{"two auth modes", "127.0.0.1:0", ServerConfig{Insecure: true, PSK: []byte("0123456789abcdef")}, ErrAuth},
		{"short psk", "127.0.0.1:0", ServerConfig{PSK: []byte("short")}, ErrAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Listen(tc.addr, tc.cfg)
			if err == nil {
				l.Close()
				t.Fatalf("Listen(%s) accepted", tc.addr)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Listen(%s): %v, want %v", tc.addr, err, tc.want)
			}
		})
	}
	l, err := Listen("localhost:0", ServerConfig{Insecure: true})
	if err != nil {
		t.Fatalf("insecure on localhost: %v", err)
	}
	l.Close()
	ctx := testCtx(t)
	for _, addr := range []string{"192.0.2.1:7070", "[2001:db8::1]:7070"} {
		if _, err := Dial(ctx, addr, ClientConfig{Insecure: true}); !errors.Is(err, ErrInsecure) {
			t.Errorf("insecure Dial(%s): %v, want ErrInsecure", addr, err)
		}
	}
	if _, err := Dial(ctx, "127.0.0.1:1", ClientConfig{Insecure: true, Streams: MaxStreams + 1}); err == nil {
		t.Error("Dial with too many streams accepted")
	}
	if _, err := Dial(ctx, "127.0.0.1:1", ClientConfig{Insecure: true, Task: "../etc"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("Dial with a bad task name: %v", err)
	}
}

// TestIdleTimeout: a peer that goes silent (no PING) is noticed.
func TestIdleTimeout(t *testing.T) {
	l := listen(t, ServerConfig{})
	rawDial(t, l, 1, 100*time.Millisecond, "")
	s := accept(t, l)
	_, err := s.Next(testCtx(t))
	var se *StreamError
	if !errors.As(err, &se) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("Next with a silent client: %v, want a StreamError with ErrTimeout", err)
	}
}

// rawDial makes a session's streams by hand, for sending hand-made frames.
func rawDial(t testing.TB, l *Listener, n int, keepAlive time.Duration, task string) []*conn {
	t.Helper()
	var id [16]byte
	id[0] = byte(time.Now().UnixNano())
	id[1] = byte(n)
	binary.LittleEndian.PutUint64(id[8:], rand.Uint64())
	var conns []*conn
	for i := range n {
		c := rawStream(t, l, id, i, n, keepAlive, task)
		conns = append(conns, c)
	}
	return conns
}

func rawStream(t testing.TB, l *Listener, id [16]byte, i, n int, keepAlive time.Duration, task string) *conn {
	t.Helper()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	cfg := ClientConfig{Insecure: true}
	cfg.Timeouts.defaults()
	h := hello{version: Version, mode: AuthInsecure, index: uint16(i), count: uint16(n), session: id,
		keepAlive: uint32(keepAlive.Milliseconds()), task: task}
	c, err := clientHandshake(testCtx(t), nc, &cfg, AuthInsecure, h)
	if err != nil {
		t.Fatalf("raw handshake of stream %d: %v", i, err)
	}
	return c
}

// readError reads frames from a raw stream until an ERROR arrives.
func readError(t testing.TB, c *conn) *RemoteError {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	for {
		f, err := c.recv()
		var re *RemoteError
		if errors.As(err, &re) {
			return re
		}
		if err != nil {
			t.Fatalf("reading for an ERROR frame: %v", err)
		}
		if f.Type != TypePing && f.Type != TypeCredit && f.Type != TypeAck {
			t.Fatalf("got %v frame waiting for ERROR", f.Type)
		}
	}
}

// TestCutAfterPartialEnds: WINDOW_END reached three of four streams, then
// the fourth connection drops: the window is not delivered.
func TestCutAfterPartialEnds(t *testing.T) {
	l := listen(t, ServerConfig{})
	conns := rawDial(t, l, 4, 5*time.Second, "")
	s := accept(t, l)
	for i, c := range conns {
		f := Frame{Type: TypeData, Window: 9, Entry: uint64(i), Ordinal: uint32(i), Payload: fill(9, uint32(i), 1000)}
		if err := c.send(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns[:3] {
		if err := c.send(Frame{Type: TypeWindowEnd, Window: 9, Payload: windowEnd{1, 1000, 4, 4000}.marshal()}); err != nil {
			t.Fatal(err)
		}
	}
	conns[3].nc.Close()
	w, err := s.Next(testCtx(t))
	if err == nil {
		t.Fatalf("window %d delivered without its fourth WINDOW_END", w.Seq)
	}
	var se *StreamError
	if !errors.As(err, &se) || se.Stream != 3 {
		t.Fatalf("Next: %v, want a *StreamError on stream 3", err)
	}
	if re := readError(t, conns[0]); re.Code != CodeStreamLost || !strings.Contains(re.Msg, "stream 3") {
		t.Fatalf("client got ERROR %v %q, want STREAM_LOST naming stream 3", re.Code, re.Msg)
	}
	for _, c := range conns {
		c.nc.Close()
	}
}
