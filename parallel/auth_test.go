package parallel

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var psk = []byte("0123456789abcdef0123456789abcdef")

// refusals collects what a listener refused.
type refusals chan error

func (r refusals) hook(_ net.Addr, err error) {
	select {
	case r <- err:
	default:
	}
}

// wait returns the next refusal.
func (r refusals) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r:
		return err
	case <-time.After(testTimeout):
		t.Fatal("the listener refused nothing")
		return nil
	}
}

// noSession checks that the listener assembled no session.
func noSession(t testing.TB, l *Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if s, err := l.Accept(ctx); err == nil {
		s.Close()
		t.Fatal("the listener accepted a session")
	}
}

// roundTrip checks that a session carries a window and an ack.
func roundTrip(t *testing.T, c, s *Session) {
	t.Helper()
	ctx := testCtx(t)
	plan := []planned{{seq: 3, sizes: []int{1000, 70000, 0}}}
	if err := sendPlan(ctx, c, plan); err != nil {
		t.Fatal(err)
	}
	if err := receivePlan(ctx, s, plan, true); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAck(ctx, 3); err != nil {
		t.Fatal(err)
	}
}

func TestPSK(t *testing.T) {
	t.Parallel()
	t.Run("good", func(t *testing.T) {
		c, s := pair(t, ServerConfig{PSK: psk}, ClientConfig{PSK: psk, Streams: 3, Task: "psk"})
		if c.Auth() != AuthPSK || s.Auth() != AuthPSK {
			t.Fatalf("auth modes %v/%v", c.Auth(), s.Auth())
		}
		roundTrip(t, c, s)
	})
	t.Run("wrong key", func(t *testing.T) {
		ref := make(refusals, 8)
		l := listen(t, ServerConfig{PSK: psk, OnRefuse: ref.hook})
		_, err := Dial(testCtx(t), l.Addr().String(), ClientConfig{PSK: []byte("another key of enough length"), Streams: 2})
		var re *RemoteError
		if !errors.Is(err, ErrAuth) || !errors.As(err, &re) || re.Code != CodeAuth {
			t.Fatalf("Dial with a wrong key: %v, want the server's AUTH error", err)
		}
		if err := ref.wait(t); !errors.Is(err, ErrAuth) {
			t.Fatalf("server refused with %v, want ErrAuth", err)
		}
		noSession(t, l)
	})
	t.Run("insecure client", func(t *testing.T) {
		l := listen(t, ServerConfig{PSK: psk})
		_, err := Dial(testCtx(t), l.Addr().String(), ClientConfig{Insecure: true})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("insecure client to a PSK server: %v, want ErrAuth", err)
		}
		noSession(t, l)
	})
	t.Run("psk client to insecure server", func(t *testing.T) {
		l := listen(t, ServerConfig{Insecure: true})
		_, err := Dial(testCtx(t), l.Addr().String(), ClientConfig{PSK: psk})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("PSK client to an insecure server: %v, want ErrAuth", err)
		}
		noSession(t, l)
	})
}

// fakeServer accepts one connection, reads the HELLO and answers with
// answer; for testing the client's checks of the server.
func fakeServer(t *testing.T, answer func(c *shake, h hello, hp []byte)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		c := newShake(nc)
		f, err := c.recv(false, TypeHello)
		if err != nil {
			return
		}
		h, _ := parseHello(f.Payload)
		answer(c, h, f.Payload)
		c.nc.SetReadDeadline(time.Now().Add(testTimeout))
		c.fr.read() // until the client hangs up
	}()
	return ln.Addr().String()
}

func TestImpostorServer(t *testing.T) {
	t.Parallel()
	ok := helloOK{version: Version, mode: AuthPSK, keepAlive: 5000, credit: DefaultCredit, maxCalls: 1}
	for _, tc := range []struct {
		name   string
		answer func(c *shake, h hello, hp []byte)
		want   string
	}{
		{"skips the challenge", func(c *shake, h hello, hp []byte) {
			c.send(Frame{Type: TypeHelloOK, Payload: ok.marshal()})
		}, "instead of the PSK challenge"},
		{"cannot prove the key", func(c *shake, h hello, hp []byte) {
			c.send(Frame{Type: TypeAuth, Payload: make([]byte, 32)})
			c.fr.read()
			c.send(Frame{Type: TypeHelloOK, Payload: ok.marshal()})
		}, "server's PSK proof does not match"},
		{"replays a proof for another nonce", func(c *shake, h hello, hp []byte) {
			var ns [32]byte
			c.send(Frame{Type: TypeAuth, Payload: ns[:]})
			c.fr.read()
			other := h
			other.nonce[0] ^= 1
			bad := ok
			b := bad.marshal()
			p := proof(psk, labelServer, transcript(ns, other.marshal()), okSigned(b))
			copy(b[okOffProof:], p[:])
			c.send(Frame{Type: TypeHelloOK, Payload: b})
		}, "server's PSK proof does not match"},
		{"answers insecure", func(c *shake, h hello, hp []byte) {
			plain := ok
			plain.mode = AuthInsecure
			c.send(Frame{Type: TypeHelloOK, Payload: plain.marshal()})
		}, "instead of the PSK challenge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, tc.answer)
			_, err := Dial(testCtx(t), addr, ClientConfig{PSK: psk, Streams: 1})
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Dial: %v, want ErrAuth: %s", err, tc.want)
			}
		})
	}
	// A server proving the key is accepted (the fake is right).
	addr := fakeServer(t, func(c *shake, h hello, hp []byte) {
		var ns [32]byte
		rand.Read(ns[:])
		c.send(Frame{Type: TypeAuth, Payload: ns[:]})
		c.fr.read()
		b := ok.marshal()
		p := proof(psk, labelServer, transcript(ns, hp), okSigned(b))
		copy(b[okOffProof:], p[:])
		c.send(Frame{Type: TypeHelloOK, Payload: b})
		// From here on the fake speaks sealed records, as a server does.
		c2s, s2c, _ := streamKeys(psk, transcript(ns, hp))
		rc, _ := newRecordConn(c.nc, c2s, s2c)
		c.nc, c.fr = rc, newFrameReader(rc, 0)
	})
	c, err := Dial(testCtx(t), addr, ClientConfig{PSK: psk, Streams: 1})
	if err != nil {
		t.Fatalf("Dial to a server that proves the key: %v", err)
	}
	c.Close()
}

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf certificate; returns it and its PEM cert and key.
func (ca *testCA) issue(t testing.TB, name string, server bool) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM, keyPEM
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "logship test CA")
	serverCert, _, _ := ca.issue(t, "server", true)
	clientCert, _, _ := ca.issue(t, "client", false)
	scfg := ServerConfig{TLS: ServerTLS(serverCert, ca.pool)}

	t.Run("good", func(t *testing.T) {
		c, s := pair(t, scfg, ClientConfig{TLS: ClientTLS(clientCert, ca.pool, ""), Streams: 4, Compress: true})
		if s.Auth() != AuthTLS {
			t.Fatalf("auth mode %v", s.Auth())
		}
		for _, st := range s.streams {
			cs := st.c.nc.(*tls.Conn).ConnectionState()
			if cs.Version != tls.VersionTLS13 || len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != "client" {
				t.Fatalf("stream %d: TLS version %x, peer certificates %d", st.index, cs.Version, len(cs.PeerCertificates))
			}
		}
		roundTrip(t, c, s)
	})
	t.Run("unknown client certificate", func(t *testing.T) {
		other := newCA(t, "someone else's CA")
		stranger, _, _ := other.issue(t, "stranger", false)
		ref := make(refusals, 8)
		cfg := scfg
		cfg.OnRefuse = ref.hook
		l := listen(t, cfg)
		// Go's client withholds a certificate that the server's CA list
		// does not name; force it out so that the server must verify it.
		ctls := ClientTLS(stranger, ca.pool, "")
		ctls.Certificates = nil
		ctls.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil }
		_, err := Dial(testCtx(t), l.Addr().String(), ClientConfig{TLS: ctls, Streams: 2})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("Dial with an unknown certificate: %v, want ErrAuth", err)
		}
		// The stream whose certificate the server checked first is refused
		// for it; the other stream's handshake may end first with the
		// client's reset (the client gave up once the first was refused).
		// Each refusal is an authentication failure.
		var ue x509.UnknownAuthorityError
		for found := false; !found; {
			err := ref.wait(t)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("server refused with %v, want ErrAuth", err)
			}
			found = errors.As(err, &ue)
		}
		noSession(t, l)
	})
	t.Run("untrusted server", func(t *testing.T) {
		l := listen(t, scfg)
		other := newCA(t, "client trusts only this")
		_, err := Dial(testCtx(t), l.Addr().String(), ClientConfig{TLS: ClientTLS(clientCert, other.pool, "")})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("Dial to an untrusted server: %v, want ErrAuth", err)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		l := listen(t, scfg)
		_, err := Dial(testCtx(t), l.Addr().String(), ClientConfig{TLS: &tls.Config{RootCAs: ca.pool}})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("Dial without a client certificate: %v, want ErrAuth", err)
		}
	})
	t.Run("tls client to insecure server", func(t *testing.T) {
		l := listen(t, ServerConfig{Insecure: true})
		if _, err := Dial(testCtx(t), l.Addr().String(), ClientConfig{TLS: ClientTLS(clientCert, ca.pool, "")}); err == nil {
			t.Fatal("a TLS client talked to a plaintext server")
		}
		noSession(t, l)
	})
	t.Run("server without client CAs", func(t *testing.T) {
		_, err := Listen("127.0.0.1:0", ServerConfig{TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}}})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("Listen: %v, want ErrAuth", err)
		}
	})
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := newCA(t, "files CA")
	_, scert, skey := ca.issue(t, "server", true)
	_, ccert, ckey := ca.issue(t, "client", false)
	caFile := write("ca.pem", ca.pem)
	stls, err := LoadServerTLS(write("s.pem", scert), write("s.key", skey), caFile)
	if err != nil {
		t.Fatal(err)
	}
	ctls, err := LoadClientTLS(write("c.pem", ccert), write("c.key", ckey), caFile)
	if err != nil {
		t.Fatal(err)
	}
	c, s := pair(t, ServerConfig{TLS: stls}, ClientConfig{TLS: ctls})
	roundTrip(t, c, s)

	if _, err := LoadServerTLS(filepath.Join(dir, "s.pem"), filepath.Join(dir, "s.key"), write("empty.pem", nil)); err == nil {
		t.Error("LoadServerTLS accepted a CA file without certificates")
	}
	key, err := LoadPSK(write("psk", []byte("  "+string(psk)+"\n")))
	if err != nil || string(key) != string(psk) {
		t.Fatalf("LoadPSK: %q, %v", key, err)
	}
	if _, err := LoadPSK(write("short", []byte("abc\n"))); err == nil {
		t.Error("LoadPSK accepted a 3-byte key")
	}
}

func TestAssembly(t *testing.T) {
	t.Parallel()
	t.Run("half session times out", func(t *testing.T) {
		ref := make(refusals, 8)
		l := listen(t, ServerConfig{Assemble: 200 * time.Millisecond, OnRefuse: ref.hook})
		var id [16]byte
		id[0] = 1
		c := rawStream(t, l, id, 0, 2, 5*time.Second, "half")
		re := readError(t, c)
		if re.Code != CodeTimeout || !strings.Contains(re.Msg, "1 of 2 streams") {
			t.Fatalf("ERROR %v %q, want TIMEOUT for 1 of 2 streams", re.Code, re.Msg)
		}
		if err := ref.wait(t); !errors.Is(err, ErrTimeout) {
			t.Fatalf("refusal %v, want ErrTimeout", err)
		}
		noSession(t, l)
	})
	t.Run("streams in any order", func(t *testing.T) {
		l := listen(t, ServerConfig{})
		var id [16]byte
		id[0] = 2
		var conns []*conn
		for _, i := range []int{2, 0, 3, 1} {
			conns = append(conns, rawStream(t, l, id, i, 4, 5*time.Second, "order"))
		}
		s := accept(t, l)
		if s.Streams() != 4 || s.Task() != "order" {
			t.Fatalf("session of %d streams for %q", s.Streams(), s.Task())
		}
		for _, c := range conns {
			c.nc.Close() // an orderly Close waits for the peer to hang up
		}
	})
	// Two streams of one session that cannot both join it. The handshake
	// ends before the server joins a stream to its session, so either may
	// be the first: the later one is refused as PROTOCOL, the other waits
	// for the rest of its session and times out.
	for _, tc := range []struct {
		name         string
		id           byte
		index, tasks [2]int
		want         []string // in the PROTOCOL message
	}{
		{"stream twice", 3, [2]int{0, 0}, [2]int{0, 0}, []string{"stream 0 of session 03000000 arrived twice"}},
		{"streams disagree", 4, [2]int{0, 1}, [2]int{0, 1}, []string{`"a"`, `"b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, ServerConfig{Assemble: 200 * time.Millisecond})
			var id [16]byte
			id[0] = tc.id
			codes := map[Code]int{}
			var conns []*conn
			for i := range 2 {
				conns = append(conns, rawStream(t, l, id, tc.index[i], 2, 5*time.Second, []string{"a", "b"}[tc.tasks[i]]))
			}
			for _, c := range conns {
				re := readError(t, c)
				codes[re.Code]++
				for _, w := range tc.want {
					if re.Code == CodeProtocol && !strings.Contains(re.Msg, w) {
						t.Errorf("PROTOCOL %q lacks %s", re.Msg, w)
					}
				}
			}
			if codes[CodeProtocol] != 1 || codes[CodeTimeout] != 1 {
				t.Fatalf("errors by code %v, want one PROTOCOL and one TIMEOUT", codes)
			}
		})
	}
	t.Run("version", func(t *testing.T) {
		l := listen(t, ServerConfig{})
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		c := newConn(nc, 0)
		// A client of protocol version 1 (before sealed PSK records).
		h := hello{version: 1, mode: AuthInsecure, count: 1, keepAlive: 1000}
		if err := c.send(Frame{Type: TypeHello, Payload: h.marshal()}); err != nil {
			t.Fatal(err)
		}
		_, err = c.recv()
		var re *RemoteError
		if !errors.Is(err, ErrVersion) || !errors.As(err, &re) || !strings.Contains(re.Msg, "version 1, this server 2") {
			t.Fatalf("server answered %v, want a VERSION error naming both versions", err)
		}
	})
	t.Run("listener close", func(t *testing.T) {
		l, err := Listen("127.0.0.1:0", ServerConfig{Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		var id [16]byte
		c := rawStream(t, l, id, 0, 2, 5*time.Second, "")
		for deadline := time.Now().Add(testTimeout); ; time.Sleep(time.Millisecond) {
			l.mu.Lock()
			n := len(l.pending)
			l.mu.Unlock()
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the stream never joined a pending session")
			}
		}
		l.Close()
		if re := readError(t, c); re.Code != CodeBusy {
			t.Fatalf("pending stream got %v %q at listener close, want BUSY", re.Code, re.Msg)
		}
		if _, err := l.Accept(testCtx(t)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	})
}
