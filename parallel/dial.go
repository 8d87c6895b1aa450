package parallel

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults.
const (
	DefaultStreams  = 4
	DefaultCredit   = 64 << 20
	DefaultMaxCalls = 8
	// MinCredit is the smallest credit a server may grant.
	MinCredit = 64 << 10
)

// Timeouts bound every wait on the network. Zero fields take the defaults.
type Timeouts struct {
	// Handshake bounds TLS and the hello on each connection (10 s).
	Handshake time.Duration
	// Hello bounds, on the server, the time from accepting a connection
	// to its first frame's header, TLS included (DefaultHelloTimeout).
	Hello time.Duration
	// KeepAlive is how often an idle stream sends PING (5 s, at most
	// MaxKeepAlive). The peer gives up on a stream silent for
	// 3 × KeepAlive + 1 s.
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
	def(&t.Hello, DefaultHelloTimeout)
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
	// PSK: pre-shared key challenge-response, then every byte sealed
	// with keys derived from it (see LoadClientKey).
	PSK []byte
	// PSKName is the name of the key in PSK, for Identity on this side
	// (DefaultKeyName if empty); the server finds the key by its proof.
	PSKName string
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
	// PSK: pre-shared key challenge-response, then every byte sealed
	// with keys derived from it; the key is named DefaultKeyName.
	PSK []byte
	// PSKKeys: PSK mode with several named keys (see LoadKeys), one per
	// client identity. Exclusive with PSK.
	PSKKeys []Key
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
	// MaxPending bounds the connections in their handshake, not yet
	// authenticated (DefaultMaxPending if 0). When they are all taken, a
	// new connection from an address holding fewer of them than another
	// replaces that address's oldest; otherwise it is refused with ERROR
	// (BUSY). Authenticated streams do not count.
	MaxPending int
	// MaxPendingPerAddr bounds them per source address, per /64 for IPv6
	// (DefaultMaxPendingPerAddr if 0).
	MaxPendingPerAddr int
	// MaxSessionsPerIdentity and MaxStreamsPerIdentity bound the sessions
	// (being assembled or live) and their streams per authenticated
	// identity (DefaultMaxSessionsPerIdentity, DefaultMaxStreamsPerIdentity
	// if 0); more are refused with ERROR (BUSY).
	MaxSessionsPerIdentity int
	MaxStreamsPerIdentity  int
	// OnRefusals, if set, gets a summary of the refusals of each
	// RefusalInterval (DefaultRefusalInterval if 0) in which there were
	// any: one log line however many connections a flood makes.
	OnRefusals      func(RefusalSummary)
	RefusalInterval time.Duration
	// Authorize, if set, is called on every stream once the peer has
	// authenticated and before anything of the task is touched, with the
	// peer's identity (see Session.Identity) and the task it asked for. A
	// non-nil error refuses the connection: the client gets ERROR
	// (FORBIDDEN) and its Dial an error matching ErrForbidden. The error's
	// text stays on the server (OnRefuse); the client is told only the
	// identity and the task. Authorize may be called concurrently.
	Authorize func(identity, task string) error
	// OnRefuse, if set, is told about every connection or session that was
	// refused (authentication, timeouts, malformed hellos, ...), from the
	// connection's goroutine; not for logging (see OnRefusals).
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
	ips, err := resolve(ctx, host)
	if err != nil {
		return false, err
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false, nil
		}
	}
	return len(ips) > 0, nil
}

// resolve returns the addresses of host (an IP address or a name).
func resolve(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	return ips, nil
}

// insecureTarget resolves addr once and returns the loopback address to
// dial, so that the address checked is the address dialled.
func insecureTarget(ctx context.Context, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("parallel: %w", err)
	}
	if host == "" {
		return "", fmt.Errorf("%w: refusing to dial %s without authentication", ErrInsecure, addr)
	}
	ips, err := resolve(ctx, host)
	if err != nil {
		return "", fmt.Errorf("parallel: %w", err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return "", fmt.Errorf("%w: refusing to dial %s (%v) without authentication", ErrInsecure, addr, ip)
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("%w: %s has no address", ErrInsecure, host)
	}
	return net.JoinHostPort(ips[0].String(), port), nil
}

func (c *ClientConfig) pskName() string {
	if c.PSKName == "" {
		return DefaultKeyName
	}
	return c.PSKName
}

// clampKeepAlive bounds a keepalive a peer announced (ms) by MaxKeepAlive.
func clampKeepAlive(ms uint32) time.Duration {
	return min(time.Duration(ms)*time.Millisecond, MaxKeepAlive)
}

// Dial opens a session of cfg.Streams streams to the server at addr
// (host:port). Each stream does the hello and authentication; Dial
// returns once all have been accepted, or the first error (a refusal by
// the server comes back as a *RemoteError: errors.Is(err, ErrAuth) for
// a wrong key, ErrForbidden for a task the identity is not granted,
// ErrBusy for a server over its limits). ctx bounds the dialing and the
// handshakes only.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Session, error) {
	cfg.Timeouts.defaults()
	if cfg.Streams == 0 {
		cfg.Streams = DefaultStreams
	}
	if cfg.Streams < 1 || cfg.Streams > MaxStreams {
		return nil, fmt.Errorf("parallel: %d streams, want 1..%d", cfg.Streams, MaxStreams)
	}
	if cfg.Timeouts.KeepAlive > MaxKeepAlive {
		return nil, fmt.Errorf("parallel: keepalive %v, at most %v", cfg.Timeouts.KeepAlive, MaxKeepAlive)
	}
	if err := checkTask(cfg.Task); err != nil {
		return nil, err
	}
	mode, err := authMode(cfg.TLS != nil, cfg.PSK, cfg.Insecure)
	if err != nil {
		return nil, err
	}
	if mode == AuthPSK && cfg.PSKName != "" {
		if err := checkKeyName(cfg.PSKName); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAuth, err)
		}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parallel: %w", err)
	}
	switch mode {
	case AuthInsecure:
		if addr, err = insecureTarget(ctx, addr); err != nil {
			return nil, err
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
			if mode == AuthInsecure && !nc.RemoteAddr().(*net.TCPAddr).IP.IsLoopback() {
				nc.Close()
				return fmt.Errorf("%w: connected to %v", ErrInsecure, nc.RemoteAddr())
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
	s := newSession(roleClient, conns, cfg.Timeouts, clampKeepAlive(ok.keepAlive))
	s.id, s.task, s.mode, s.compress = id, cfg.Task, mode, cfg.Compress
	s.credit.limit = int64(ok.credit)
	s.credit.changed = make(chan struct{})
	s.acks.changed = make(chan struct{})
	s.calls.pending = make(map[uint64]chan callDone)
	s.calls.slots = make(chan struct{}, ok.maxCalls)
	s.start()
	return s, nil
}

// Listener accepts sessions. Its goroutines (the accept loop, one per
// connection in handshake or waiting for its session, one per live
// session for the accounting, the refusal summary) are stopped by Close.
type Listener struct {
	cfg  ServerConfig
	mode AuthMode
	keys []Key // PSK mode
	ln   net.Listener

	g      errgroup.Group
	ctx    context.Context
	cancel context.CancelFunc
	busy   chan struct{} // one per refused connection being told BUSY
	ready  chan *Session // assembled, not yet accepted
	closed chan struct{} // closed by Close

	adm admission

	mu      sync.Mutex                   // guards pending and shaking
	pending map[[16]byte]*pendingSession // sessions whose streams are arriving
	shaking map[net.Conn]struct{}        // connections in handshake, closed by Close
}

// pendingSession is a session whose streams are still arriving.
type pendingSession struct {
	hello    hello  // of the first stream
	identity string // of the first stream; every stream must have it
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
	if cfg.Timeouts.KeepAlive > MaxKeepAlive {
		return nil, fmt.Errorf("parallel: keepalive %v, at most %v", cfg.Timeouts.KeepAlive, MaxKeepAlive)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxCalls, DefaultMaxCalls)
	def(&cfg.MaxPending, DefaultMaxPending)
	def(&cfg.MaxPendingPerAddr, DefaultMaxPendingPerAddr)
	def(&cfg.MaxSessionsPerIdentity, DefaultMaxSessionsPerIdentity)
	def(&cfg.MaxStreamsPerIdentity, DefaultMaxStreamsPerIdentity)
	if cfg.Assemble <= 0 {
		cfg.Assemble = 10 * time.Second
	}
	if cfg.RefusalInterval <= 0 {
		cfg.RefusalInterval = DefaultRefusalInterval
	}
	var keys []Key
	psk := cfg.PSK
	switch {
	case cfg.PSK != nil && cfg.PSKKeys != nil:
		return nil, fmt.Errorf("%w: set PSK or PSKKeys, not both", ErrAuth)
	case cfg.PSK != nil:
		keys = []Key{{Name: DefaultKeyName, Secret: cfg.PSK}}
	case cfg.PSKKeys != nil:
		if err := checkKeys(cfg.PSKKeys); err != nil {
			return nil, err
		}
		keys, psk = cfg.PSKKeys, cfg.PSKKeys[0].Secret
	}
	mode, err := authMode(cfg.TLS != nil, psk, cfg.Insecure)
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
		keys:    keys,
		ln:      ln,
		busy:    make(chan struct{}, maxBusyWriters),
		ready:   make(chan *Session, cfg.MaxPending),
		closed:  make(chan struct{}),
		pending: make(map[[16]byte]*pendingSession),
		shaking: make(map[net.Conn]struct{}),
	}
	l.adm.byAddr = make(map[netip.Prefix][]*pendingConn)
	l.adm.idents = make(map[string]*identUse)
	l.adm.interval.addrs = make(map[netip.Prefix]uint64)
	l.adm.interval.quiet = true
	l.adm.flush = make(chan struct{}, 1)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.g.Go(l.acceptLoop)
	if cfg.OnRefusals != nil {
		l.g.Go(l.summarize)
	}
	return l, nil
}

// Addr returns the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	l.adm.mu.Lock()
	pending := l.adm.pending
	l.adm.mu.Unlock()
	st := &l.adm.stats
	return ListenerStats{
		Pending:      pending,
		Accepted:     st.accepted.Load(),
		Sessions:     st.sessions.Load(),
		PreAuthBytes: st.preAuth.Load(),
		Refused:      l.adm.refusals(),
	}
}

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
	if l.cfg.OnRefusals != nil {
		if s, ok := l.adm.summary(l.cfg.RefusalInterval); ok {
			l.cfg.OnRefusals(s)
		}
	}
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

// refuse counts a refusal and tells OnRefuse.
func (l *Listener) refuse(remote net.Addr, err error) {
	l.adm.count(remote, err)
	if l.cfg.OnRefuse != nil {
		l.cfg.OnRefuse(remote, err)
	}
}

// summarize hands OnRefusals a summary per interval with refusals, and
// one at once for the first refusal after a quiet interval: at most two
// lines per interval however many connections are refused.
func (l *Listener) summarize() error {
	t := time.NewTicker(l.cfg.RefusalInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-l.closed:
			return nil // Close hands over the last one
		case <-l.adm.flush:
			if s, ok := l.adm.summary(time.Since(last)); ok {
				l.cfg.OnRefusals(s)
			}
		case <-t.C:
			if s, ok := l.adm.tick(l.cfg.RefusalInterval); ok {
				l.cfg.OnRefusals(s)
			}
			last = time.Now()
		}
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
		l.adm.stats.accepted.Add(1)
		pc, victim, err := l.adm.admit(nc, &l.cfg)
		if err != nil {
			l.refuse(nc.RemoteAddr(), err)
			l.tellBusy(nc, err)
			continue
		}
		if victim != nil {
			victim.nc.SetDeadline(time.Now()) // its goroutine refuses it
		}
		l.g.Go(func() error {
			l.serveConn(pc)
			return nil
		})
	}
}

// tellBusy sends ERROR (BUSY) on a refused connection and closes it, in
// the background, at most maxBusyWriters at a time; beyond them it just
// closes it. The connection is half-closed and read for a moment first,
// so that the client's HELLO, unread, does not turn the close into a
// reset that destroys the ERROR frame.
func (l *Listener) tellBusy(nc net.Conn, err error) {
	select {
	case l.busy <- struct{}{}:
	default:
		nc.Close()
		return
	}
	l.g.Go(func() error {
		defer func() { <-l.busy }()
		defer nc.Close()
		sendErrorFrame(nc, CodeBusy, publicBusy(err))
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		nc.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
		return nil
	})
}

// publicBusy is what a refused client is told.
func publicBusy(err error) string {
	var msg string
	if err != nil {
		msg = err.Error()
	}
	return msg
}

// serveConn runs the handshake on a pending connection and adds it to its
// session; the goroutine of the stream that completes a session starts it.
func (l *Listener) serveConn(pc *pendingConn) {
	nc := pc.nc
	remote := nc.RemoteAddr()
	if l.mode == AuthInsecure {
		if ta, ok := remote.(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			l.adm.done(pc)
			nc.Close()
			l.refuse(remote, fmt.Errorf("%w: connection from %v", ErrInsecure, remote))
			return
		}
	}
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		l.adm.done(pc)
		nc.Close()
		return
	}
	l.shaking[nc] = struct{}{}
	l.mu.Unlock()
	c, err := serverHandshake(l.ctx, nc, l)
	l.adm.done(pc)
	l.mu.Lock()
	delete(l.shaking, nc)
	l.mu.Unlock()
	if pc.evicted.Load() {
		if err == nil {
			c.nc.SetDeadline(time.Time{}) // authenticated just in time
		} else {
			err = fmt.Errorf("%w: %v holds more connections in handshake than any other address; this one made room for another", ErrBusy, pc.addr)
			if l.mode != AuthTLS {
				sendErrorFrame(nc, CodeBusy, "too many connections in handshake from your address")
			}
		}
	}
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
		l.adm.release(c.identity, h.session, 1)
		return nil, fmt.Errorf("%w: server shutting down", ErrBusy)
	}
	p := l.pending[h.session]
	if p == nil {
		p = &pendingSession{hello: h, identity: c.identity, conns: make([]*conn, h.count), deadline: time.Now().Add(l.cfg.Assemble), dead: make(chan struct{})}
		l.pending[h.session] = p
	}
	switch {
	case c.identity != p.identity:
		l.mu.Unlock()
		l.adm.release(c.identity, h.session, 1)
		return nil, fmt.Errorf("%w: stream %d of session %x authenticated as %s, the first as %s",
			ErrProtocol, h.index, h.session[:4], c.identity, p.identity)
	case h.count != p.hello.count || h.task != p.hello.task:
		l.mu.Unlock()
		l.adm.release(c.identity, h.session, 1)
		return nil, fmt.Errorf("%w: stream %d of session %x says %d streams for task %q, the first said %d for %q",
			ErrProtocol, h.index, h.session[:4], h.count, h.task, p.hello.count, p.hello.task)
	case p.conns[h.index] != nil:
		l.mu.Unlock()
		l.adm.release(c.identity, h.session, 1)
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
	l.adm.stats.sessions.Add(1)
	identity, n := p.identity, len(p.conns)
	l.g.Go(func() error {
		select {
		case <-s.Done():
		case <-l.closed:
		}
		l.adm.release(identity, h.session, n)
		return nil
	})
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
// announced, at most MaxKeepAlive: the read deadlines must allow for it.
func peerKeepAlive(conns []*conn) time.Duration {
	ka := conns[0].peer.keepAlive
	for _, c := range conns[1:] {
		if c.peer.keepAlive > ka {
			ka = c.peer.keepAlive
		}
	}
	return clampKeepAlive(ka)
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
	l.adm.release(p.identity, p.hello.session, p.arrived)
	for _, c := range conns {
		if c != nil {
			c.sendError(codeOf(err), err.Error())
			c.nc.Close()
		}
	}
}
