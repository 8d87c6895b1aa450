package netbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/logship/logship/parallel"
)

// A Proxy is a TCP proxy on loopback between a source and a server: it
// applies a Link model to every connection, reads the frames it carries
// into a Ledger, and injects faults into live connections.
//
// Shaping, per direction of each connection: a reader takes a chunk from
// one side once the connection's own token bucket (Link.FlowCap) and the
// bucket all connections share (Link.Bandwidth) allow it, and a writer
// hands it to the other side RTT/2 later (a delay line). The delay line
// holds at most a few chunks beyond what the rate lets through in RTT/2,
// so a sender that outruns the link blocks in TCP, as on a real path.
//
// It is built on golang.org/x/time/rate rather than on a general proxy
// such as toxiproxy because it must know the frames: faults go in the
// middle of a DATA frame's payload, and the apply latency is the time
// from a window's last WINDOW_END to the ACK that covers it.
type Proxy struct {
	link   Link
	ln     net.Listener
	ledger *Ledger
	lim    [2]*rate.Limiter // the shared link, client→server and back; nil: no cap

	ctx    context.Context // ends when the proxy closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's pumps

	mu       sync.Mutex // guards the fields below
	upstream string
	blocked  bool
	conns    []*proxyConn // live connections, in order of arrival
	accepted int
	refused  int

	bytes  [2]atomic.Int64 // bytes delivered client→server and back
	resets atomic.Int64    // armed resets that happened
	flips  atomic.Int64    // armed bit flips that happened
}

// ProxyStats counts what a Proxy carried.
type ProxyStats struct {
	BytesUp   int64 // bytes delivered to the server
	BytesDown int64 // bytes delivered to the source
	Accepted  int   // connections proxied
	Refused   int   // connections closed at once (blocked, or no server)
	Resets    int64 // connections reset in the middle of a DATA frame
	Flips     int64 // bits flipped in frames going to the server
}

// NewProxy listens on a loopback port and forwards every connection to
// upstream through link, recording frames into ledger (which may be nil).
func NewProxy(upstream string, link Link, ledger *Ledger) (*Proxy, error) {
	if !link.Proxied() {
		return nil, fmt.Errorf("%w: %s needs no proxy", ErrBadLink, link)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if ledger == nil {
		ledger = NewLedger()
	}
	p := &Proxy{link: link, ln: ln, ledger: ledger, upstream: upstream}
	if link.Bandwidth > 0 {
		for i := range p.lim {
			p.lim[i] = rate.NewLimiter(rate.Limit(link.Bandwidth), int(max(linkChunk, min(link.Bandwidth/200, 1<<20))))
		}
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Go(p.acceptLoop)
	return p, nil
}

// Addr is the address sources dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Ledger is where the frames carried are recorded.
func (p *Proxy) Ledger() *Ledger { return p.ledger }

// SetUpstream makes new connections go to addr (a restarted server).
func (p *Proxy) SetUpstream(addr string) {
	p.mu.Lock()
	p.upstream = addr
	p.mu.Unlock()
}

// Block makes the proxy close new connections at once (on) or forward
// them again (off). Connections already open are not touched.
func (p *Proxy) Block(on bool) {
	p.mu.Lock()
	p.blocked = on
	p.mu.Unlock()
}

// Stats returns the counters.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProxyStats{BytesUp: p.bytes[0].Load(), BytesDown: p.bytes[1].Load(), Accepted: p.accepted, Refused: p.refused,
		Resets: p.resets.Load(), Flips: p.flips.Load()}
}

// Conns is the number of live connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, closes every connection and waits for them.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.mu.Lock()
	conns := append([]*proxyConn(nil), p.conns...)
	p.mu.Unlock()
	for _, c := range conns {
		c.close(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up, blocked := p.upstream, p.blocked
		if blocked {
			p.refused++
		}
		p.mu.Unlock()
		if blocked {
			nc.Close()
			continue
		}
		p.wg.Go(func() { p.serve(nc.(*net.TCPConn), up) })
	}
}

// serve dials upstream for client and runs the connection's pumps.
func (p *Proxy) serve(client *net.TCPConn, upstream string) {
	d := net.Dialer{Timeout: 5 * time.Second}
	sc, err := d.DialContext(p.ctx, "tcp", upstream)
	if err != nil {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		client.Close()
		return
	}
	c := &proxyConn{p: p, client: client, server: sc.(*net.TCPConn), done: make(chan struct{})}
	p.mu.Lock()
	if p.ctx.Err() != nil {
		p.mu.Unlock()
		client.Close()
		sc.Close()
		return
	}
	p.accepted++
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	c.run()
	p.mu.Lock()
	for i, x := range p.conns {
		if x == c {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
}

// ConnFault is a fault injected into one live connection.
type ConnFault int

// Connection faults.
const (
	// FaultCut closes both sides (FIN) at once.
	FaultCut ConnFault = iota
	// FaultReset forwards the next chunk of source data only up to the
	// middle of a DATA frame's payload, then resets both sides (RST).
	FaultReset
	// FaultStall stops both directions for a while.
	FaultStall
	// FaultFlip flips one bit of the next DATA frame going to the server
	// (in its payload, or in its header).
	FaultFlip
)

func (f ConnFault) String() string {
	switch f {
	case FaultCut:
		return "cut"
	case FaultReset:
		return "reset"
	case FaultStall:
		return "stall"
	case FaultFlip:
		return "flip"
	}
	return fmt.Sprintf("ConnFault(%d)", int(f))
}

// Inject applies f to the live connection number pick (modulo their
// count); stall is how long FaultStall lasts, and bit (any number) picks
// the bit FaultFlip flips. It reports false when no connection is live.
// Reset and flip are armed: they happen on the connection's next DATA
// frame.
func (p *Proxy) Inject(f ConnFault, pick int, stall time.Duration, bit uint64) bool {
	p.mu.Lock()
	if len(p.conns) == 0 {
		p.mu.Unlock()
		return false
	}
	c := p.conns[(pick%len(p.conns)+len(p.conns))%len(p.conns)]
	p.mu.Unlock()
	switch f {
	case FaultCut:
		c.close(false)
	case FaultStall:
		c.stall(stall)
	default:
		c.arm(f, bit)
	}
	return true
}

// Chunk sizes: the most bytes a pump moves at once.
const (
	rawChunk  = 256 << 10 // unshaped
	linkChunk = 64 << 10  // the largest shaped chunk, and the least link burst
	minChunk  = 4 << 10
	delayLine = 64 // chunks a delay line holds at most
)

// proxyConn is one proxied connection.
type proxyConn struct {
	p              *Proxy
	client, server *net.TCPConn
	sess           atomic.Pointer[sessionLog]

	mu         sync.Mutex // guards the fields below
	armed      ConnFault  // FaultReset or FaultFlip, when armedOn
	armedOn    bool
	bit        uint64
	stallUntil time.Time
	closed     bool

	done chan struct{} // closed by close
}

func (c *proxyConn) arm(f ConnFault, bit uint64) {
	c.mu.Lock()
	c.armed, c.armedOn, c.bit = f, true, bit
	c.mu.Unlock()
}

func (c *proxyConn) stall(d time.Duration) {
	c.mu.Lock()
	c.stallUntil = time.Now().Add(d)
	c.mu.Unlock()
}

// waitStall sleeps while the connection is stalled; false if it closed.
func (c *proxyConn) waitStall() bool {
	for {
		c.mu.Lock()
		d := time.Until(c.stallUntil)
		c.mu.Unlock()
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.done:
			t.Stop()
			return false
		}
	}
}

// close closes both sides; with reset, with RST instead of FIN.
func (c *proxyConn) close(reset bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	if reset {
		c.client.SetLinger(0)
		c.server.SetLinger(0)
	}
	c.client.Close()
	c.server.Close()
	close(c.done)
}

// run moves bytes both ways until both directions ended, then closes.
func (c *proxyConn) run() {
	var wg sync.WaitGroup
	wg.Go(func() { c.pump(0) })
	wg.Go(func() { c.pump(1) })
	wg.Wait()
	c.close(false)
}

// chunk is a piece of a stream on its way through a delay line.
type chunk struct {
	b       []byte
	buf     *[]byte // the pooled buffer b is in
	release time.Time
	reset   bool // reset the connection once b is written
}

// pump moves bytes in direction dir (0: client→server, 1: back). When
// its source ends cleanly it passes the end on (a half close) once every
// byte is delivered; any other error closes the whole connection, with a
// reset when the source was reset.
func (c *proxyConn) pump(dir int) {
	src, dst := c.client, c.server
	if dir == 1 {
		src, dst = c.server, c.client
	}
	l := c.p.link
	t := &tap{}
	if dir == 0 {
		t.emit = func(ev tapEvent) {
			if ev.typ == parallel.TypeHello {
				if s := c.p.ledger.hello(ev.payload); s != nil {
					c.sess.Store(s)
				}
				return
			}
			if s := c.sess.Load(); s != nil {
				c.p.ledger.clientFrame(s, ev)
			}
		}
	} else {
		t.emit = func(ev tapEvent) {
			if s := c.sess.Load(); s != nil {
				c.p.ledger.serverFrame(s, ev)
			}
		}
	}
	flow := l.FlowCap()
	shaped := l.Kind == LinkWAN && (flow > 0 || l.Bandwidth > 0 || l.RTT > 0)
	size := rawChunk
	var flowLim *rate.Limiter
	if shaped {
		size = linkChunk
		if flow > 0 {
			size = int(min(max(flow/200, minChunk), linkChunk))
			flowLim = rate.NewLimiter(rate.Limit(flow), size)
		}
		if l.Bandwidth > 0 {
			size = min(size, c.p.lim[dir].Burst())
		}
	}
	pool := sync.Pool{New: func() any { b := make([]byte, size); return &b }}

	// write delivers one chunk to dst; false when the connection is done.
	write := func(ch chunk) bool {
		if !c.waitStall() {
			return false
		}
		if dir == 1 {
			t.feed(ch.b, time.Now())
		}
		if _, err := dst.Write(ch.b); err != nil {
			c.close(false)
			return false
		}
		c.p.bytes[dir].Add(int64(len(ch.b)))
		if ch.reset {
			c.close(true)
			return false
		}
		return true
	}
	// read takes the next chunk from src, with the armed fault applied.
	read := func() (chunk, error) {
		if !c.waitStall() {
			return chunk{}, net.ErrClosed
		}
		buf := pool.Get().(*[]byte)
		b := (*buf)[:size]
		n, err := src.Read(b)
		if n == 0 {
			pool.Put(buf)
			if err == nil {
				err = io.ErrNoProgress
			}
			return chunk{}, err
		}
		b = b[:n]
		ch := chunk{b: b, buf: buf}
		if dir == 0 {
			sp := t.feed(b, time.Now())
			c.fault(&ch, sp)
		}
		return ch, nil
	}
	// ended passes the end of src on: a half close after a clean end, a
	// close (or reset) otherwise.
	ended := func(err error) {
		if err == io.EOF {
			dst.CloseWrite()
			return
		}
		c.close(errors.Is(err, syscall.ECONNRESET))
	}
	ctx := c.p.ctx
	if !shaped {
		for {
			ch, err := read()
			if err != nil {
				ended(err)
				return
			}
			if !write(ch) {
				return
			}
			pool.Put(ch.buf)
		}
	}
	delay := l.RTT / 2
	line := make(chan chunk, delayLine)
	var wg sync.WaitGroup
	var readErr error // set before line closes
	wg.Go(func() {
		for {
			select {
			case ch, ok := <-line:
				if !ok {
					ended(readErr)
					return
				}
				if d := time.Until(ch.release); d > 0 {
					time.Sleep(d)
				}
				if !write(ch) {
					return
				}
				pool.Put(ch.buf)
			case <-c.done:
				return
			}
		}
	})
	defer wg.Wait()
	defer close(line)
	for {
		ch, err := read()
		if err != nil {
			readErr = err
			return
		}
		n := len(ch.b)
		if flowLim != nil && flowLim.WaitN(ctx, n) != nil {
			readErr = net.ErrClosed
			return
		}
		if lim := c.p.lim[dir]; lim != nil && lim.WaitN(ctx, n) != nil {
			readErr = net.ErrClosed
			return
		}
		ch.release = time.Now().Add(delay)
		select {
		case line <- ch:
		case <-c.done:
			return
		}
	}
}

// fault applies an armed reset or flip to a chunk going to the server
// whose frame bytes are described by sp.
func (c *proxyConn) fault(ch *chunk, sp tapSpan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.armedOn || sp.data < 0 {
		return
	}
	c.armedOn = false
	switch c.armed {
	case FaultReset:
		// Cut inside the payload: at least one byte of it goes through.
		cut := sp.data + 1 + int(c.bit%uint64(sp.dataEnd-sp.data))
		ch.b, ch.reset = ch.b[:min(cut, sp.dataEnd)], true
		c.p.resets.Add(1)
	case FaultFlip:
		off := sp.data + int(c.bit%uint64(sp.dataEnd-sp.data))
		if c.bit%5 == 0 && sp.header >= 0 {
			off = sp.header // a header byte, now and then
		}
		ch.b[off] ^= 1 << (c.bit / 7 % 8)
		c.p.flips.Add(1)
	}
}
