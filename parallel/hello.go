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
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
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

// PSK proof labels (frozen; unchanged from version 1: the transcript
// carries the version).
const (
	labelClient = "logship v1 client proof"
	labelServer = "logship v1 server proof"
)

// transcript is T in docs/protocol.md §4: the server nonce, then the
// client's HELLO payload as sent.
func transcript(serverNonce [32]byte, helloPayload []byte) []byte {
	t := make([]byte, 0, len(serverNonce)+len(helloPayload))
	t = append(t, serverNonce[:]...)
	return append(t, helloPayload...)
}

// proof is HMAC-SHA256(psk, label || t || extra).
func proof(psk []byte, label string, t, extra []byte) [32]byte {
	m := hmac.New(sha256.New, psk)
	m.Write([]byte(label))
	m.Write(t)
	m.Write(extra)
	var p [32]byte
	copy(p[:], m.Sum(nil))
	return p
}

// okSigned is the part of HELLO_OK the server proof covers.
func okSigned(b []byte) []byte { return b[:okOffProof] }

// conn is one authenticated stream before it joins a session.
type conn struct {
	nc   net.Conn // *tls.Conn in TLS mode, *recordConn in PSK mode
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

// newConn sets up the buffers of an authenticated stream.
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

// shake carries the frames of a handshake. It reads straight from the
// connection, a header and then a payload, so that nothing is read past
// the handshake (what follows may be sealed records) and nothing is
// buffered for a peer that has not authenticated; a frame is refused from
// its header unless its type is the one expected, uncompressed and within
// that type's small size limit.
type shake struct {
	nc    net.Conn
	fr    *frameReader
	read  uint64 // bytes read
	index int
}

func newShake(nc net.Conn) *shake {
	return &shake{nc: nc, fr: newFrameReader(nc, -1), index: -1}
}

// recv reads a frame of one of the types in want; an ERROR frame (if
// errorOK) becomes a *RemoteError.
func (sh *shake) recv(errorOK bool, want ...Type) (Frame, error) {
	h, err := sh.fr.readHeader()
	if err == nil || isFrameErr(err) {
		sh.read += HeaderSize
	}
	if err != nil {
		return Frame{}, err
	}
	if !slices.Contains(want, h.typ()) && !(errorOK && h.typ() == TypeError) {
		return Frame{}, h.frameError(sh.index, fmt.Errorf("%w: %v frame during the handshake, expected %v", ErrProtocol, h.typ(), want[0]))
	}
	if h.flags() != 0 {
		return Frame{}, h.frameError(sh.index, fmt.Errorf("%w: flags 0x%02x during the handshake", ErrMalformed, uint8(h.flags())))
	}
	f, err := sh.fr.readPayload(h)
	if err != nil {
		return Frame{}, err
	}
	sh.read += uint64(len(f.Payload))
	if f.Type == TypeError {
		return f, parseErrorBody(f.Payload)
	}
	return f, nil
}

func isFrameErr(err error) bool {
	var fe *FrameError
	return errors.As(err, &fe)
}

// send writes one frame in a single write.
func (sh *shake) send(f Frame) error {
	_, err := sh.nc.Write(encodeFrame(f))
	return err
}

// sendError writes an ERROR frame with a short deadline, best effort.
func (sh *shake) sendError(code Code, msg string) {
	sendErrorFrame(sh.nc, code, msg)
}

// encodeFrame encodes an uncompressed frame.
func encodeFrame(f Frame) []byte {
	b := make([]byte, HeaderSize+len(f.Payload))
	var h header
	h.put(&f, f.Flags, len(f.Payload), len(f.Payload), xxhash.Sum64(f.Payload))
	copy(b, h[:])
	copy(b[HeaderSize:], f.Payload)
	return b
}

// sendErrorFrame writes an ERROR frame on nc with a short deadline, best
// effort.
func sendErrorFrame(nc net.Conn, code Code, msg string) {
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	nc.Write(encodeFrame(Frame{Type: TypeError, Payload: errorBody(code, msg)}))
}

// clientHandshake runs the client side of the hello on a fresh TCP
// connection: TLS (if configured), HELLO, the PSK exchange, HELLO_OK, and
// in PSK mode the switch to sealed records.
func clientHandshake(ctx context.Context, nc net.Conn, cfg *ClientConfig, mode AuthMode, h hello) (*conn, error) {
	deadline := time.Now().Add(cfg.Timeouts.Handshake)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetDeadline(deadline)
	identity := IdentityInsecure
	if mode == AuthTLS {
		tc := tls.Client(nc, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, tlsErr(err)
		}
		nc = tc
		identity = CertIdentity(tc.ConnectionState().PeerCertificates[0])
	}
	sh := newShake(nc)
	sh.index = int(h.index)
	hp := h.marshal()
	if err := sh.send(Frame{Type: TypeHello, Payload: hp}); err != nil {
		return nil, tlsErr(err)
	}
	var t []byte
	if mode == AuthPSK {
		f, err := sh.recv(true, TypeAuth, TypeHelloOK)
		if err != nil {
			return nil, clientShakeErr(err, "the PSK challenge")
		}
		if f.Type != TypeAuth {
			return nil, fmt.Errorf("%w: server answered %v instead of the PSK challenge", ErrAuth, f.Type)
		}
		var ns [32]byte
		copy(ns[:], f.Payload)
		t = transcript(ns, hp)
		p := proof(cfg.PSK, labelClient, t, nil)
		if err := sh.send(Frame{Type: TypeAuth, Payload: p[:]}); err != nil {
			return nil, err
		}
	}
	f, err := sh.recv(true, TypeHelloOK)
	if err != nil {
		return nil, clientShakeErr(tlsErr(err), "HELLO_OK")
	}
	ok, err := parseHelloOK(f.Payload)
	if err != nil {
		return nil, err
	}
	if ok.mode != mode {
		return nil, fmt.Errorf("%w: server answered in mode %v, client asked %v", ErrAuth, ok.mode, mode)
	}
	if mode == AuthPSK {
		want := proof(cfg.PSK, labelServer, t, okSigned(f.Payload))
		if !hmac.Equal(want[:], ok.proof[:]) {
			return nil, fmt.Errorf("%w: server's PSK proof does not match (wrong key or impostor)", ErrAuth)
		}
		c2s, s2c, err := streamKeys(cfg.PSK, t)
		if err != nil {
			return nil, err
		}
		if nc, err = newRecordConn(nc, s2c, c2s); err != nil {
			return nil, err
		}
		identity = PSKIdentity(cfg.pskName())
	}
	c := newConn(nc, int(h.index))
	c.ok, c.identity = ok, identity
	nc.SetDeadline(time.Time{})
	return c, nil
}

// clientShakeErr names what the client waited for when the server sent
// an unexpected frame.
func clientShakeErr(err error, waited string) error {
	var re *RemoteError
	if errors.As(err, &re) {
		return err
	}
	if errors.Is(err, ErrProtocol) {
		return fmt.Errorf("%w (waiting for %s)", err, waited)
	}
	return err
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

// serverHandshake runs the server side of the hello on nc, a connection
// registered as pending. On failure it has already told the client
// (ERROR) when it could. Until the client has authenticated it reads at
// most one HELLO and one AUTH frame, each refused from its header if it
// is anything else.
func serverHandshake(ctx context.Context, nc net.Conn, l *Listener) (*conn, error) {
	cfg := &l.cfg
	start := time.Now()
	var s *shake
	defer func() {
		if s != nil {
			l.adm.stats.preAuth.Add(s.read)
		}
	}()
	nc.SetDeadline(start.Add(min(cfg.Timeouts.Hello, cfg.Timeouts.Handshake)))
	identity := IdentityInsecure
	if l.mode == AuthTLS {
		tc := tls.Server(nc, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("%w: TLS handshake: %w", ErrAuth, err)
		}
		nc = tc
		identity = CertIdentity(tc.ConnectionState().PeerCertificates[0])
	}
	s = newShake(nc)
	refuse := func(err error) (*conn, error) {
		s.sendError(codeOf(err), err.Error())
		return nil, err
	}
	f, err := s.recv(false, TypeHello)
	if err != nil {
		if isFrameErr(err) {
			return refuse(err)
		}
		return nil, timeoutErr(err)
	}
	nc.SetDeadline(start.Add(cfg.Timeouts.Handshake))
	hp := f.Payload
	h, err := parseHello(hp)
	if err != nil {
		if errors.Is(err, ErrVersion) {
			err = fmt.Errorf("%w: the client speaks protocol version %d, this server %d: run the same logship version on both sides", ErrVersion, h.version, Version)
		}
		return refuse(err)
	}
	s.index, s.fr.stream = int(h.index), int(h.index)
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
	var key Key
	var t []byte
	if l.mode == AuthPSK {
		var ns [32]byte
		rand.Read(ns[:])
		if err := s.send(Frame{Type: TypeAuth, Payload: ns[:]}); err != nil {
			return nil, err
		}
		f, err := s.recv(false, TypeAuth)
		if err != nil {
			if isFrameErr(err) {
				return refuse(err)
			}
			return nil, timeoutErr(err)
		}
		t = transcript(ns, hp)
		var found bool
		if key, found = matchKey(l.keys, t, f.Payload); !found {
			return refuse(fmt.Errorf("%w: stream %d of session %x: PSK proof does not match any key", ErrAuth, h.index, h.session[:4]))
		}
		identity = PSKIdentity(key.Name)
	}
	if err := authorize(cfg, identity, h.task); err != nil {
		s.sendError(CodeForbidden, forbiddenMessage(identity, h.task))
		return nil, err
	}
	if err := l.adm.takeStream(identity, h.session, cfg); err != nil {
		return refuse(err)
	}
	okb := ok.marshal()
	if l.mode == AuthPSK {
		p := proof(key.Secret, labelServer, t, okSigned(okb))
		copy(okb[okOffProof:], p[:])
	}
	if err := s.send(Frame{Type: TypeHelloOK, Payload: okb}); err != nil {
		l.adm.release(identity, h.session, 1)
		return nil, err
	}
	if l.mode == AuthPSK {
		c2s, s2c, err := streamKeys(key.Secret, t)
		if err == nil {
			nc, err = newRecordConn(nc, c2s, s2c)
		}
		if err != nil {
			l.adm.release(identity, h.session, 1)
			return nil, err
		}
	}
	c := newConn(nc, int(h.index))
	c.peer, c.identity = h, identity
	nc.SetDeadline(time.Time{})
	return c, nil
}

// matchKey finds the key whose client proof over t is p. Every key is
// tried, each comparison in constant time.
func matchKey(keys []Key, t, p []byte) (Key, bool) {
	var match Key
	found := 0
	for _, k := range keys {
		want := proof(k.Secret, labelClient, t, nil)
		if hmac.Equal(want[:], p) {
			match = k
			found++
		}
	}
	return match, found == 1
}
