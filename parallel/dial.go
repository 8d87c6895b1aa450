package parallel

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults.
const (
	DefaultStreams    = 4
	DefaultCredit     = 64 << 20
	DefaultMaxCalls   = 8
	DefaultMaxPending = 256
	// MinCredit is the smallest credit a server may grant.
	MinCredit = 64 << 10
)

// Timeouts bound every wait on the network. Zero fields take the defaults.
type Timeouts struct {
	// Handshake bounds TLS and the hello on each connection (10 s).
	Handshake time.Duration
	// KeepAlive is how often an idle stream sends PING (5 s). The peer
	// gives up on a stream silent for 3 × KeepAlive + 1 s.
	KeepAlive time.Duration
	// Frame is the base I/O deadline of a frame (30 s), to which
	// length/MinRate is added.
	Frame time.Duration
	// MinRate is the slowest transfer accepted, bytes per second (1 MiB/s).
	MinRate int64
	// Close bounds an orderly close (10 s).
	Close time.Duration
}

func (t *Timeouts) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Handshake, 10*time.Second)
	def(&t.KeepAlive, 5*time.Second)
	def(&t.Frame, 30*time.Second)
	def(&t.Close, 10*time.Second)
	if t.MinRate <= 0 {
		t.MinRate = 1 << 20
	}
}

// ClientConfig configures Dial. Exactly one of TLS, PSK and Insecure must
// be set.
type ClientConfig struct {
	// Task names the task (docs/protocol.md §4); may be empty for a
	// session that only makes calls.
	Task string
	// Streams is the number of TCP streams (DefaultStreams if 0).
	Streams int
	// TLS: TLS 1.3 with a client certificate (see ClientTLS).
	TLS *tls.Config
	// PSK: pre-shared key challenge-response (see LoadPSK).
	PSK []byte
	// Insecure: plaintext without authentication, loopback only; the
	// server must be insecure too.
	Insecure bool
	// Compress DATA and CALL payloads with zstd (per frame, when smaller).
	Compress bool
	Timeouts Timeouts
}

// ServerConfig configures Listen. Exactly one of TLS, PSK and Insecure
// must be set.
type ServerConfig struct {
	// TLS: TLS 1.3, client certificates required and verified against
	// TLS.ClientCAs (see ServerTLS).
	TLS *tls.Config
	// PSK: pre-shared key challenge-response.
	PSK []byte
	// Insecure: plaintext without authentication; refused unless the
	// listen address is loopback.
	Insecure bool
	// Credit is the byte credit granted to each session (DefaultCredit if
	// 0, at least MinCredit): the memory a session's windows may hold.
	Credit int64
	// MaxCalls is how many calls a client may have outstanding
	// (DefaultMaxCalls if 0).
	MaxCalls int
	// Handler answers calls; nil answers every call with CodeUnsupported.
	Handler Handler
	// Compress REPLY payloads with zstd.
	Compress bool
	// Assemble bounds the time between the first and the last stream of
	// a session (10 s); a half-arrived session is dropped.
	Assemble time.Duration
	// MaxPending bounds the connections in handshake or waiting for the
	// rest of their session (DefaultMaxPending if 0); more are refused.
	MaxPending int
	// Authorize, if set, is called on every stream once the peer has
	// authenticated and before anything of the task is touched, with the
	// peer's identity (see Session.Identity) and the task it asked for. A
	// non-nil error refuses the connection: the client gets ERROR
	// (FORBIDDEN) and its Dial an error matching ErrForbidden. The error's
	// text stays on the server (OnRefuse); the client is told only the
	// identity and the task. Authorize may be called concurrently.
	Authorize func(identity, task string) error
	// OnRefuse, if set, is told about every connection or session that was
	// refused (authentication, timeouts, malformed hellos, ...).
	OnRefuse func(remote net.Addr, err error)
	Timeouts Timeouts
}

func authMode(tlsOn bool, psk []byte, insecure bool) (AuthMode, error) {
	n := 0
	var m AuthMode
	if tlsOn {
		n, m = n+1, AuthTLS
	}
	if psk != nil {
		n, m = n+1, AuthPSK
		if len(psk) < MinPSK {
			return 0, fmt.Errorf("%w: PSK of %d bytes, need at least %d", ErrAuth, len(psk), MinPSK)
		}
	}
	if insecure {
		n, m = n+1, AuthInsecure
	}
	if n != 1 {
		return 0, fmt.Errorf("%w: set exactly one of TLS, PSK and Insecure (%d set)", ErrAuth, n)
	}
	return m, nil
}

// isLoopback reports whether host names only loopback addresses.
func isLoopback(ctx context.Context, host string) (bool, error) {
	if host == "" {
		return false, nil // all interfaces
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false, nil
		}
	}
	return len(addrs) > 0, nil
}

// Dial opens a session of cfg.Streams streams to the server at addr
// (host:port). Each stream does the hello and authentication; Dial
// returns once all have been accepted, or the first error (a refusal by
// the server comes back as a *RemoteError: errors.Is(err, ErrAuth) for
// a wrong key). ctx bounds the dialing and the handshakes only.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Session, error) {
	cfg.Timeouts.defaults()
	if cfg.Streams == 0 {
		cfg.Streams = DefaultStreams
	}
	if cfg.Streams < 1 || cfg.Streams > MaxStreams {
		return nil, fmt.Errorf("parallel: %d streams, want 1..%d", cfg.Streams, MaxStreams)
	}
	if err := checkTask(cfg.Task); err != nil {
		return nil, err
	}
	mode, err := authMode(cfg.TLS != nil, cfg.PSK, cfg.Insecure)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parallel: %w", err)
	}
	switch mode {
	case AuthInsecure:
		lo, err := isLoopback(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("parallel: %w", err)
		}
		if !lo {
			return nil, fmt.Errorf("%w: refusing to dial %s without authentication", ErrInsecure, addr)
		}
	case AuthTLS:
		if cfg.TLS, err = clientTLS(cfg.TLS, host); err != nil {
			return nil, err
		}
	}

	var id [16]byte
	rand.Read(id[:])
	conns := make([]*conn, cfg.Streams)
	g, gctx := errgroup.WithContext(ctx)
	for i := range conns {
		g.Go(func() error {
			d := net.Dialer{Timeout: cfg.Timeouts.Handshake, KeepAlive: cfg.Timeouts.KeepAlive}
			nc, err := d.DialContext(gctx, "tcp", addr)
			if err != nil {
				return &StreamError{Stream: i, Op: "dial", Err: err}
			}
			h := hello{
				version:   Version,
				mode:      mode,
				index:     uint16(i),
				count:     uint16(cfg.Streams),
				session:   id,
				keepAlive: uint32(cfg.Timeouts.KeepAlive.Milliseconds()),
				task:      cfg.Task,
			}
			rand.Read(h.nonce[:])
			c, err := clientHandshake(gctx, nc, &cfg, mode, h)
			if err != nil {
				nc.Close()
				var re *RemoteError
				if errors.As(err, &re) {
					return err
				}
				return &StreamError{Stream: i, Op: "handshake", Err: timeoutErr(err)}
			}
			conns[i] = c
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		for _, c := range conns {
			if c != nil {
				c.nc.Close()
			}
		}
		return nil, err
	}
	ok := conns[0].ok
	s := newSession(roleClient, conns, cfg.Timeouts, time.Duration(ok.keepAlive)*time.Millisecond)
	s.id, s.task, s.mode, s.compress = id, cfg.Task, mode, cfg.Compress
	s.credit.limit = int64(ok.credit)
	s.credit.changed = make(chan struct{})
	s.acks.changed = make(chan struct{})
	s.calls.pending = make(map[uint64]chan callDone)
	s.calls.slots = make(chan struct{}, ok.maxCalls)
	s.start()
	return s, nil
}

// Listener accepts sessions. Its goroutines (the accept loop and one per
// connection in handshake) are stopped by Close.
type Listener struct {
	cfg  ServerConfig
	mode AuthMode
	ln   net.Listener

	g      errgroup.Group
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{} // one per connection in handshake or pending
	ready  chan *Session // assembled, not yet accepted
	closed chan struct{} // closed by Close

	mu      sync.Mutex                   // guards pending and shaking
	pending map[[16]byte]*pendingSession // sessions whose streams are arriving
	shaking map[net.Conn]struct{}        // connections in handshake, closed by Close
}

// pendingSession is a session whose streams are still arriving.
type pendingSession struct {
	hello    hello // of the first stream
	conns    []*conn
	arrived  int
	deadline time.Time
	dead     chan struct{} // closed when the session is assembled or dropped
	err      error         // why it was dropped, nil if assembled
}

// Listen listens on addr (host:port) and accepts sessions in the
// background. Insecure mode is refused unless addr is a loopback address.
func Listen(addr string, cfg ServerConfig) (*Listener, error) {
	cfg.Timeouts.defaults()
	if cfg.Credit == 0 {
		cfg.Credit = DefaultCredit
	}
	if cfg.Credit < MinCredit {
		return nil, fmt.Errorf("parallel: credit %d, minimum %d", cfg.Credit, MinCredit)
	}
	if cfg.MaxCalls <= 0 {
		cfg.MaxCalls = DefaultMaxCalls
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Assemble <= 0 {
		cfg.Assemble = 10 * time.Second
	}
	mode, err := authMode(cfg.TLS != nil, cfg.PSK, cfg.Insecure)
	if err != nil {
		return nil, err
	}
	if mode == AuthTLS {
		if cfg.TLS, err = serverTLS(cfg.TLS); err != nil {
			return nil, err
		}
	}
	if mode == AuthInsecure {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("parallel: %w", err)
		}
		lo, err := isLoopback(context.Background(), host)
		if err != nil {
			return nil, fmt.Errorf("parallel: %w", err)
		}
		if !lo {
			return nil, fmt.Errorf("%w: refusing to listen on %s without authentication", ErrInsecure, addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("parallel: %w", err)
	}
	if mode == AuthInsecure && !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("%w: %s is not loopback", ErrInsecure, ln.Addr())
	}
	l := &Listener{
		cfg:     cfg,
		mode:    mode,
		ln:      ln,
		slots:   make(chan struct{}, cfg.MaxPending),
		ready:   make(chan *Session, cfg.MaxPending),
		closed:  make(chan struct{}),
		pending: make(map[[16]byte]*pendingSession),
		shaking: make(map[net.Conn]struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.g.Go(l.acceptLoop)
	return l, nil
}

// Addr returns the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept returns the next session whose streams have all arrived.
func (l *Listener) Accept(ctx context.Context) (*Session, error) {
	select {
	case s := <-l.ready:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.closed:
		return nil, fmt.Errorf("parallel: accept: %w", net.ErrClosed)
	}
}

// Close stops listening, drops sessions being assembled and sessions not
// yet accepted, and waits for the listener's goroutines. Sessions already
// accepted are not affected.
func (l *Listener) Close() error {
	select {
	case <-l.closed:
		return nil
	default:
	}
	close(l.closed)
	l.cancel()
	err := l.ln.Close()
	l.mu.Lock()
	for nc := range l.shaking {
		nc.Close()
	}
	l.mu.Unlock()
	l.g.Wait()
	for {
		select {
		case s := <-l.ready:
			s.Fail(CodeBusy, "server shutting down")
			s.Close()
		default:
			return err
		}
	}
}

func (l *Listener) refuse(remote net.Addr, err error) {
	if l.cfg.OnRefuse != nil {
		l.cfg.OnRefuse(remote, err)
	}
}

func (l *Listener) acceptLoop() error {
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		select {
		case l.slots <- struct{}{}:
		default:
			nc.Close()
			l.refuse(nc.RemoteAddr(), fmt.Errorf("%w: %d connections pending", ErrBusy, l.cfg.MaxPending))
			continue
		}
		l.g.Go(func() error {
			defer func() { <-l.slots }()
			l.serveConn(nc)
			return nil
		})
	}
}

// serveConn runs the handshake on nc and adds it to its session; the
// goroutine of the stream that completes a session starts it.
func (l *Listener) serveConn(nc net.Conn) {
	remote := nc.RemoteAddr()
	if l.mode == AuthInsecure {
		if ta, ok := remote.(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			nc.Close()
			l.refuse(remote, fmt.Errorf("%w: connection from %v", ErrInsecure, remote))
			return
		}
	}
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		nc.Close()
		return
	}
	l.shaking[nc] = struct{}{}
	l.mu.Unlock()
	c, err := serverHandshake(l.ctx, nc, l)
	l.mu.Lock()
	delete(l.shaking, nc)
	l.mu.Unlock()
	if err != nil {
		nc.Close()
		l.refuse(remote, err)
		return
	}
	p, err := l.join(c)
	if err != nil {
		c.sendError(codeOf(err), err.Error())
		c.nc.Close()
		l.refuse(remote, err)
		return
	}
	if p == nil {
		return // this stream completed the session
	}
	t := time.NewTimer(time.Until(p.deadline))
	defer t.Stop()
	select {
	case <-p.dead:
	case <-t.C:
		l.drop(p, fmt.Errorf("%w: session %x: %d of %d streams arrived within %v", ErrTimeout, p.hello.session[:4], p.arrived, p.hello.count, l.cfg.Assemble))
	case <-l.ctx.Done():
		l.drop(p, fmt.Errorf("%w: server shutting down", ErrBusy))
	}
	if p.err != nil {
		l.refuse(remote, p.err)
	}
}

// join adds an authenticated stream to its pending session. It returns the
// pending session to wait on, or nil if this stream completed it.
func (l *Listener) join(c *conn) (*pendingSession, error) {
	h := c.peer
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: server shutting down", ErrBusy)
	}
	p := l.pending[h.session]
	if p == nil {
		p = &pendingSession{hello: h, conns: make([]*conn, h.count), deadline: time.Now().Add(l.cfg.Assemble), dead: make(chan struct{})}
		l.pending[h.session] = p
	}
	switch {
	case h.count != p.hello.count || h.task != p.hello.task:
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: stream %d of session %x says %d streams for task %q, the first said %d for %q",
			ErrProtocol, h.index, h.session[:4], h.count, h.task, p.hello.count, p.hello.task)
	case p.conns[h.index] != nil:
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: stream %d of session %x arrived twice", ErrProtocol, h.index, h.session[:4])
	}
	p.conns[h.index] = c
	p.arrived++
	if p.arrived < int(h.count) {
		l.mu.Unlock()
		return p, nil
	}
	delete(l.pending, h.session)
	close(p.dead)
	l.mu.Unlock()

	s := newSession(roleServer, p.conns, l.cfg.Timeouts, peerKeepAlive(p.conns))
	s.id, s.task, s.mode, s.compress = h.session, h.task, l.mode, l.cfg.Compress
	s.handler, s.maxCalls = l.cfg.Handler, l.cfg.MaxCalls
	s.rcv.init(len(p.conns), l.cfg.Credit)
	s.start()
	select {
	case l.ready <- s:
	default:
		s.Fail(CodeBusy, "too many sessions waiting to be accepted")
		s.Close()
		l.refuse(c.nc.RemoteAddr(), fmt.Errorf("%w: session %x: accept queue full", ErrBusy, h.session[:4]))
	}
	return nil, nil
}

// peerKeepAlive is the longest PING interval the client's streams
// announced: the read deadlines must allow for it.
func peerKeepAlive(conns []*conn) time.Duration {
	ka := conns[0].peer.keepAlive
	for _, c := range conns[1:] {
		if c.peer.keepAlive > ka {
			ka = c.peer.keepAlive
		}
	}
	return time.Duration(ka) * time.Millisecond
}

// drop abandons a pending session (once) and closes its streams with an
// ERROR frame.
func (l *Listener) drop(p *pendingSession, err error) {
	l.mu.Lock()
	if l.pending[p.hello.session] != p {
		l.mu.Unlock()
		return // assembled or dropped meanwhile
	}
	delete(l.pending, p.hello.session)
	p.err = err
	close(p.dead)
	conns := p.conns
	l.mu.Unlock()
	for _, c := range conns {
		if c != nil {
			c.sendError(codeOf(err), err.Error())
			c.nc.Close()
		}
	}
}
