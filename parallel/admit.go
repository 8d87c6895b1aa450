package parallel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Admission limits (defaults). Unauthenticated connections are bounded
// per source address and in all; authenticated peers per identity, so
// that no number of unauthenticated connections can keep an
// authenticated client out.
const (
	// DefaultMaxPending bounds the connections still in their handshake.
	DefaultMaxPending = 256
	// DefaultMaxPendingPerAddr bounds them per source address (per /64
	// for IPv6): one client opening MaxStreams streams at once fits.
	DefaultMaxPendingPerAddr = MaxStreams
	// DefaultMaxSessionsPerIdentity bounds the sessions (assembling or
	// live) of one identity.
	DefaultMaxSessionsPerIdentity = 32
	// DefaultMaxStreamsPerIdentity bounds their streams.
	DefaultMaxStreamsPerIdentity = 4 * MaxStreams
	// DefaultHelloTimeout is the time a new connection has to deliver
	// its first frame (after TLS, if any).
	DefaultHelloTimeout = 3 * time.Second
	// MaxKeepAlive bounds the keepalive interval a peer may announce;
	// a larger one is clamped (docs/protocol.md §8.2).
	MaxKeepAlive = 60 * time.Second
	// DefaultRefusalInterval is how often refusals are summed up for the
	// log (ServerConfig.OnRefusals).
	DefaultRefusalInterval = 10 * time.Second
	// maxBusyWriters bounds the refused connections being told BUSY at
	// once; beyond them a refused connection is closed without a word.
	maxBusyWriters = 16
)

// ErrLimit: an authenticated peer is over its identity's session or
// stream limit. The peer is told BUSY.
var ErrLimit = errors.New("parallel: per-identity limit")

// RefusalCounts counts refused connections by reason.
type RefusalCounts struct {
	Busy      uint64 // over the pending limits (or evicted for a fairer share)
	Limit     uint64 // over an identity's session or stream limit
	Auth      uint64 // authentication failed (wrong key, certificate, mode)
	Forbidden uint64 // refused by ServerConfig.Authorize
	Protocol  uint64 // malformed or out-of-place frames, insecure from afar
	Version   uint64 // another protocol version
	Timeout   uint64 // no hello in time, session not assembled in time
	Dropped   uint64 // the peer hung up during the handshake
}

// Total is the sum of the counts.
func (c RefusalCounts) Total() uint64 {
	return c.Busy + c.Limit + c.Auth + c.Forbidden + c.Protocol + c.Version + c.Timeout + c.Dropped
}

func (c RefusalCounts) sub(o RefusalCounts) RefusalCounts {
	return RefusalCounts{c.Busy - o.Busy, c.Limit - o.Limit, c.Auth - o.Auth, c.Forbidden - o.Forbidden,
		c.Protocol - o.Protocol, c.Version - o.Version, c.Timeout - o.Timeout, c.Dropped - o.Dropped}
}

// String lists the non-zero counts, e.g. "busy 120, timeout 3".
func (c RefusalCounts) String() string {
	var parts []string
	for _, p := range []struct {
		n string
		v uint64
	}{{"busy", c.Busy}, {"limit", c.Limit}, {"auth", c.Auth}, {"forbidden", c.Forbidden},
		{"protocol", c.Protocol}, {"version", c.Version}, {"timeout", c.Timeout}, {"dropped", c.Dropped}} {
		if p.v != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", p.n, p.v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// ListenerStats are a listener's counters (for metrics).
type ListenerStats struct {
	Pending      int    // connections in their handshake now
	Accepted     uint64 // connections accepted
	Sessions     uint64 // sessions assembled
	PreAuthBytes uint64 // bytes read from peers before they authenticated
	Refused      RefusalCounts
}

// RefusalSummary sums up refusals: a log line, not one per connection.
// The first refusal after a quiet interval is reported at once (Interval
// is then the time since the last report), the rest once per interval.
type RefusalSummary struct {
	Interval time.Duration
	Counts   RefusalCounts
	Addrs    int    // distinct source addresses (at most maxSummaryAddrs counted)
	Top      string // the address refused most often
	TopCount uint64
	FirstErr string // the first refusal of the interval
}

func (s RefusalSummary) String() string {
	return fmt.Sprintf("refused %d connections in %v (%v) from %d addresses, most from %s (%d); first: %s",
		s.Counts.Total(), s.Interval, s.Counts, s.Addrs, s.Top, s.TopCount, s.FirstErr)
}

const maxSummaryAddrs = 4096

// admission is the listener's accounting of pending connections and of
// identities.
type admission struct {
	mu       sync.Mutex
	pending  int                             // connections in handshake
	byAddr   map[netip.Prefix][]*pendingConn // oldest first
	idents   map[string]*identUse
	stats    statCounters
	interval struct {
		counts RefusalCounts // at the start of the interval
		addrs  map[netip.Prefix]uint64
		first  string
		quiet  bool // nothing was refused in the last interval
	}
	flush chan struct{} // 1-buffered: a refusal after a quiet interval
}

// pendingConn is a connection in its handshake.
type pendingConn struct {
	nc      net.Conn
	addr    netip.Prefix
	evicted atomic.Bool
}

// identUse is what an identity holds: streams per session id (sessions
// being assembled or live).
type identUse struct {
	sessions map[[16]byte]int
	streams  int
}

type statCounters struct {
	accepted, sessions, preAuth                                    atomic.Uint64
	busy, limit, auth, forbidden, protocol, version, timeout, drop atomic.Uint64
}

// addrKey is the accounting unit of a source address: the address for
// IPv4, its /64 for IPv6.
func addrKey(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// admit registers a new connection from remote, or refuses it (ErrBusy).
// When all pending slots are taken, the oldest connection of the address
// holding the most is evicted in favour of an address holding fewer
// (victim, to be woken by the caller).
func (a *admission) admit(nc net.Conn, cfg *ServerConfig) (pc, victim *pendingConn, err error) {
	key := addrKey(nc.RemoteAddr())
	a.mu.Lock()
	defer a.mu.Unlock()
	mine := len(a.byAddr[key])
	if mine >= cfg.MaxPendingPerAddr {
		return nil, nil, fmt.Errorf("%w: %d connections from %v in handshake, limit %d", ErrBusy, mine, key, cfg.MaxPendingPerAddr)
	}
	if a.pending >= cfg.MaxPending {
		var heavy netip.Prefix
		most := 0
		for k, l := range a.byAddr {
			if len(l) > most {
				heavy, most = k, len(l)
			}
		}
		if most <= mine+1 {
			return nil, nil, fmt.Errorf("%w: %d connections in handshake", ErrBusy, a.pending)
		}
		victim = a.byAddr[heavy][0]
		victim.evicted.Store(true)
		a.remove(victim)
	}
	pc = &pendingConn{nc: nc, addr: key}
	a.byAddr[key] = append(a.byAddr[key], pc)
	a.pending++
	return pc, victim, nil
}

// done unregisters a pending connection (authenticated, failed or
// evicted); safe to call more than once.
func (a *admission) done(pc *pendingConn) {
	a.mu.Lock()
	a.remove(pc)
	a.mu.Unlock()
}

func (a *admission) remove(pc *pendingConn) {
	l := a.byAddr[pc.addr]
	for i, o := range l {
		if o == pc {
			l = append(l[:i:i], l[i+1:]...)
			a.pending--
			if len(l) == 0 {
				delete(a.byAddr, pc.addr)
			} else {
				a.byAddr[pc.addr] = l
			}
			return
		}
	}
}

// takeStream accounts one more authenticated stream of session for
// identity, before the stream is told HELLO_OK.
func (a *admission) takeStream(identity string, session [16]byte, cfg *ServerConfig) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.idents[identity]
	if u == nil {
		u = &identUse{sessions: make(map[[16]byte]int)}
		a.idents[identity] = u
	}
	if _, ok := u.sessions[session]; !ok && len(u.sessions) >= cfg.MaxSessionsPerIdentity {
		return fmt.Errorf("%w: %w: %s holds %d sessions, limit %d", ErrBusy, ErrLimit, identity, len(u.sessions), cfg.MaxSessionsPerIdentity)
	}
	if u.streams >= cfg.MaxStreamsPerIdentity {
		return fmt.Errorf("%w: %w: %s holds %d streams, limit %d", ErrBusy, ErrLimit, identity, u.streams, cfg.MaxStreamsPerIdentity)
	}
	u.sessions[session]++
	u.streams++
	return nil
}

// release gives back n streams of session of identity.
func (a *admission) release(identity string, session [16]byte, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.idents[identity]
	if u == nil || n <= 0 {
		return
	}
	u.streams -= n
	if u.sessions[session] -= n; u.sessions[session] <= 0 {
		delete(u.sessions, session)
	}
	if u.streams <= 0 {
		delete(a.idents, identity)
	}
}

// count records a refusal of a connection from remote.
func (a *admission) count(remote net.Addr, err error) {
	st := &a.stats
	switch {
	case errors.Is(err, ErrLimit):
		st.limit.Add(1)
	case errors.Is(err, ErrBusy):
		st.busy.Add(1)
	case errors.Is(err, ErrForbidden):
		st.forbidden.Add(1)
	case errors.Is(err, ErrAuth):
		st.auth.Add(1)
	case errors.Is(err, ErrVersion):
		st.version.Add(1)
	case errors.Is(err, ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		st.timeout.Add(1)
	case isProtocol(err):
		st.protocol.Add(1)
	default:
		st.drop.Add(1)
	}
	key := addrKey(remote)
	a.mu.Lock()
	defer a.mu.Unlock()
	iv := &a.interval
	if iv.first == "" {
		iv.first = fmt.Sprintf("%v: %v", remote, err)
	}
	if _, ok := iv.addrs[key]; ok || len(iv.addrs) < maxSummaryAddrs {
		iv.addrs[key]++
	}
	if iv.quiet {
		iv.quiet = false
		select {
		case a.flush <- struct{}{}:
		default:
		}
	}
}

func isProtocol(err error) bool {
	for _, s := range []error{ErrProtocol, ErrMalformed, ErrUnknownType, ErrFrameTooLarge, ErrChecksum, ErrInsecure, ErrRecord} {
		if errors.Is(err, s) {
			return true
		}
	}
	var fe *FrameError
	return errors.As(err, &fe)
}

func (a *admission) refusals() RefusalCounts {
	st := &a.stats
	return RefusalCounts{st.busy.Load(), st.limit.Load(), st.auth.Load(), st.forbidden.Load(),
		st.protocol.Load(), st.version.Load(), st.timeout.Load(), st.drop.Load()}
}

// summary ends the current interval and returns its summary; ok is false
// if nothing was refused in it.
func (a *admission) summary(d time.Duration) (RefusalSummary, bool) {
	now := a.refusals()
	a.mu.Lock()
	defer a.mu.Unlock()
	iv := &a.interval
	s := RefusalSummary{Interval: d, Counts: now.sub(iv.counts), Addrs: len(iv.addrs), FirstErr: iv.first}
	keys := make([]netip.Prefix, 0, len(iv.addrs))
	for k := range iv.addrs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return iv.addrs[keys[i]] > iv.addrs[keys[j]] })
	if len(keys) > 0 {
		s.Top, s.TopCount = keys[0].String(), iv.addrs[keys[0]]
	}
	iv.counts, iv.first = now, ""
	clear(iv.addrs)
	return s, s.Counts.Total() > 0
}

// tick ends an interval of the ticker: it returns the summary of what
// was refused since the last one, if anything, and after an interval
// without refusals lets the next refusal be reported at once.
func (a *admission) tick(d time.Duration) (RefusalSummary, bool) {
	s, ok := a.summary(d)
	if !ok {
		a.mu.Lock()
		a.interval.quiet = true
		a.mu.Unlock()
	}
	return s, ok
}
