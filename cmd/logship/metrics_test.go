package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logship/logship/parallel"
)

var metricsAddrRE = regexp.MustCompile(`metrics on http://([^/ ]+)/metrics`)

// metricsAddr waits until log() names the metrics address.
func metricsAddr(t *testing.T, what string, log func() string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := metricsAddrRE.FindStringSubmatch(log()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("%s did not log its metrics address:\n%s", what, log())
	return ""
}

// scrape fetches http://addr/metrics and returns each sample by its name
// and labels as exposed, e.g. `logship_serve_windows_applied_total{task="vol"}`.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out
}

// waitMetric scrapes addr until sample name passes ok, for at most a
// minute, and says whether it did.
func waitMetric(t *testing.T, addr, name string, ok func(float64) bool) bool {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v, found := scrape(t, addr)[name]; found && ok(v) {
			return true
		}
	}
	return false
}

// need fails unless every sample named is there and passes ok.
func need(t *testing.T, what string, m map[string]float64, ok func(float64) bool, names ...string) {
	t.Helper()
	for _, n := range names {
		v, found := m[n]
		if !found {
			var have []string
			for k := range m {
				if strings.HasPrefix(k, "logship_") {
					have = append(have, k)
				}
			}
			t.Fatalf("%s: no sample %s; have %v", what, n, have)
		}
		if !ok(v) {
			t.Fatalf("%s: %s = %v", what, n, v)
		}
	}
}

func positive(v float64) bool { return v > 0 }

// TestMetrics scrapes serve and ship over HTTP while a ship runs: the
// counters move, the histograms fill, the gauges say where things stand,
// and failures are counted by kind.
func TestMetrics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, _, _ := shipJournal(t, dir, 9)
	srvDir := filepath.Join(dir, "srv")
	p := startServe(t, srvDir, "--metrics", "127.0.0.1:0")
	serveM := metricsAddr(t, "serve", p.log)
	s := startShip(t, path, "--to", p.addr, "--task", "vol", "--insecure", "--streams", "3", "--follow",
		"--bwlimit", "4MiB", "--window-entries", "50", "--size", "32MiB", "--metrics", "127.0.0.1:0")
	shipM := metricsAddr(t, "ship", s.log)

	s.waitDurable(t, 200)
	m1 := scrape(t, shipM)
	need(t, "ship", m1, positive, "logship_ship_entries_total", "logship_ship_windows_total", "logship_ship_bytes_total",
		`logship_ship_wire_bytes_total{stream="0"}`, `logship_ship_wire_bytes_total{stream="1"}`, `logship_ship_wire_bytes_total{stream="2"}`,
		"logship_ship_ack_seconds_count", "logship_ship_durable_entry", "logship_ship_log_size_bytes", "go_goroutines")
	// Wait past what m1 saw, not for a fixed count: the progress lines that
	// waitDurable reads come every few seconds, so the first may already be
	// past 1000 entries.
	s.waitDurable(t, max(1000, int64(m1["logship_ship_durable_entry"])+1))
	m2 := scrape(t, shipM)
	for _, n := range []string{"logship_ship_entries_total", "logship_ship_bytes_total", "logship_ship_ack_seconds_count", "logship_ship_durable_entry"} {
		if m2[n] <= m1[n] {
			t.Errorf("ship: %s did not move: %v then %v", n, m1[n], m2[n])
		}
	}
	if m2["logship_ship_read_entry"] < m2["logship_ship_durable_entry"] {
		t.Errorf("ship: read %v < durable %v", m2["logship_ship_read_entry"], m2["logship_ship_durable_entry"])
	}

	// The server's side, once the ship has reported.
	var sm map[string]float64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		sm = scrape(t, serveM)
		if _, ok := sm[`logship_task_lag_bytes{task="vol"}`]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve: no lag metrics after 20s: %v", sm)
		}
	}
	need(t, "serve", sm, positive, `logship_serve_windows_received_total{task="vol"}`, `logship_serve_windows_applied_total{task="vol"}`,
		`logship_serve_entries_applied_total{task="vol"}`, `logship_serve_bytes_applied_total{task="vol"}`,
		`logship_serve_apply_seconds_count{task="vol"}`, `logship_serve_ack_seconds_count{task="vol"}`,
		`logship_serve_stream_bytes_total{direction="in",stream="0"}`, `logship_serve_stream_bytes_total{direction="in",stream="2"}`,
		`logship_task_image_bytes{task="vol"}`, `logship_task_durable_entry{task="vol"}`, `logship_task_session_active{task="vol"}`,
		"logship_serve_sessions")
	need(t, "serve", sm, func(v float64) bool { return v >= 0 }, `logship_task_lag_entries{task="vol"}`, `logship_task_lag_seconds{task="vol"}`)
	// The applier writes windows to the image behind the acks: wait for
	// the count to move rather than for a fixed durable entry.
	if n := `logship_serve_windows_applied_total{task="vol"}`; !waitMetric(t, serveM, n, func(v float64) bool { return v > sm[n] }) {
		t.Errorf("serve: %s did not move from %v in a minute", n, sm[n])
	}

	// Failures by kind: a session that sends a window before opening its
	// task (the server's verdict) ...
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	bad, err := parallel.Dial(ctx, p.addr, parallel.ClientConfig{Task: "bad", Streams: 1, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	bad.EndWindow(ctx, 0)
	<-bad.Done()
	bad.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if scrape(t, serveM)[`logship_serve_errors_total{kind="not_open",task="bad"}`] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve: no not_open error counted:\n%v", scrape(t, serveM))
		}
	}
	// ... and a connection that sends a DATA frame header instead of a
	// HELLO (refused from the header: a protocol refusal).
	raw, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, parallel.HeaderSize)
	hdr[0], hdr[1], hdr[2] = 'L', 'S', byte(parallel.TypeData)
	raw.Write(hdr)
	defer raw.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if scrape(t, serveM)[`logship_serve_refused_total{reason="protocol"}`] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve: no protocol refusal counted:\n%v", scrape(t, serveM))
		}
	}
	// ... and on the ship's side a server that goes away.
	p.cmd.Process.Kill()
	<-p.done
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m := scrape(t, shipM)
		n := 0.0
		for k, v := range m {
			if strings.HasPrefix(k, "logship_ship_errors_total{") {
				n += v
			}
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ship: no error counted after the server died:\n%s", s.log())
		}
	}
	s.cmd.Process.Kill()
	<-s.done
}

func TestMetricsUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// An address that cannot be listened on is a runtime error at start.
	r := logship(t, "serve", "--listen", "127.0.0.1:0", "--dir", dir, "--insecure", "--metrics", "256.0.0.1:1", "--metrics-public")
	if r.code != 3 || !strings.Contains(r.stderr, "--metrics 256.0.0.1:1") {
		t.Fatalf("serve --metrics on a bad address: exit %d, %q", r.code, r.stderr)
	}
	// Task names beyond loopback only when asked for.
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:9300", "[::]:0"} {
		r := logship(t, "serve", "--listen", "127.0.0.1:0", "--dir", dir, "--insecure", "--metrics", addr)
		if r.code != 2 || !strings.Contains(r.stderr, "not a loopback address") || !strings.Contains(r.stderr, "--metrics-public") {
			t.Errorf("serve --metrics %s: exit %d, %q; want a usage error", addr, r.code, r.stderr)
		}
	}
}

// TestMetricsBarePort: --metrics :PORT listens on the --listen host when
// that is loopback, not on every interface.
func TestMetricsBarePort(t *testing.T) {
	t.Parallel()
	p := startServe(t, t.TempDir(), "--metrics", ":0")
	addr := metricsAddr(t, "serve", p.log)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("metrics on %q (%v), want 127.0.0.1", addr, err)
	}
	if m := scrape(t, addr); len(m) == 0 {
		t.Fatal("no metrics")
	}
	p.stop(t, syscall.SIGTERM)
}
