package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/source"
)

func TestShipUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, _, _ := writeJournal(t, dir, fixtures.DefaultWorkload(1, 512))
	base := []string{"ship", j, "--to", "127.0.0.1:1", "--task", "t"}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ship", "--help"}, 0, "--from-mark"},
		{[]string{"ship"}, 2, "want one JOURNAL"},
		{[]string{"ship", j}, 2, "--to and --task are required"},
		{base, 2, "choose one authentication"},
		{append(base, "--insecure", "--psk-file", "x"), 2, "choose one authentication"},
		{append(base, "--tls-cert", "c"), 2, "TLS needs"},
		{append(base, "--insecure", "--streams", "0"), 2, "--streams 0"},
		{append(base, "--insecure", "--streams", "65"), 2, "--streams 65"},
		{append(base, "--insecure", "--compress", "lz4"), 2, "--compress"},
		{append(base, "--insecure", "--bwlimit", "fast"), 2, "--bwlimit"},
		{append(base, "--insecure", "--size", "huge"), 2, "--size"},
		{append(base, "--insecure", "--dm-name", "lw"), 2, "--dm-name goes with --follow"},
		{append(base, "--insecure", "--follow", "--tick", "1ms"), 2, "--tick"},
		{append(base, "--insecure", "--progress", "maybe"), 2, "--progress"},
		{append(base, "--insecure", "--window-entries", "0"), 2, "--window-entries"},
		{[]string{"ship", filepath.Join(dir, "nosuch"), "--to", "127.0.0.1:1", "--task", "t", "--insecure"}, 3, "nosuch"},
		{[]string{"ship", "/etc/passwd", "--to", "127.0.0.1:1", "--task", "t", "--insecure"}, 3, "not a dm-log-writes journal"},
		{append(base, "--to", "192.0.2.1:7070", "--insecure"), 3, "insecure"},
		{[]string{"mark", "--help"}, 0, "--dm-name"},
		{[]string{"mark", "x"}, 2, "--dm-name is required"},
		{[]string{"mark", "--dm-name", "lw"}, 2, "want one LABEL"},
		{[]string{"mark", "--dm-name", "logship-no-such-device", "x"}, 3, "logship-no-such-device"},
	} {
		r := logship(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("logship %q: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// shipJournal is a journal of about 24 MiB over a 32 MiB device, and its
// sequential replay onto zeros.
func shipJournal(t *testing.T, dir string, seed uint64) (path string, j, img []byte) {
	t.Helper()
	wl := fixtures.DefaultWorkload(seed, 512)
	wl.Entries, wl.DeviceSize, wl.MaxWriteSectors = 3000, 32<<20, 32
	return writeJournal(t, dir, wl)
}

// imageAfterStop stops the server in order (so the image has caught up
// with the staging log) and compares its image of task with want.
func imageAfterStop(t *testing.T, p *serveProc, task string, want []byte) {
	t.Helper()
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM", err)
	}
	serveSameImage(t, "image", filepath.Join(p.dir, task, "image"), want)
}

// shipProc is a running `logship ship`.
type shipProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer

	stderr lineLog

	mu      sync.Mutex
	durable int64         // last "durable to entry N" of the progress
	moved   chan struct{} // closed and replaced when durable moves
	done    chan struct{}
	err     error
}

func startShip(t *testing.T, args ...string) *shipProc {
	t.Helper()
	p := &shipProc{cmd: exec.Command(logshipBin, append([]string{"ship", "--progress", "always"}, args...)...),
		moved: make(chan struct{}), done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	pr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Split(splitCRLF)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.add(line)
			p.mu.Lock()
			if _, rest, ok := strings.Cut(line, "durable to entry "); ok {
				n, _, _ := strings.Cut(rest, ",")
				if v, err := strconv.ParseInt(n, 10, 64); err == nil && v != p.durable {
					p.durable = v
					close(p.moved)
					p.moved = make(chan struct{})
				}
			}
			p.mu.Unlock()
		}
		io.Copy(io.Discard, pr)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("logship ship stderr:\n%s", p.log())
		}
	})
	return p
}

// splitCRLF splits at \r and \n: the progress line is redrawn with \r.
func splitCRLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func (p *shipProc) log() string { return p.stderr.String() }

// waitDurable waits until the progress says at least n entries are durable.
func (p *shipProc) waitDurable(t *testing.T, n int64) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		p.mu.Lock()
		d, ch := p.durable, p.moved
		p.mu.Unlock()
		if d >= n {
			return
		}
		select {
		case <-ch:
		case <-p.done:
			t.Fatalf("ship exited (%v) before %d entries were durable:\n%s", p.err, n, p.log())
		case <-timeout:
			t.Fatalf("ship: %d entries not durable after a minute:\n%s", n, p.log())
		}
	}
}

// wait waits for the exit and fails the test unless it succeeded.
func (p *shipProc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("ship did not finish:\n%s", p.log())
	}
	if p.err != nil {
		t.Fatalf("ship: %v\n%s", p.err, p.log())
	}
}

func TestShip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, j, img := shipJournal(t, dir, 2)
	p := startServe(t, filepath.Join(dir, "srv"))
	r := logship(t, "ship", path, "--to", p.addr, "--task", "vol", "--insecure", "--streams", "3", "--json")
	if r.code != 0 {
		t.Fatalf("ship: exit %d\n%s", r.code, r.stderr)
	}
	var s source.Summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("--json output %q: %v", r.stdout, err)
	}
	jr, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if s.State != "done" || s.Entries != jr.Len() || s.DurableEntry != jr.Len() || s.Streams != 3 || s.Windows == 0 ||
		s.ImageSize != int64(len(img)) || !strings.HasPrefix(s.Journal, "xxh64:") {
		t.Fatalf("summary %+v; want all %d entries durable, a %d-byte image", s, jr.Len(), len(img))
	}
	// Again: nothing to send; the summary says so in words.
	r = logship(t, "ship", path, "--to", p.addr, "--task", "vol", "--insecure", "--compress", "zstd")
	if r.code != 0 || !strings.Contains(r.stdout, "ship done: 0 entries in 0 windows") ||
		!strings.Contains(r.stdout, fmt.Sprintf("durable up to entry %d", jr.Len())) {
		t.Fatalf("second ship: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	// A task that does not exist and no way to size it: refused, no retry.
	r = logship(t, "ship", path, "--to", p.addr, "--task", "other", "--insecure", "--follow", "--retry-for", "1h")
	if r.code != 3 || !strings.Contains(r.stderr, "--size") {
		t.Fatalf("follow of a missing task without --size: exit %d, stderr %q", r.code, r.stderr)
	}
	imageAfterStop(t, p, "vol", img)
}

// TestShipKillServe: the server dies (SIGKILL) in the middle of a ship and
// comes back on the same address; ship reconnects by itself and finishes.
func TestShipKillServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, j, img := shipJournal(t, dir, 3)
	srvDir := filepath.Join(dir, "srv")
	p := startServe(t, srvDir)
	s := startShip(t, path, "--to", p.addr, "--task", "vol", "--insecure", "--bwlimit", "8MiB", "--window-entries", "20")
	s.waitDurable(t, 300)
	before := strings.Count(s.log(), "cannot connect to")
	p.cmd.Process.Kill()
	<-p.done
	// ship fails to reconnect to the dead server before it comes back.
	s.stderr.waitCount(t, "cannot connect to", before+1, s.done)
	p2 := startServe(t, srvDir, "--listen", p.addr)
	s.wait(t)
	jr, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if !strings.Contains(s.stdout.String(), fmt.Sprintf("durable up to entry %d", jr.Len())) ||
		!strings.Contains(s.stdout.String(), "reconnects") || !strings.Contains(s.log(), "reconnecting") {
		t.Fatalf("stdout %q\nstderr:\n%s", s.stdout.String(), s.log())
	}
	imageAfterStop(t, p2, "vol", img)
}

// TestShipKill: ship dies (SIGKILL) in the middle; a new ship resumes
// from the server's durable position and the image is right.
func TestShipKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, j, img := shipJournal(t, dir, 4)
	p := startServe(t, filepath.Join(dir, "srv"))
	s := startShip(t, path, "--to", p.addr, "--task", "vol", "--insecure", "--bwlimit", "8MiB", "--window-entries", "20")
	s.waitDurable(t, 500)
	s.cmd.Process.Kill()
	<-s.done
	s2 := startShip(t, path, "--to", p.addr, "--task", "vol", "--insecure", "--json")
	s2.wait(t)
	var sum source.Summary
	if err := json.Unmarshal(s2.stdout.Bytes(), &sum); err != nil {
		t.Fatalf("--json output %q: %v", s2.stdout.String(), err)
	}
	jr, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if sum.DurableEntry != jr.Len() || sum.Entries == 0 || sum.Entries > jr.Len()-500 {
		t.Fatalf("resumed ship %+v: want the entries after the first 500 (of %d) shipped", sum, jr.Len())
	}
	imageAfterStop(t, p, "vol", img)
}

// TestShipCutStreams: the connections are cut in the middle of windows,
// three times; ship reconnects and the image is right.
func TestShipCutStreams(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, _, img := shipJournal(t, dir, 5)
	p := startServe(t, filepath.Join(dir, "srv"))
	px := fixtures.NewCutProxy(t, p.addr)
	px.CutEvery(5<<20, 3)
	r := logship(t, "ship", path, "--to", px.Addr(), "--task", "vol", "--insecure", "--window-entries", "30")
	if r.code != 0 {
		t.Fatalf("ship: exit %d\n%s", r.code, r.stderr)
	}
	if cuts := px.Cuts(); cuts != 3 || !strings.Contains(r.stdout, "3 reconnects") {
		t.Fatalf("%d cuts; stdout %q\n%s", cuts, r.stdout, r.stderr)
	}
	imageAfterStop(t, p, "vol", img)
}

// TestShipFollow: ship --follow tails a file that grows the way the kernel
// writes a log (the superblock rewritten only after FUA and MARK entries),
// and ends when the end mark arrives.
func TestShipFollow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wl := fixtures.DefaultWorkload(6, 4096)
	wl.Entries, wl.DeviceSize, wl.MaxWriteSectors = 2000, 16<<20, 8
	log := filepath.Join(dir, "log")
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, filepath.Join(dir, "srv"))
	s := startShip(t, log, "--to", p.addr, "--task", "vol", "--insecure", "--follow", "--size", "16MiB")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := fixtures.WriteLikeKernel(ctx, log, wl, "", 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	final, _ := os.ReadFile(log)
	jr, err := journal.NewReader(bytes.NewReader(final), int64(len(final)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.stdout.String(), fmt.Sprintf("durable up to entry %d", jr.Len())) {
		t.Fatalf("stdout %q, want all %d entries (end mark included) durable", s.stdout.String(), jr.Len())
	}
	img := make([]byte, wl.DeviceSize)
	if err := fixtures.ReplaySequential(final, img, -1); err != nil {
		t.Fatal(err)
	}
	imageAfterStop(t, p, "vol", img)
}

// BenchmarkShipProcess runs the real binaries, `logship serve` (group
// commit) and `logship ship`, over loopback on synthetic journals of 256
// MiB and 1 GiB (fixtures/mkjournal: random writes up to 1 MiB over 2 GiB,
// 4096-byte sectors) with 1, 2, 4 and 8 streams, and reports the peak RSS
// of both processes (getrusage ru_maxrss of the exited process): memory
// must not grow with the journal's size.
func BenchmarkShipProcess(b *testing.B) {
	dir := b.TempDir()
	mk := filepath.Join(dir, "mkjournal")
	if out, err := exec.Command("go", "build", "-o", mk, "../../fixtures/mkjournal").CombinedOutput(); err != nil {
		b.Fatalf("building mkjournal: %v\n%s", err, out)
	}
	for _, size := range []string{"256MiB", "1GiB"} {
		j := filepath.Join(dir, size+".log")
		if out, err := exec.Command(mk, "-o", j, "-size", size, "-device", "2GiB").CombinedOutput(); err != nil {
			b.Fatalf("mkjournal: %v\n%s", err, out)
		}
		fi, _ := os.Stat(j)
		for _, streams := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("journal=%s/streams=%d", size, streams), func(b *testing.B) {
				srvDir := filepath.Join(b.TempDir(), "srv")
				serve := exec.Command(logshipBin, "serve", "--listen", "127.0.0.1:0", "--dir", srvDir, "--insecure")
				pr, _ := serve.StderrPipe()
				if err := serve.Start(); err != nil {
					b.Fatal(err)
				}
				addr := make(chan string, 1)
				go func() {
					sc := bufio.NewScanner(pr)
					for sc.Scan() {
						if _, a, ok := strings.Cut(sc.Text(), "listening on "); ok {
							a, _, _ = strings.Cut(a, " ")
							addr <- a
						}
					}
				}()
				var a string
				select {
				case a = <-addr:
				case <-time.After(30 * time.Second):
					serve.Process.Kill()
					b.Fatal("serve did not listen")
				}
				b.SetBytes(fi.Size())
				var shipRSS int64
				i := 0
				for b.Loop() {
					ship := exec.Command(logshipBin, "ship", j, "--to", a, "--task", fmt.Sprintf("t%d", i), "--insecure",
						"--streams", fmt.Sprint(streams), "--size", "2GiB")
					i++
					if out, err := ship.CombinedOutput(); err != nil {
						serve.Process.Kill()
						b.Fatalf("ship: %v\n%s", err, out)
					}
					shipRSS = max(shipRSS, ship.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
				}
				serve.Process.Signal(syscall.SIGTERM)
				serve.Wait()
				serveRSS := serve.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
				b.ReportMetric(float64(shipRSS)/1024, "ship-maxrss-MiB")
				b.ReportMetric(float64(serveRSS)/1024, "serve-maxrss-MiB")
			})
		}
	}
}

// TestShipAuth: ship with --psk-file and with --tls-cert/--tls-key/--ca
// against a serve that asks for them; wrong credentials fail at once
// (no retrying) with exit 3.
func TestShipAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, _, img := writeJournal(t, dir, fixtures.DefaultWorkload(7, 512))
	keyFile := filepath.Join(dir, "psk")
	badKey := filepath.Join(dir, "psk-bad")
	os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600)
	os.WriteFile(badKey, []byte("0123456789abcdef0123456789abcdeX\n"), 0o600)
	ca, issue := serveCA(t, dir, "good")
	srvCert, srvKey := issue("server", true)
	cliCert, cliKeyF := issue("client", false)
	_, issueRogue := serveCA(t, dir, "rogue")
	rogueCert, rogueKey := issueRogue("intruder", false)
	for _, tc := range []struct {
		name      string
		serve     []string
		good, bad []string
	}{
		{"psk", []string{"--psk-file", keyFile}, []string{"--psk-file", keyFile}, []string{"--psk-file", badKey}},
		{"tls", []string{"--tls-cert", srvCert, "--tls-key", srvKey, "--client-ca", ca},
			[]string{"--tls-cert", cliCert, "--tls-key", cliKeyF, "--ca", ca},
			[]string{"--tls-cert", rogueCert, "--tls-key", rogueKey, "--ca", ca}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startServeAuth(t, t.TempDir(), tc.serve)
			args := []string{"ship", path, "--to", p.addr, "--task", "vol", "--retry-for", "1h"}
			start := time.Now()
			r := logship(t, append(args, tc.bad...)...)
			if r.code != 3 || !strings.Contains(strings.ToLower(r.stderr), "auth") || time.Since(start) > 20*time.Second {
				t.Fatalf("wrong credentials: exit %d after %v, stderr %q", r.code, time.Since(start), r.stderr)
			}
			r = logship(t, append(args, tc.good...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "ship done:") {
				t.Fatalf("right credentials: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			imageAfterStop(t, p, "vol", img)
		})
	}
}

// TestShipFromMark: with --from-mark the entries up to the mark reach the
// real server as no-ops; the image is what the entries after the mark make
// of the image the task had (here: zeros).
func TestShipFromMark(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wl := fixtures.DefaultWorkload(8, 512)
	wl.Entries = 1500
	path, j, _ := writeJournal(t, dir, wl)
	jr, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	m, err := jr.SeekMark("m5")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, wl.DeviceSize)
	for e, err := range jr.All() {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e.IsDiscard():
			clear(want[e.Start():e.End()])
		case e.IsWrite():
			jr.ReadPayload(e, want[e.Start():e.End()])
		}
	}
	p := startServe(t, filepath.Join(dir, "srv"))
	r := logship(t, "ship", path, "--to", p.addr, "--task", "vol", "--insecure", "--from-mark", "m5", "--size", fmt.Sprint(wl.DeviceSize), "--json")
	var s source.Summary
	if err := json.Unmarshal([]byte(r.stdout), &s); r.code != 0 || err != nil {
		t.Fatalf("ship: exit %d, stdout %q (%v)\n%s", r.code, r.stdout, err, r.stderr)
	}
	if s.Skipped != m.Index+1 || s.Entries != jr.Len()-m.Index-1 || s.DurableEntry != jr.Len() {
		t.Fatalf("summary %+v: want %d skipped, %d shipped", s, m.Index+1, jr.Len()-m.Index-1)
	}
	r = logship(t, "ship", path, "--to", p.addr, "--task", "vol2", "--insecure", "--from-mark", "nosuch", "--size", "8MiB")
	if r.code != 3 || !strings.Contains(r.stderr, `"nosuch"`) {
		t.Fatalf("unknown mark: exit %d, stderr %q", r.code, r.stderr)
	}
	imageAfterStop(t, p, "vol", want)
}

// TestShipFollowStop: ship --follow of a log that does not end is stopped
// with SIGINT once everything is durable; it exits 0 and says so.
func TestShipFollowStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, j, img := shipJournal(t, dir, 9)
	p := startServe(t, filepath.Join(dir, "srv"))
	s := startShip(t, path, "--to", p.addr, "--task", "vol", "--insecure", "--follow", "--size", "32MiB")
	jr, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	s.waitDurable(t, jr.Len())
	s.cmd.Process.Signal(os.Interrupt)
	s.wait(t)
	if !strings.Contains(s.stdout.String(), fmt.Sprintf("ship stopped: %d entries", jr.Len())) {
		t.Fatalf("stdout %q", s.stdout.String())
	}
	imageAfterStop(t, p, "vol", img)
}
