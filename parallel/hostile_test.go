package parallel

// A hostile client against a real Listener on loopback: frames before
// authentication, floods from another address, captures of the wire.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawHeader encodes a frame header claiming a payload of n bytes (raw
// bytes after decompression) without the payload.
func rawHeader(typ Type, flags Flags, n, raw int) []byte {
	var h header
	f := Frame{Type: typ}
	h.put(&f, flags, n, raw, 0)
	return h[:]
}

// readRemoteError reads frames from nc until an ERROR arrives.
func readRemoteError(nc net.Conn) (*RemoteError, error) {
	nc.SetReadDeadline(time.Now().Add(testTimeout))
	fr := newFrameReader(bufio.NewReader(nc), 0)
	for {
		f, err := fr.read()
		if err != nil {
			return nil, err
		}
		if f.Type == TypeError {
			return parseErrorBody(f.Payload), nil
		}
	}
}

// eventually polls cond until it holds or the test timeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRefusedFromHeader: before authentication the server takes only
// HELLO (and AUTH in PSK mode), uncompressed and small; anything else is
// refused from the 48-byte header: the hostile client sends the header
// alone and still gets its ERROR, and the server has read 48 bytes.
func TestRefusedFromHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		hdr   []byte
		code  Code
		words string
	}{
		{"8 MiB DATA", rawHeader(TypeData, 0, MaxPayload, MaxPayload), CodeProtocol, "DATA frame during the handshake"},
		{"zstd CALL", rawHeader(TypeCall, FlagZstd, 899, MaxPayload), CodeProtocol, "CALL frame during the handshake"},
		{"zstd HELLO", rawHeader(TypeHello, FlagZstd, 100, 4000), CodeMalformed, "flags"},
		{"oversized HELLO", rawHeader(TypeHello, 0, helloMaxSize+1, helloMaxSize+1), CodeMalformed, "HELLO payload"},
		{"AUTH first", rawHeader(TypeAuth, 0, 32, 32), CodeProtocol, "AUTH frame during the handshake"},
		{"PING first", rawHeader(TypePing, 0, 0, 0), CodeProtocol, "PING frame during the handshake"},
		{"unknown type", rawHeader(0x7e, 0, 10, 10), CodeUnknownType, "unknown frame type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, ServerConfig{PSK: psk})
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(tc.hdr); err != nil {
				t.Fatal(err)
			}
			re, err := readRemoteError(nc)
			if err != nil {
				t.Fatalf("no ERROR for a header alone: %v", err)
			}
			if re.Code != tc.code || !strings.Contains(re.Msg, tc.words) {
				t.Fatalf("ERROR %v %q, want %v with %q", re.Code, re.Msg, tc.code, tc.words)
			}
			eventually(t, "the refusal to be counted", func() bool { return l.Stats().Refused.Total() == 1 })
			if st := l.Stats(); st.PreAuthBytes != HeaderSize {
				t.Fatalf("server read %d bytes before authentication, want the %d of the header", st.PreAuthBytes, HeaderSize)
			}
		})
	}
	t.Run("DATA instead of the PSK proof", func(t *testing.T) {
		l := listen(t, ServerConfig{PSK: psk})
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		h := hello{version: Version, mode: AuthPSK, count: 1, keepAlive: 1000}
		hp := h.marshal()
		nc.Write(encodeFrame(Frame{Type: TypeHello, Payload: hp}))
		fr := newFrameReader(nc, 0)
		if f, err := fr.read(); err != nil || f.Type != TypeAuth {
			t.Fatalf("no challenge: %v %v", f.Type, err)
		}
		nc.Write(rawHeader(TypeData, FlagZstd, 1000, MaxPayload))
		re, err := readRemoteError(nc)
		if err != nil || re.Code != CodeProtocol {
			t.Fatalf("DATA for a proof: %v %v, want PROTOCOL", re, err)
		}
		eventually(t, "the refusal to be counted", func() bool { return l.Stats().Refused.Total() == 1 })
		if st := l.Stats(); st.PreAuthBytes != uint64(2*HeaderSize+len(hp)) {
			t.Fatalf("server read %d bytes before authentication, want HELLO and a header (%d)", st.PreAuthBytes, 2*HeaderSize+len(hp))
		}
	})
}

// peakRSS resets the process's peak RSS and returns a function that
// reports by how much it rose since (Linux /proc/self/clear_refs "5").
func peakRSS(t *testing.T) func() int64 {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}
	base := procStatus(t, "VmHWM")
	return func() int64 { return procStatus(t, "VmHWM") - base }
}

// procStatus returns a field of /proc/self/status in bytes.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestPreAuthMemory: 200 connections that each send an 8 MiB DATA frame
// instead of a HELLO raise the peak RSS of the process (server and
// hostile clients together) by at most 64 MiB: the frames are refused
// from their headers, their payloads never read.
func TestPreAuthMemory(t *testing.T) {
	t.Parallel()
	const conns = 200
	for _, mode := range []string{"psk", "insecure"} {
		t.Run(mode, func(t *testing.T) {
			// Room for all of them, from one address: each frame gets
			// as far as the header check.
			cfg := ServerConfig{MaxPending: conns, MaxPendingPerAddr: conns}
			if mode == "psk" {
				cfg.PSK = psk
			}
			l := listen(t, cfg)
			payload := make([]byte, MaxPayload) // one buffer for every client
			frame := rawHeader(TypeData, 0, MaxPayload, MaxPayload)
			rose := peakRSS(t)
			var wg sync.WaitGroup
			for range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					nc, err := net.Dial("tcp", l.Addr().String())
					if err != nil {
						t.Error(err)
						return
					}
					defer nc.Close()
					nc.SetDeadline(time.Now().Add(testTimeout))
					if _, err := nc.Write(frame); err != nil {
						return
					}
					nc.Write(payload) // fails once the server has closed
				}()
			}
			wg.Wait()
			eventually(t, "200 refusals", func() bool { return l.Stats().Refused.Protocol == conns })
			d := rose()
			if d > 64<<20 {
				t.Fatalf("peak RSS rose by %d MiB for %d pre-auth DATA frames of 8 MiB, limit 64", d>>20, conns)
			}
			t.Logf("peak RSS rose by %.1f MiB for %d pre-auth DATA frames of 8 MiB", float64(d)/(1<<20), conns)
			if st := l.Stats(); st.PreAuthBytes != conns*HeaderSize {
				t.Fatalf("server read %d bytes before authentication, want %d headers only", st.PreAuthBytes, conns)
			}
		})
	}
}

// relay forwards TCP connections to target and records every byte that
// passes, both directions; tamper, if set, may change bytes going to the
// server (it gets the offset in that direction).
type relay struct {
	ln     net.Listener
	target string
	tamper func(off int64, b []byte)
	mu     sync.Mutex
	wire   bytes.Buffer
	wg     sync.WaitGroup
}

func newRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.wg.Add(2)
		go r.pipe(s, c, true)
		go r.pipe(c, s, false)
	}
}

func (r *relay) pipe(dst, src net.Conn, toServer bool) {
	defer r.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	var off int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if toServer && r.tamper != nil {
				r.tamper(off, buf[:n])
			}
			off += int64(n)
			r.mu.Lock()
			r.wire.Write(buf[:n])
			r.mu.Unlock()
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *relay) captured() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.wire.Bytes())
}

// TestWireConfidential: a marker shipped in DATA frames and calls never
// appears on the wire in PSK and TLS mode (it does in insecure mode, which
// shows the capture works).
func TestWireConfidential(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "logship test CA")
	serverCert, _, _ := ca.issue(t, "server", true)
	clientCert, _, _ := ca.issue(t, "client", false)
	marker := []byte("MARKER-7f3a9c-the-data-of-the-block-device")
	for _, tc := range []struct {
		name  string
		scfg  ServerConfig
		ccfg  ClientConfig
		plain bool
	}{
		{"insecure", ServerConfig{Insecure: true}, ClientConfig{Insecure: true}, true},
		{"psk", ServerConfig{PSK: psk}, ClientConfig{PSK: psk}, false},
		{"tls", ServerConfig{TLS: ServerTLS(serverCert, ca.pool)}, ClientConfig{TLS: ClientTLS(clientCert, ca.pool, "127.0.0.1")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scfg := tc.scfg
			scfg.Handler = func(_ context.Context, _ *Session, req []byte) ([]byte, error) {
				return append([]byte("reply "), req...), nil
			}
			l := listen(t, scfg)
			r := newRelay(t, l.Addr().String())
			ccfg := tc.ccfg
			ccfg.Streams, ccfg.Task = 3, "marker"
			c, err := Dial(testCtx(t), r.ln.Addr().String(), ccfg)
			if err != nil {
				t.Fatal(err)
			}
			s := accept(t, l)
			ctx := testCtx(t)
			go func() {
				for {
					w, err := s.Next(ctx)
					if err != nil {
						return
					}
					w.Release()
					s.Ack(w.Seq)
				}
			}()
			for e := range 20 {
				payload := bytes.Repeat(marker, 1+e*50)
				if err := c.SendFrame(ctx, Frame{Window: 1, Entry: uint64(e), Payload: payload}); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.EndWindow(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitAck(ctx, 1); err != nil {
				t.Fatal(err)
			}
			resp, err := c.Call(ctx, marker)
			if err != nil || !bytes.Contains(resp, marker) {
				t.Fatalf("Call: %q, %v", resp, err)
			}
			c.Close()
			s.Close()
			wire := r.captured()
			if len(wire) < 20*len(marker) {
				t.Fatalf("captured %d bytes only", len(wire))
			}
			if got := bytes.Contains(wire, marker); got != tc.plain {
				t.Fatalf("marker on the wire: %v, want %v (%d bytes captured)", got, tc.plain, len(wire))
			}
		})
	}
}

// TestWireTampered: in PSK mode a byte changed on the path after the
// handshake fails the session (the record does not authenticate) instead
// of reaching the application.
func TestWireTampered(t *testing.T) {
	t.Parallel()
	l := listen(t, ServerConfig{PSK: psk})
	r := newRelay(t, l.Addr().String())
	var hit atomic.Bool
	r.tamper = func(off int64, b []byte) {
		// HELLO and AUTH take 2×48+61+32 bytes; flip one well after them.
		const at = 4096
		if off <= at && at < off+int64(len(b)) {
			b[at-off] ^= 0x01
			hit.Store(true)
		}
	}
	c, err := Dial(testCtx(t), r.ln.Addr().String(), ClientConfig{PSK: psk, Streams: 1, Task: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := accept(t, l)
	ctx := testCtx(t)
	c.SendFrame(ctx, Frame{Window: 1, Payload: make([]byte, 16<<10)})
	c.EndWindow(ctx, 1)
	_, err = s.Next(ctx)
	if !hit.Load() || !errors.Is(err, ErrRecord) {
		t.Fatalf("Next after a flipped bit (flipped: %v): %v, want ErrRecord", hit.Load(), err)
	}
}

// flood keeps n connections from the address from open against addr:
// each connects, says nothing, and reconnects as soon as the server drops
// it. It stops when ctx ends.
func flood(ctx context.Context, wg *sync.WaitGroup, from, addr string, n int, made *atomic.Int64) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for ctx.Err() == nil {
				nc, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					continue
				}
				made.Add(1)
				stop := context.AfterFunc(ctx, func() { nc.Close() })
				for {
					if _, err := nc.Read(buf); err != nil {
						break
					}
				}
				stop()
				nc.Close()
			}
		}()
	}
}

// TestFlood: while connections from 127.0.0.2 that never say HELLO keep
// every pending slot the server gives them, and more, a client on
// 127.0.0.1 gets through every time; the refusals are counted and summed
// up in a bounded number of log lines.
func TestFlood(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "logship test CA")
	serverCert, _, _ := ca.issue(t, "server", true)
	clientCert, _, _ := ca.issue(t, "client", false)
	for _, tc := range []struct {
		name    string
		scfg    ServerConfig
		ccfg    ClientConfig
		flood   int
		pending int
	}{
		// More than all pending slots, over the per-address limit:
		// refused at once.
		{"psk", ServerConfig{PSK: psk}, ClientConfig{PSK: psk}, DefaultMaxPending + 44, 0},
		// The flood fills every slot: the client evicts one of it.
		{"tls full", ServerConfig{TLS: ServerTLS(serverCert, ca.pool)}, ClientConfig{TLS: ClientTLS(clientCert, ca.pool, "127.0.0.1")}, 40, 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lines atomic.Int64
			var summed atomic.Uint64
			scfg := tc.scfg
			scfg.MaxPending = tc.pending
			scfg.RefusalInterval = 100 * time.Millisecond
			scfg.OnRefusals = func(s RefusalSummary) {
				lines.Add(1)
				summed.Add(s.Counts.Total())
			}
			l, err := Listen("127.0.0.1:0", scfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var made atomic.Int64
			flood(ctx, &wg, "127.0.0.2", l.Addr().String(), tc.flood, &made)
			eventually(t, "the flood to fill its share", func() bool {
				st := l.Stats()
				want := min(DefaultMaxPendingPerAddr, l.cfg.MaxPending)
				return st.Pending >= want && st.Refused.Busy > 0
			})
			for i := range 20 {
				ccfg := tc.ccfg
				ccfg.Streams, ccfg.Task = 4, "legit"
				c, err := Dial(testCtx(t), l.Addr().String(), ccfg)
				if err != nil {
					t.Fatalf("dial %d during the flood: %v", i, err)
				}
				s, err := l.Accept(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				s.Close()
			}
			cancel()
			wg.Wait()
			l.Close() // flushes the last summary
			elapsed := time.Since(start)
			st := l.Stats()
			if st.Refused.Busy == 0 || st.Sessions != 20 {
				t.Fatalf("stats %+v: want BUSY refusals and 20 sessions", st)
			}
			if summed.Load() != st.Refused.Total() {
				t.Fatalf("summaries add up to %d refusals, the counters to %d", summed.Load(), st.Refused.Total())
			}
			maxLines := 2*int64(elapsed/scfg.RefusalInterval) + 3
			if n := lines.Load(); n > maxLines || uint64(n) >= st.Refused.Total() {
				t.Fatalf("%d log lines for %d refusals in %v, want at most %d", n, st.Refused.Total(), elapsed, maxLines)
			}
			t.Logf("%d flood connections, %v refused, %d summary lines", made.Load(), st.Refused, lines.Load())
		})
	}
}

// TestBusyFrame: a connection over its address's pending limit is told
// BUSY before it is closed.
func TestBusyFrame(t *testing.T) {
	t.Parallel()
	l := listen(t, ServerConfig{PSK: psk, MaxPendingPerAddr: 2})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	for range 2 {
		nc, err := d.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	eventually(t, "two pending connections", func() bool { return l.Stats().Pending == 2 })
	nc, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(encodeFrame(Frame{Type: TypeHello, Payload: (&hello{version: Version, mode: AuthPSK, count: 1, keepAlive: 1000}).marshal()}))
	re, err := readRemoteError(nc)
	if err != nil || re.Code != CodeBusy || !errors.Is(re, ErrBusy) {
		t.Fatalf("third connection from 127.0.0.2: %v %v, want ERROR BUSY", re, err)
	}
	// Another address is not affected.
	c := dial(t, l, ClientConfig{PSK: psk, Streams: 1})
	c.Close()
}

// TestRefusalReportedAtOnce: the first refusal after a quiet interval is
// reported without waiting for the interval to end.
func TestRefusalReportedAtOnce(t *testing.T) {
	t.Parallel()
	got := make(chan RefusalSummary, 4)
	l := listen(t, ServerConfig{PSK: psk, RefusalInterval: time.Hour, OnRefusals: func(s RefusalSummary) { got <- s }})
	_, err := Dial(testCtx(t), l.Addr().String(), ClientConfig{PSK: []byte("a wrong key, long enough"), Streams: 1})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("Dial with a wrong key: %v", err)
	}
	select {
	case s := <-got:
		if s.Counts.Auth != 1 || s.Counts.Total() != 1 || !strings.Contains(s.String(), "auth 1") {
			t.Fatalf("summary %v, want one auth refusal", s)
		}
	case <-time.After(testTimeout):
		t.Fatal("no report of the refusal")
	}
}

// TestIdentityLimits: an identity over its session limit is refused with
// BUSY; another identity is not; closing a session makes room.
func TestIdentityLimits(t *testing.T) {
	t.Parallel()
	alice := Key{Name: "alice", Secret: []byte("alice's key, long enough")}
	bob := Key{Name: "bob", Secret: []byte("bob's key, long enough too")}
	l := listen(t, ServerConfig{PSKKeys: []Key{alice, bob}, MaxSessionsPerIdentity: 2, MaxStreamsPerIdentity: 5})
	ccfg := func(k Key, streams int) ClientConfig {
		return ClientConfig{PSK: k.Secret, PSKName: k.Name, Streams: streams, Task: "t"}
	}
	a1 := dial(t, l, ccfg(alice, 2))
	s1 := accept(t, l)
	if s1.Identity() != "psk:alice" || a1.Identity() != "psk:alice" {
		t.Fatalf("identities %q (server) %q (client), want psk:alice", s1.Identity(), a1.Identity())
	}
	dial(t, l, ccfg(alice, 2))
	accept(t, l)
	_, err := Dial(testCtx(t), l.Addr().String(), ccfg(alice, 1))
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("third session of alice: %v, want BUSY", err)
	}
	b := dial(t, l, ccfg(bob, 4))
	if s := accept(t, l); s.Identity() != "psk:bob" {
		t.Fatalf("identity %q, want psk:bob", s.Identity())
	}
	b.Close()
	a1.Close()
	// Alice's first session ends on the server too; then she may open one.
	var a3 *Session
	eventually(t, "room for alice", func() bool {
		a3, err = Dial(testCtx(t), l.Addr().String(), ccfg(alice, 1))
		return err == nil
	})
	a3.Close()
	// Streams: 5 per identity; bob asks for 6 in one session.
	_, err = Dial(testCtx(t), l.Addr().String(), ccfg(bob, 6))
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("6 streams for bob: %v, want BUSY", err)
	}
	// The listener counts a refusal once its reply is sent: the client may
	// read the reply first.
	eventually(t, "two limit refusals counted", func() bool { return l.Stats().Refused.Limit >= 2 })
	// A wrong key is still a wrong key.
	_, err = Dial(testCtx(t), l.Addr().String(), ClientConfig{PSK: []byte("nobody's key of some length"), Streams: 1})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("unknown key: %v, want ErrAuth", err)
	}
}

// TestKeepAliveCap: a keepalive announced above MaxKeepAlive is clamped
// by the server; a client configured above it is refused.
func TestKeepAliveCap(t *testing.T) {
	t.Parallel()
	l := listen(t, ServerConfig{})
	conns := rawDial(t, l, 1, 10*time.Hour, "")
	s := accept(t, l)
	if want := 3*MaxKeepAlive + time.Second; s.idle != want {
		t.Fatalf("idle deadline %v for a 10 h keepalive, want %v", s.idle, want)
	}
	conns[0].nc.Close()
	_, err := Dial(testCtx(t), l.Addr().String(), ClientConfig{Insecure: true, Timeouts: Timeouts{KeepAlive: 2 * time.Minute}})
	if err == nil || !strings.Contains(err.Error(), "keepalive") {
		t.Fatalf("Dial with a 2 min keepalive: %v", err)
	}
	if _, err := Listen("127.0.0.1:0", ServerConfig{Insecure: true, Timeouts: Timeouts{KeepAlive: time.Hour}}); err == nil {
		t.Fatal("Listen with a 1 h keepalive")
	}
}

// TestInsecureTarget: the address checked for --insecure is the address
// dialled.
func TestInsecureTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr, want string
		ok         bool
	}{
		{"127.0.0.1:7070", "127.0.0.1:7070", true},
		{"[::1]:7070", "[::1]:7070", true},
		{"localhost:7070", "", true},
		{"192.0.2.1:7070", "", false},
		{":7070", "", false},
	} {
		got, err := insecureTarget(context.Background(), tc.addr)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInsecure) {
			t.Errorf("%s: %q, %v", tc.addr, got, err)
			continue
		}
		if err != nil {
			continue
		}
		host, _, _ := net.SplitHostPort(got)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("%s: dials %q, want a loopback IP", tc.addr, got)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("%s: dials %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestRedactPaths(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"replica: open /var/lib/logship/db/staging/0001.log: no space left", "replica: open .../0001.log: no space left"},
		{"task \"db\": /srv/x/image.img", "task \"db\": .../image.img"},
		{"/a/b", ".../b"},
		{"rate 3 MiB/s over 1/2 of /tmp", "rate 3 MiB/s over 1/2 of /tmp"},
		{"cert:sha256:ab psk:default", "cert:sha256:ab psk:default"},
		{"see https://example.org/a/b", "see https://example.org/a/b"},
		{"(in /etc/logship/keys)", "(in .../keys)"},
	} {
		if got := redactPaths(tc.in); got != tc.want {
			t.Errorf("redactPaths(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// An error reply from a handler reaches the client without the path.
	l := listen(t, ServerConfig{Handler: func(context.Context, *Session, []byte) ([]byte, error) {
		return nil, fmt.Errorf("open /var/lib/logship/secret/dir/task.img: permission denied")
	}})
	c := dial(t, l, ClientConfig{Streams: 1})
	accept(t, l)
	_, err := c.Call(testCtx(t), []byte("x"))
	var re *RemoteError
	if !errors.As(err, &re) || strings.Contains(re.Msg, "/var/") || !strings.Contains(re.Msg, "task.img") {
		t.Fatalf("error reply %v: want the file's name and no server path", err)
	}
}
