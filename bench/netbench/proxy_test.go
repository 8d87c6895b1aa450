package netbench_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/logship/logship/bench/netbench"
	"github.com/logship/logship/parallel"
)

// ackServer is a parallel server that acks every window as it arrives.
type ackServer struct {
	l      *parallel.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error // how each session ended
	frames int     // DATA frames received
}

func startAckServer(t *testing.T) *ackServer {
	t.Helper()
	l, err := parallel.Listen("127.0.0.1:0", parallel.ServerConfig{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	a := &ackServer{l: l}
	ctx, cancel := context.WithCancel(context.Background())
	a.wg.Go(func() {
		for {
			s, err := l.Accept(ctx)
			if err != nil {
				return
			}
			a.wg.Go(func() {
				defer s.Close()
				for {
					w, err := s.Next(ctx)
					if err != nil {
						a.mu.Lock()
						a.errs = append(a.errs, err)
						a.mu.Unlock()
						return
					}
					a.mu.Lock()
					a.frames += len(w.Frames)
					a.mu.Unlock()
					w.Release()
					if err := s.Ack(w.Seq); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		cancel()
		l.Close()
		a.wg.Wait()
	})
	return a
}

func newProxy(t *testing.T, upstream, link string) *netbench.Proxy {
	t.Helper()
	l, err := netbench.ParseLink(link)
	if err != nil {
		t.Fatal(err)
	}
	p, err := netbench.NewProxy(upstream, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// sendWindows sends windows from..to-1 of 10 entries of 1 KiB each
// (window w holds entries 10w to 10w+9) and waits for the ack of the last.
func sendWindows(ctx context.Context, s *parallel.Session, from, to uint64) error {
	payload := make([]byte, 1024)
	for w := from; w < to; w++ {
		for e := 10 * w; e < 10*w+10; e++ {
			if err := s.SendFrame(ctx, parallel.Frame{Window: w, Entry: e, Payload: payload}); err != nil {
				return err
			}
		}
		if err := s.EndWindow(ctx, w); err != nil {
			return err
		}
	}
	return s.WaitAck(ctx, to-1)
}

// TestProxyLedger ships windows over three streams through the proxy
// (unshaped, and a WAN model) and checks what its ledger read off the
// frames.
func TestProxyLedger(t *testing.T) {
	t.Parallel()
	for _, link := range []string{"loopback", "wan:rtt=2ms,flow=200Mbit,link=400Mbit"} {
		t.Run(link, func(t *testing.T) {
			srv := startAckServer(t)
			p := newProxy(t, srv.l.Addr().String(), link)
			ctx := t.Context()
			s, err := parallel.Dial(ctx, p.Addr(), parallel.ClientConfig{Task: "t", Streams: 3, Insecure: true})
			if err != nil {
				t.Fatal(err)
			}
			const windows = 20
			if err := sendWindows(ctx, s, 0, windows); err != nil {
				t.Fatal(err)
			}
			s.Close()
			wire := uint64(0)
			for _, st := range s.Stats().Streams {
				wire += st.BytesOut
			}
			p.Close()
			led := p.Ledger()
			if a := led.Acked(); a != (netbench.AckedPosition{Valid: true, Window: windows - 1, Next: 10 * windows}) {
				t.Errorf("acked %+v", a)
			}
			for w := range uint64(windows) {
				if !led.IsBoundary(netbench.Boundary{NextWindow: w + 1, NextEntry: int64(10 * (w + 1))}) {
					t.Errorf("window %d's end is not a boundary", w)
				}
			}
			if led.IsBoundary(netbench.Boundary{NextWindow: 3, NextEntry: 25}) || led.IsBoundary(netbench.Boundary{NextWindow: windows + 1, NextEntry: 10 * (windows + 1)}) {
				t.Error("a position inside a window, or past the last, is a boundary")
			}
			if n := len(led.Latencies()); n != windows {
				t.Errorf("%d latencies for %d windows", n, windows)
			}
			if led.Sessions() != 1 {
				t.Errorf("%d sessions", led.Sessions())
			}
			st := p.Stats()
			// The client's counters leave out the three HELLOs.
			if uint64(st.BytesUp) < wire || uint64(st.BytesUp) > wire+3*200 || st.Accepted != 3 || st.BytesDown == 0 {
				t.Errorf("proxy stats %+v; the client wrote %d bytes after its HELLOs", st, wire)
			}
		})
	}
}

// TestProxyFaults injects each connection fault into a live session and
// checks how the session ends: a flipped payload bit is refused by the
// server's checksum, a reset or a cut ends the session, a stall only
// delays it.
func TestProxyFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault netbench.ConnFault
		bit   uint64
		want  error // nil: the session survives
	}{
		{netbench.FaultFlip, 1, parallel.ErrChecksum},
		{netbench.FaultReset, 3, nil},
		{netbench.FaultCut, 0, nil},
		{netbench.FaultStall, 0, nil},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			srv := startAckServer(t)
			p := newProxy(t, srv.l.Addr().String(), "loopback")
			ctx := t.Context()
			s, err := parallel.Dial(ctx, p.Addr(), parallel.ClientConfig{Task: "t", Streams: 2, Insecure: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := sendWindows(ctx, s, 0, 2); err != nil {
				t.Fatal(err)
			}
			if !p.Inject(tc.fault, 1, 300*time.Millisecond, tc.bit) {
				t.Fatal("no live connection to inject into")
			}
			// More windows: through the stall, or into the fault.
			start := time.Now()
			err = sendWindows(ctx, s, 2, 40)
			switch {
			case tc.fault == netbench.FaultStall:
				if err != nil {
					t.Fatalf("the session did not survive a stall: %v", err)
				}
				if d := time.Since(start); d < 300*time.Millisecond {
					t.Errorf("windows through a stream stalled for 300ms went through in %v", d)
				}
			case err == nil:
				t.Fatalf("the session survived a %s", tc.fault)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("%s: session ended with %v, want %v", tc.fault, err, tc.want)
			default:
				t.Logf("%s: %v", tc.fault, err)
			}
			st := p.Stats()
			if tc.fault == netbench.FaultFlip && st.Flips != 1 || tc.fault == netbench.FaultReset && st.Resets != 1 {
				t.Errorf("stats %+v after one %s", st, tc.fault)
			}
		})
	}
}

// TestProxyBlock: a blocked proxy closes new connections at once, and
// forwards them to the new upstream once unblocked.
func TestProxyBlock(t *testing.T) {
	t.Parallel()
	a, b := startAckServer(t), startAckServer(t)
	p := newProxy(t, a.l.Addr().String(), "loopback")
	ctx := t.Context()
	p.Block(true)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s, err := parallel.Dial(dctx, p.Addr(), parallel.ClientConfig{Task: "t", Streams: 1, Insecure: true}); err == nil {
		s.Close()
		t.Fatal("dialed through a blocked proxy")
	}
	p.SetUpstream(b.l.Addr().String())
	p.Block(false)
	s, err := parallel.Dial(ctx, p.Addr(), parallel.ClientConfig{Task: "t", Streams: 1, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := sendWindows(ctx, s, 0, 3); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.frames != 30 || p.Stats().Refused != 1 {
		t.Errorf("new upstream got %d frames, proxy stats %+v", b.frames, p.Stats())
	}
}

// sink accepts connections and counts what they send until EOF; echo
// connections send back what they read.
func sink(t *testing.T, echo bool) (addr string, done <-chan int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan int64, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if echo {
					io.Copy(c, c)
					return
				}
				n, _ := io.Copy(io.Discard, c)
				ch <- n
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), ch
}

// floorTime is how long n bytes take at rate bytes per second.
func floorTime(n int, rate float64) time.Duration {
	return time.Duration(float64(n) / rate * float64(time.Second))
}

// TestProxyShaping checks the WAN model's floors (never faster than the
// model allows; how much slower is for benchmarks): the per-flow cap,
// the shared link, the round trip.
func TestProxyShaping(t *testing.T) {
	t.Parallel()
	send := func(t *testing.T, addr string, conns, n int, done <-chan int64) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range conns {
			wg.Go(func() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				c.Write(make([]byte, n))
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
				c.Close()
			})
		}
		for range conns {
			if got := <-done; got != int64(n) {
				t.Errorf("the sink got %d bytes of %d", got, n)
			}
		}
		wg.Wait()
		return time.Since(start)
	}
	t.Run("flow", func(t *testing.T) {
		addr, done := sink(t, false)
		p := newProxy(t, addr, "wan:flow=16Mbit") // 2 MB/s per connection
		const n = 512 << 10
		// Two connections at once: each on its own cap.
		d := send(t, p.Addr(), 2, n, done)
		if floor := floorTime(n-10_000, 2e6); d < floor {
			t.Errorf("2 × %d bytes at 16 Mbit/s per flow in %v, faster than %v", n, d, floor)
		}
		t.Logf("2 × %d bytes at 16 Mbit/s per flow: %v", n, d)
	})
	t.Run("link", func(t *testing.T) {
		addr, done := sink(t, false)
		p := newProxy(t, addr, "wan:link=16Mbit") // 2 MB/s shared
		const n = 256 << 10
		d := send(t, p.Addr(), 4, n, done)
		if floor := floorTime(4*n-64<<10, 2e6); d < floor {
			t.Errorf("4 × %d bytes over a 16 Mbit/s link in %v, faster than %v", n, d, floor)
		}
		t.Logf("4 × %d bytes over a 16 Mbit/s link: %v", n, d)
	})
	t.Run("rtt", func(t *testing.T) {
		addr, _ := sink(t, true)
		p := newProxy(t, addr, "wan:rtt=30ms")
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 1)
		for i := range 3 {
			start := time.Now()
			if _, err := c.Write(buf); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < 30*time.Millisecond {
				t.Errorf("round trip %d took %v, less than the 30ms RTT", i, d)
			}
		}
	})
}
