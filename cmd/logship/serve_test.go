package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/replica"
)

// serveProc is a running `logship serve`.
type serveProc struct {
	cmd  *exec.Cmd
	addr string
	dir  string

	stderr lineLog
	done   chan struct{} // closed when the process has exited
	err    error         // its exit status
}

// lineLog is a child's stderr, line by line, that a test can wait on.
type lineLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	grew chan struct{} // closed and replaced at every line
}

func (l *lineLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.WriteString(line + "\n")
	if l.grew != nil {
		close(l.grew)
		l.grew = nil
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitCount waits, for up to a minute, until the log holds at least n
// occurrences of s. done is closed once the process exited and its last
// line was added.
func (l *lineLog) waitCount(t *testing.T, s string, n int, done <-chan struct{}) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		l.mu.Lock()
		if l.grew == nil {
			l.grew = make(chan struct{})
		}
		got, grew := strings.Count(l.buf.String(), s), l.grew
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-grew:
		case <-done:
			if strings.Count(l.String(), s) < n {
				t.Fatalf("the process exited with %d of %q in its log, want %d:\n%s", got, s, n, l.String())
			}
			return
		case <-timeout:
			t.Fatalf("%d of %q in the log after a minute, want %d:\n%s", got, s, n, l.String())
		}
	}
}

// startServe runs `logship serve --listen 127.0.0.1:0 --dir dir --insecure
// extra...` and waits until it listens.
func startServe(t *testing.T, dir string, extra ...string) *serveProc {
	t.Helper()
	return startServeAuth(t, dir, []string{"--insecure"}, extra...)
}

// startServeAuth is startServe with other authentication flags.
func startServeAuth(t *testing.T, dir string, auth []string, extra ...string) *serveProc {
	t.Helper()
	args := append(append([]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir}, auth...), extra...)
	p := &serveProc{cmd: exec.Command(logshipBin, args...), dir: dir, done: make(chan struct{})}
	pr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.add(line)
			if _, a, ok := strings.Cut(line, "listening on "); ok {
				a, _, _ = strings.Cut(a, " ")
				addr <- a
			}
		}
		io.Copy(io.Discard, pr)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("logship serve stderr:\n%s", p.log())
		}
	})
	select {
	case p.addr = <-addr:
	case <-p.done:
		t.Fatalf("logship serve exited: %v\n%s", p.err, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("logship serve did not listen:\n%s", p.log())
	}
	return p
}

func (p *serveProc) log() string { return p.stderr.String() }

// stop sends sig and waits for the exit.
func (p *serveProc) stop(t *testing.T, sig os.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
		t.Fatalf("logship serve did not exit on %v", sig)
		return nil
	}
}

// serveClient is a source's session with a `logship serve`.
type serveClient struct {
	s *parallel.Session
	j []byte
	o control.Open
}

func dialServe(t *testing.T, addr, task string, j []byte, o control.Open) (*serveClient, control.Task) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := parallel.Dial(ctx, addr, parallel.ClientConfig{Task: task, Streams: 4, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	resp, err := s.Call(ctx, control.Marshal(control.Request{Op: control.OpOpen, Open: &o}))
	if err != nil {
		t.Fatal(err)
	}
	var tk control.Task
	if err := control.Unmarshal(resp, &tk); err != nil {
		t.Fatal(err)
	}
	return &serveClient{s: s, j: j, o: o}, tk
}

// servedWindow is a window sent: its sequence and last entry.
type servedWindow struct {
	seq  uint64
	last int64
}

// ship sends the journal's windows from pos; after is called after each.
func (c *serveClient) ship(ctx context.Context, pos control.Position, after func(servedWindow) error) ([]servedWindow, error) {
	r, err := journal.NewReader(bytes.NewReader(c.j), int64(len(c.j)))
	if err != nil {
		return nil, err
	}
	if err := r.SeekEntry(pos.NextEntry); err != nil {
		return nil, err
	}
	var sent []servedWindow
	seq := pos.NextWindow
	for w, err := range barrier.Split(r, barrier.Limits{MaxEntries: 8}) {
		if err != nil {
			return sent, err
		}
		for _, e := range w.Entries {
			data := make([]byte, e.PayloadLen())
			if err := r.ReadPayload(e, data); err != nil {
				return sent, err
			}
			if err := c.s.SendFrame(ctx, parallel.Frame{Window: seq, Entry: uint64(e.Index), Payload: control.AppendEntry(nil, e, data)}); err != nil {
				return sent, err
			}
		}
		if err := c.s.EndWindow(ctx, seq); err != nil {
			return sent, err
		}
		sw := servedWindow{seq: seq, last: w.Last()}
		sent = append(sent, sw)
		if after != nil {
			if err := after(sw); err != nil {
				return sent, err
			}
		}
		seq++
	}
	return sent, nil
}

// serveReference is the journal replayed onto zeros up to entry next
// (excluded); all of it when next < 0.
func serveReference(t *testing.T, j []byte, size, next int64) []byte {
	t.Helper()
	img := make([]byte, size)
	if next != 0 {
		if err := fixtures.ReplaySequential(j, img, max(next-1, -1)); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func serveSameImage(t *testing.T, what, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %s differs from the reference at byte %d", what, path, firstDiff(got, want))
	}
}

func serveState(t *testing.T, dir, task string) replica.State {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, task, "state"))
	if err != nil {
		t.Fatal(err)
	}
	var st replica.State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestServeUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	openKey := filepath.Join(dir, "open-psk")
	if err := os.WriteFile(openKey, []byte("0123456789abcdef0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--help"}, 0, "--sync-per-window"},
		{[]string{"serve"}, 2, "--listen and --dir are required"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir}, 2, "choose one authentication"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir, "--insecure", "--psk-file", "x"}, 2, "choose one authentication"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir, "--tls-cert", "c"}, 2, "TLS needs"},
		{[]string{"serve", "--listen", "nonsense", "--dir", dir, "--insecure"}, 2, "--listen"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir, "--insecure", "--credit", "1KiB"}, 2, "--credit"},
		{[]string{"serve", "--listen", "0.0.0.0:0", "--dir", dir, "--insecure"}, 3, "loopback"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir, "--psk-file", filepath.Join(dir, "nosuch")}, 3, "nosuch"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir, "--psk-file", openKey}, 3, "chmod 600 " + openKey},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir, "--insecure", "--keepalive", "2m"}, 2, "--keepalive"},
	} {
		r := logship(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("logship %q: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// serveJournal is the journal the serve tests ship: 1500 entries over 8 MiB.
func serveJournal(t *testing.T, seed uint64) ([]byte, control.Open) {
	t.Helper()
	wl := fixtures.DefaultWorkload(seed, 512)
	wl.Entries, wl.DeviceSize, wl.MaxWriteSectors = 1500, 8<<20, 64
	j, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return j, control.Open{Size: wl.DeviceSize, Journal: "serve-test", SectorSize: 512}
}

// TestServeShip ships a journal to a real `logship serve`, which then
// stops in order on SIGTERM.
func TestServeShip(t *testing.T) {
	t.Parallel()
	for _, mode := range [][]string{nil, {"--sync-per-window"}} {
		t.Run(strings.Join(append([]string{"default"}, mode...), ""), func(t *testing.T) {
			t.Parallel()
			j, o := serveJournal(t, 3)
			dir := t.TempDir()
			p := startServe(t, dir, mode...)
			c, tk := dialServe(t, p.addr, "vol", j, o)
			if !tk.Created {
				t.Fatalf("open: %+v", tk)
			}
			ctx := t.Context()
			sent, err := c.ship(ctx, tk.Durable, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.s.WaitAck(ctx, sent[len(sent)-1].seq); err != nil {
				t.Fatal(err)
			}
			c.s.Close()
			if err := p.stop(t, syscall.SIGTERM); err != nil {
				t.Fatalf("serve exited with %v after SIGTERM", err)
			}
			serveSameImage(t, "image", filepath.Join(dir, "vol", "image"), serveReference(t, j, o.Size, -1))
			if st := serveState(t, dir, "vol"); st.Durable.NextEntry != sent[len(sent)-1].last+1 {
				t.Fatalf("state %+v after the ship", st)
			}
		})
	}
}

// TestServeKill kills `logship serve` with SIGKILL in the middle of a
// ship, restarts it and checks the recovered image: with group commit it
// is the state at a window boundary at or after the last acked window;
// then the ship resumes from the durable position and the image equals a
// local replay.
func TestServeKill(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		flags     []string
		killAfter uint64
		delay     time.Duration // between queueing the last window and the kill
		boundary  bool          // the recovered image is at a window boundary
	}{
		{"group-commit/early", []string{"--checkpoint-every", "1h"}, 5, 0, true},
		{"group-commit/late", []string{"--checkpoint-every", "30ms", "--staging-rotate", "256KiB"}, 120, 0, true},
		{"group-commit/busy", []string{"--checkpoint-every", "1h", "--staging-rotate", "128KiB"}, 30, 3 * time.Millisecond, true},
		{"sync-per-window", []string{"--sync-per-window"}, 60, 3 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j, o := serveJournal(t, 5+tc.killAfter)
			dir := t.TempDir()
			p := startServe(t, dir, tc.flags...)
			c, tk := dialServe(t, p.addr, "vol", j, o)
			ctx := t.Context()
			errKilled := errors.New("killed")
			// Window killAfter is acked, then 15 more go out and the server
			// is killed while it works on them.
			sent, err := c.ship(ctx, tk.Durable, func(w servedWindow) error {
				switch w.seq {
				case tc.killAfter:
					return c.s.WaitAck(ctx, w.seq)
				case tc.killAfter + 15:
					time.Sleep(tc.delay)
					p.cmd.Process.Kill()
					<-p.done
					return errKilled
				}
				return nil
			})
			if !errors.Is(err, errKilled) {
				t.Fatalf("ship: %v; want to kill the server after window %d", err, tc.killAfter)
			}
			acked, _ := c.s.Acked()
			c.s.Close()

			p = startServe(t, dir, tc.flags...)
			st := serveState(t, dir, "vol")
			var ackedLast int64 = -1
			for _, w := range sent {
				if w.seq == acked {
					ackedLast = w.last
				}
			}
			if acked < tc.killAfter || st.Durable.NextWindow <= acked || st.Durable.NextEntry <= ackedLast {
				t.Fatalf("after the restart the state says %+v; window %d (to entry %d) was acked", st.Durable, acked, ackedLast)
			}
			if tc.boundary {
				at := false
				for _, w := range sent {
					at = at || (w.seq+1 == st.Durable.NextWindow && w.last+1 == st.Durable.NextEntry)
				}
				if !at {
					t.Fatalf("recovered to %+v, not the end of a window sent", st.Durable)
				}
				serveSameImage(t, "recovered image", filepath.Join(dir, "vol", "image"), serveReference(t, j, o.Size, st.Durable.NextEntry))
				if !strings.Contains(p.log(), "recovered from the staging log") || !strings.Contains(p.log(), "task=vol") {
					t.Errorf("the restarted server did not recover from the staging log:\n%s", p.log())
				}
			}
			t.Logf("acked window %d; after the restart durable at window %d, entry %d", acked, st.Durable.NextWindow, st.Durable.NextEntry)

			// Resume and finish.
			o.Size = 0
			c, tk = dialServe(t, p.addr, "vol", j, o)
			if tk.Durable != st.Durable {
				t.Fatalf("open after the restart: %+v, the state says %+v", tk.Durable, st.Durable)
			}
			sent, err = c.ship(ctx, tk.Durable, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.s.WaitAck(ctx, sent[len(sent)-1].seq); err != nil {
				t.Fatal(err)
			}
			c.s.Close()
			if err := p.stop(t, syscall.SIGTERM); err != nil {
				t.Fatalf("serve exited with %v", err)
			}
			serveSameImage(t, "final image", filepath.Join(dir, "vol", "image"), serveReference(t, j, 8<<20, -1))
		})
	}
}

// serveCA makes a CA and a certificate signed by it (for 127.0.0.1 when
// server), written as PEM files in dir; it returns the file names.
func serveCA(t *testing.T, dir, name string) (caFile string, issue func(leaf string, server bool) (certFile, keyFile string)) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile = write(name+"-ca.pem", "CERTIFICATE", caDER)
	serial := int64(2)
	return caFile, func(leaf string, server bool) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		serial++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: leaf},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(leaf+".pem", "CERTIFICATE", der), write(leaf+".key", "EC PRIVATE KEY", kder)
	}
}

// TestServeAuth: serve with --psk-file and with TLS client certificates
// accepts the right client and refuses a wrong key or an unknown
// certificate.
func TestServeAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "psk")
	os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600)
	ca, issue := serveCA(t, dir, "good")
	srvCert, srvKey := issue("server", true)
	cliCert, cliKey := issue("client", false)
	_, issueBad := serveCA(t, dir, "rogue")
	badCert, badKey := issueBad("intruder", false)
	clientTLS := func(cert, key string) *tls.Config {
		c, err := parallel.LoadClientTLS(cert, key, ca)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name      string
		auth      []string
		good, bad parallel.ClientConfig
	}{
		{"psk", []string{"--psk-file", keyFile},
			parallel.ClientConfig{PSK: []byte("0123456789abcdef0123456789abcdef")},
			parallel.ClientConfig{PSK: []byte("0123456789abcdef0123456789abcdeX")}},
		{"tls", []string{"--tls-cert", srvCert, "--tls-key", srvKey, "--client-ca", ca},
			parallel.ClientConfig{TLS: clientTLS(cliCert, cliKey)},
			parallel.ClientConfig{TLS: clientTLS(badCert, badKey)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startServeAuth(t, t.TempDir(), tc.auth)
			ctx := t.Context()
			good := tc.good
			good.Task, good.Streams = "vol", 2
			s, err := parallel.Dial(ctx, p.addr, good)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := s.Call(ctx, control.Marshal(control.Request{Op: control.OpOpen, Open: &control.Open{Size: 1 << 20, Journal: "j", SectorSize: 512}}))
			s.Close()
			if err != nil || !strings.Contains(string(resp), `"created":true`) {
				t.Fatalf("open with the right credentials: %s, %v", resp, err)
			}
			bad := tc.bad
			bad.Task, bad.Streams = "vol", 2
			if s, err := parallel.Dial(ctx, p.addr, bad); err == nil {
				_, err = s.Call(ctx, control.Marshal(control.Request{Op: control.OpStatus}))
				s.Close()
				if err == nil {
					t.Fatal("a client with the wrong credentials was served")
				}
			}
			p.stderr.waitCount(t, "refused", 1, p.done)
		})
	}
}

// TestServeRefusalLog: 500 connections refused from their first header
// leave a handful of log lines (a summary per interval, the first refusal
// at once, the rest when the server stops), not one line each.
func TestServeRefusalLog(t *testing.T) {
	t.Parallel()
	start := time.Now()
	p := startServe(t, t.TempDir())
	const n = 500
	garbage := make([]byte, parallel.HeaderSize) // bad magic
	for range n {
		nc, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		nc.Write(garbage)
		io.Copy(io.Discard, nc) // the ERROR, then the server closes
		nc.Close()
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve exited with %v", err)
	}
	// Serve sums refusals up in at most two lines per interval, and one
	// when it stops: a few lines, more only if a loaded machine took
	// intervals to make the connections.
	maxLines := 4 + 2*int(time.Since(start)/parallel.DefaultRefusalInterval)
	re := regexp.MustCompile(`refused (\d+) connections`)
	lines, total := 0, 0
	for _, line := range strings.Split(p.log(), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			k, _ := strconv.Atoi(m[1])
			lines, total = lines+1, total+k
		}
	}
	if total != n || lines > maxLines {
		t.Fatalf("%d log lines report %d refusals, want %d refusals in at most %d lines:\n%s", lines, total, n, maxLines, p.log())
	}
	t.Logf("%d refusals in %d log lines", total, lines)
}
