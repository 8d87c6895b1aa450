package parallel

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// AuthMode is how the streams of a session are authenticated (frozen values).
type AuthMode uint8

const (
	AuthTLS      AuthMode = 1 // TLS 1.3 with client certificates
	AuthPSK      AuthMode = 2 // pre-shared key challenge-response
	AuthInsecure AuthMode = 3 // plaintext, loopback only
)

func (m AuthMode) String() string {
	switch m {
	case AuthTLS:
		return "tls"
	case AuthPSK:
		return "psk"
	case AuthInsecure:
		return "insecure"
	}
	return fmt.Sprintf("auth mode %d", uint8(m))
}

// MinPSK is the shortest pre-shared key accepted.
const MinPSK = 16

// MaxTask bounds the length of a task name.
const MaxTask = 128

// HELLO payload layout (frozen).
const (
	helloOffVersion   = 0  // u16
	helloOffMode      = 2  // u8
	helloOffReserved  = 3  // u8
	helloOffIndex     = 4  // u16
	helloOffCount     = 6  // u16
	helloOffSession   = 8  // [16]byte
	helloOffNonce     = 24 // [32]byte
	helloOffKeepAlive = 56 // u32 ms
	helloOffTaskLen   = 60 // u8
	helloOffTask      = 61
	helloMinSize      = helloOffTask
	helloMaxSize      = helloOffTask + MaxTask
)

// HELLO_OK payload layout (frozen).
const (
	okOffVersion   = 0  // u16
	okOffMode      = 2  // u8
	okOffKeepAlive = 4  // u32 ms
	okOffCredit    = 8  // u64
	okOffMaxCalls  = 16 // u32
	okOffProof     = 24 // [32]byte
	helloOKSize    = 56
)

// hello is the client's HELLO.
type hello struct {
	version   uint16
	mode      AuthMode
	index     uint16
	count     uint16
	session   [16]byte
	nonce     [32]byte
	keepAlive uint32 // ms
	task      string
}

func (h *hello) marshal() []byte {
	b := make([]byte, helloOffTask+len(h.task))
	binary.LittleEndian.PutUint16(b[helloOffVersion:], h.version)
	b[helloOffMode] = byte(h.mode)
	binary.LittleEndian.PutUint16(b[helloOffIndex:], h.index)
	binary.LittleEndian.PutUint16(b[helloOffCount:], h.count)
	copy(b[helloOffSession:], h.session[:])
	copy(b[helloOffNonce:], h.nonce[:])
	binary.LittleEndian.PutUint32(b[helloOffKeepAlive:], h.keepAlive)
	b[helloOffTaskLen] = byte(len(h.task))
	copy(b[helloOffTask:], h.task)
	return b
}

// parseHello decodes a HELLO payload. The version is returned even when
// the rest is refused, so that a server can answer VERSION first.
func parseHello(b []byte) (hello, error) {
	var h hello
	if len(b) < helloMinSize {
		return h, fmt.Errorf("%w: HELLO of %d bytes", ErrMalformed, len(b))
	}
	h.version = binary.LittleEndian.Uint16(b[helloOffVersion:])
	if h.version != Version {
		return h, fmt.Errorf("%w: peer speaks version %d, this side %d", ErrVersion, h.version, Version)
	}
	h.mode = AuthMode(b[helloOffMode])
	h.index = binary.LittleEndian.Uint16(b[helloOffIndex:])
	h.count = binary.LittleEndian.Uint16(b[helloOffCount:])
	copy(h.session[:], b[helloOffSession:])
	copy(h.nonce[:], b[helloOffNonce:])
	h.keepAlive = binary.LittleEndian.Uint32(b[helloOffKeepAlive:])
	n := int(b[helloOffTaskLen])
	switch {
	case b[helloOffReserved] != 0:
		return h, fmt.Errorf("%w: HELLO reserved byte 0x%02x", ErrMalformed, b[helloOffReserved])
	case h.mode < AuthTLS || h.mode > AuthInsecure:
		return h, fmt.Errorf("%w: HELLO auth mode %d", ErrMalformed, h.mode)
	case h.count == 0 || h.count > MaxStreams || h.index >= h.count:
		return h, fmt.Errorf("%w: HELLO stream %d of %d (at most %d streams)", ErrMalformed, h.index, h.count, MaxStreams)
	case h.keepAlive == 0:
		return h, fmt.Errorf("%w: HELLO keepalive 0", ErrMalformed)
	case len(b) != helloOffTask+n:
		return h, fmt.Errorf("%w: HELLO of %d bytes with a task name of %d", ErrMalformed, len(b), n)
	}
	h.task = string(b[helloOffTask:])
	if err := checkTask(h.task); err != nil {
		return h, err
	}
	return h, nil
}

// checkTask enforces the task name rule: at most MaxTask bytes of
// [A-Za-z0-9._-], not starting with '.'; empty is allowed.
func checkTask(t string) error {
	if len(t) > MaxTask {
		return fmt.Errorf("%w: task name of %d bytes, limit %d", ErrMalformed, len(t), MaxTask)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok || i == 0 && c == '.' {
			return fmt.Errorf("%w: task name %q: only [A-Za-z0-9._-], not starting with '.'", ErrMalformed, t)
		}
	}
	return nil
}

// helloOK is the server's HELLO_OK.
type helloOK struct {
	version   uint16
	mode      AuthMode
	keepAlive uint32 // ms
	credit    uint64
	maxCalls  uint32
	proof     [32]byte
}

func (h *helloOK) marshal() []byte {
	b := make([]byte, helloOKSize)
	binary.LittleEndian.PutUint16(b[okOffVersion:], h.version)
	b[okOffMode] = byte(h.mode)
	binary.LittleEndian.PutUint32(b[okOffKeepAlive:], h.keepAlive)
	binary.LittleEndian.PutUint64(b[okOffCredit:], h.credit)
	binary.LittleEndian.PutUint32(b[okOffMaxCalls:], h.maxCalls)
	copy(b[okOffProof:], h.proof[:])
	return b
}

func parseHelloOK(b []byte) (helloOK, error) {
	var h helloOK
	h.version = binary.LittleEndian.Uint16(b[okOffVersion:])
	h.mode = AuthMode(b[okOffMode])
	h.keepAlive = binary.LittleEndian.Uint32(b[okOffKeepAlive:])
	h.credit = binary.LittleEndian.Uint64(b[okOffCredit:])
	h.maxCalls = binary.LittleEndian.Uint32(b[okOffMaxCalls:])
	copy(h.proof[:], b[okOffProof:])
	switch {
	case h.version != Version:
		return h, fmt.Errorf("%w: server answered version %d", ErrVersion, h.version)
	case h.keepAlive == 0 || h.maxCalls == 0:
		return h, fmt.Errorf("%w: HELLO_OK keepalive %d ms, max calls %d", ErrMalformed, h.keepAlive, h.maxCalls)
	case h.credit < MinCredit:
		return h, fmt.Errorf("%w: HELLO_OK grants %d bytes of credit, minimum %d", ErrMalformed, h.credit, MinCredit)
	case b[3] != 0 || binary.LittleEndian.Uint32(b[20:]) != 0:
		return h, fmt.Errorf("%w: HELLO_OK reserved fields not zero", ErrMalformed)
	}
	return h, nil
}

// PSK proof labels (frozen).
const (
	labelClient = "logship v1 client proof"
	labelServer = "logship v1 server proof"
)

// transcript is T in docs/protocol.md §4.
func transcript(serverNonce, clientNonce [32]byte, h *hello) []byte {
	t := make([]byte, 0, 64+2+1+2+2+16+1+len(h.task))
	t = append(t, serverNonce[:]...)
	t = append(t, clientNonce[:]...)
	t = binary.LittleEndian.AppendUint16(t, h.version)
	t = append(t, byte(h.mode))
	t = binary.LittleEndian.AppendUint16(t, h.index)
	t = binary.LittleEndian.AppendUint16(t, h.count)
	t = append(t, h.session[:]...)
	t = append(t, byte(len(h.task)))
	return append(t, h.task...)
}

func proof(psk []byte, label string, t []byte) [32]byte {
	m := hmac.New(sha256.New, psk)
	m.Write([]byte(label))
	m.Write(t)
	var p [32]byte
	copy(p[:], m.Sum(nil))
	return p
}

// conn is one authenticated stream before it joins a session.
type conn struct {
	nc   net.Conn // *tls.Conn in TLS mode
	br   *bufio.Reader
	fr   *frameReader
	fw   *frameWriter
	peer hello   // server side: the client's hello
	ok   helloOK // client side: the server's answer
	// identity is the authenticated identity of the peer (Session.Identity).
	identity string
}

// I/O buffer sizes per stream.
const (
	readBufSize  = 256 << 10
	writeBufSize = 256 << 10
)

func newConn(nc net.Conn, index int) *conn {
	br := bufio.NewReaderSize(nc, readBufSize)
	return &conn{nc: nc, br: br, fr: newFrameReader(br, index), fw: newFrameWriter(nc, writeBufSize)}
}

// sendError writes an ERROR frame with a short deadline, best effort.
func (c *conn) sendError(code Code, msg string) {
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	f := Frame{Type: TypeError, Payload: errorBody(code, msg)}
	if _, err := c.fw.write(&f, false); err == nil {
		c.fw.flush()
	}
}

func (c *conn) send(f Frame) error {
	if _, err := c.fw.write(&f, false); err != nil {
		return err
	}
	return c.fw.flush()
}

// recv reads the next frame; an ERROR frame becomes a *RemoteError.
func (c *conn) recv() (Frame, error) {
	f, err := c.fr.read()
	if err != nil {
		return f, err
	}
	if f.Type == TypeError {
		return f, parseErrorBody(f.Payload)
	}
	return f, nil
}

// clientHandshake runs the client side of the hello on a fresh TCP
// connection: TLS (if configured), HELLO, the PSK exchange, HELLO_OK.
func clientHandshake(ctx context.Context, nc net.Conn, cfg *ClientConfig, mode AuthMode, h hello) (*conn, error) {
	deadline := time.Now().Add(cfg.Timeouts.Handshake)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetDeadline(deadline)
	if mode == AuthTLS {
		tc := tls.Client(nc, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, tlsErr(err)
		}
		nc = tc
	}
	c := newConn(nc, int(h.index))
	c.identity = IdentityInsecure
	if err := c.send(Frame{Type: TypeHello, Payload: h.marshal()}); err != nil {
		return nil, tlsErr(err)
	}
	f, err := c.recv()
	if err != nil {
		return nil, tlsErr(err)
	}
	var serverNonce [32]byte
	if mode == AuthPSK {
		if f.Type != TypeAuth {
			return nil, fmt.Errorf("%w: server answered %v instead of the PSK challenge", ErrAuth, f.Type)
		}
		copy(serverNonce[:], f.Payload)
		t := transcript(serverNonce, h.nonce, &h)
		p := proof(cfg.PSK, labelClient, t)
		if err := c.send(Frame{Type: TypeAuth, Payload: p[:]}); err != nil {
			return nil, err
		}
		if f, err = c.recv(); err != nil {
			return nil, err
		}
	}
	if f.Type != TypeHelloOK {
		return nil, fmt.Errorf("%w: server answered %v to HELLO", ErrProtocol, f.Type)
	}
	ok, err := parseHelloOK(f.Payload)
	if err != nil {
		return nil, err
	}
	if ok.mode != mode {
		return nil, fmt.Errorf("%w: server answered in mode %v, client asked %v", ErrAuth, ok.mode, mode)
	}
	if mode == AuthPSK {
		want := proof(cfg.PSK, labelServer, transcript(serverNonce, h.nonce, &h))
		if !hmac.Equal(want[:], ok.proof[:]) {
			return nil, fmt.Errorf("%w: server's PSK proof does not match (wrong key or impostor)", ErrAuth)
		}
		c.identity = PSKIdentity(DefaultKeyName)
	}
	if tc, isTLS := nc.(*tls.Conn); isTLS {
		c.identity = CertIdentity(tc.ConnectionState().PeerCertificates[0])
	}
	c.ok = ok
	nc.SetDeadline(time.Time{})
	return c, nil
}

// tlsErr marks TLS alerts from the peer (a refused client certificate,
// say) and server certificates that do not verify as ErrAuth.
func tlsErr(err error) error {
	var oe *net.OpError
	var verr *tls.CertificateVerificationError
	if errors.As(err, &oe) && oe.Op == "remote error" || errors.As(err, &verr) {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return err
}

// serverHandshake runs the server side of the hello. On failure it has
// already told the client (ERROR) when it could.
func serverHandshake(ctx context.Context, nc net.Conn, l *Listener) (*conn, error) {
	cfg := &l.cfg
	nc.SetDeadline(time.Now().Add(cfg.Timeouts.Handshake))
	if l.mode == AuthTLS {
		tc := tls.Server(nc, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("%w: TLS handshake: %w", ErrAuth, err)
		}
		nc = tc
	}
	c := newConn(nc, -1)
	c.identity = IdentityInsecure
	if tc, isTLS := nc.(*tls.Conn); isTLS {
		c.identity = CertIdentity(tc.ConnectionState().PeerCertificates[0])
	}
	refuse := func(err error) (*conn, error) {
		c.sendError(codeOf(err), err.Error())
		return nil, err
	}
	f, err := c.fr.read()
	if err != nil {
		var fe *FrameError
		if errors.As(err, &fe) {
			return refuse(err)
		}
		return nil, err
	}
	if f.Type != TypeHello {
		return refuse(fmt.Errorf("%w: %v frame before HELLO", ErrProtocol, f.Type))
	}
	h, err := parseHello(f.Payload)
	if err != nil {
		return refuse(err)
	}
	c.fr.stream = int(h.index)
	if h.mode != l.mode {
		return refuse(fmt.Errorf("%w: client asks for %v, server requires %v", ErrAuth, h.mode, l.mode))
	}
	ok := helloOK{
		version:   Version,
		mode:      l.mode,
		keepAlive: uint32(cfg.Timeouts.KeepAlive.Milliseconds()),
		credit:    uint64(cfg.Credit),
		maxCalls:  uint32(cfg.MaxCalls),
	}
	if l.mode == AuthPSK {
		var ns [32]byte
		rand.Read(ns[:])
		if err := c.send(Frame{Type: TypeAuth, Payload: ns[:]}); err != nil {
			return nil, err
		}
		f, err := c.fr.read()
		if err != nil {
			return nil, err
		}
		if f.Type != TypeAuth {
			return refuse(fmt.Errorf("%w: %v frame instead of the PSK proof", ErrProtocol, f.Type))
		}
		t := transcript(ns, h.nonce, &h)
		want := proof(cfg.PSK, labelClient, t)
		if !hmac.Equal(want[:], f.Payload) {
			return refuse(fmt.Errorf("%w: stream %d of session %x: PSK proof does not match", ErrAuth, h.index, h.session[:4]))
		}
		ok.proof = proof(cfg.PSK, labelServer, t)
		c.identity = PSKIdentity(DefaultKeyName)
	}
	if err := authorize(cfg, c.identity, h.task); err != nil {
		c.sendError(CodeForbidden, forbiddenMessage(c.identity, h.task))
		return nil, err
	}
	if err := c.send(Frame{Type: TypeHelloOK, Payload: ok.marshal()}); err != nil {
		return nil, err
	}
	c.peer = h
	nc.SetDeadline(time.Time{})
	return c, nil
}
