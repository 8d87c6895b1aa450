package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "--help"}, 0, "--link"},
		{[]string{"bench"}, 2, "give one of --journal and --workload"},
		{[]string{"bench", "--journal", "j", "--workload", "seq"}, 2, "give one of --journal and --workload"},
		{[]string{"bench", "--workload", "seq", "--streams", "0"}, 2, "--streams"},
		{[]string{"bench", "--workload", "seq", "--streams", "1,x"}, 2, "--streams"},
		{[]string{"bench", "--workload", "seq", "--link", "lan"}, 2, "bad link model"},
		{[]string{"bench", "--workload", "seq", "--link", "wan:flow=50MB"}, 2, "bits per second"},
		{[]string{"bench", "--workload", "seq", "--compare", "lz4"}, 2, "--compare"},
		{[]string{"bench", "--workload", "seq", "--size", "lots"}, 2, "--size"},
		{[]string{"bench", "--workload", "seq", "--json", "--gobench"}, 2, "exclude each other"},
		{[]string{"bench", "--workload", "seq", "--plot", "x.gif"}, 2, "--plot"},
		{[]string{"bench", "--from", "x.json", "--workload", "seq"}, 2, "--from"},
		{[]string{"bench", "--from", "/nonexistent.json"}, 3, "nonexistent"},
		{[]string{"bench", "--workload", "zipf", "--size", "1MiB", "-q"}, 3, "bad workload"},
		{[]string{"bench", "faults", "--help"}, 0, "kill-serve"},
		{[]string{"bench", "faults", "--runs", "0"}, 2, "--runs"},
		{[]string{"bench", "faults", "--faults", "meteor"}, 2, `unknown fault "meteor"`},
		{[]string{"bench", "faults", "--explore", "3"}, 2, "--explore"},
		{[]string{"bench", "faults", "--jobs", "0"}, 2, "--jobs"},
	} {
		r := logship(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("logship %q: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// TestBench runs `logship bench` on a small synthetic workload over two
// link models: one JSON object per run with the figures, and the plot.
func TestBench(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svg := filepath.Join(dir, "streams.svg")
	r := logship(t, "bench", "--workload", "rand4k", "--size", "4MiB", "--streams", "1,2", "--link", "loopback",
		"--link", "wan:rtt=4ms,flow=100Mbit,link=1Gbit", "--json", "--plot", svg, "--dir", dir, "-q")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines of JSON, want 4:\n%s", len(lines), r.stdout)
	}
	for i, line := range lines {
		var m struct {
			Streams    int     `json:"streams"`
			Link       string  `json:"link"`
			Throughput float64 `json:"throughput_bytes_per_sec"`
			RSS        int64   `json:"rss_bytes"`
			Bytes      int64   `json:"bytes"`
			P99        float64 `json:"latency_p99_ms"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		wantLink := []string{"loopback", "wan:rtt=4ms,flow=100Mbit,link=1Gbit"}[i/2]
		if m.Streams != 1+i%2 || m.Link != wantLink || m.Throughput <= 0 || m.RSS <= 0 || m.Bytes < 4<<20 || m.P99 <= 0 {
			t.Errorf("run %d: %s", i, line)
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil || !strings.Contains(string(b), "<svg") || !strings.Contains(string(b), "loopback") {
		t.Errorf("plot: %v, %.200s", err, b)
	}
	// The saved runs, printed and plotted again.
	saved := filepath.Join(dir, "runs.json")
	os.WriteFile(saved, []byte(r.stdout), 0o600)
	png := filepath.Join(dir, "streams.png")
	r = logship(t, "bench", "--from", saved, "--plot", png)
	if b, err := os.ReadFile(png); r.code != 0 || err != nil || !strings.HasPrefix(string(b), "\x89PNG") || strings.Count(r.stdout, "\n") != 5 {
		t.Errorf("--from: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	// The default output: a table, and Go benchmark lines.
	r = logship(t, "bench", "--workload", "seq", "--size", "3MiB", "--streams", "2", "--link", "direct", "--dir", dir, "-q")
	if r.code != 0 || !strings.Contains(r.stdout, "STREAMS") || !strings.Contains(r.stdout, "direct") {
		t.Errorf("table: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = logship(t, "bench", "--workload", "seq", "--size", "3MiB", "--streams", "2", "--link", "direct", "--gobench", "--dir", dir, "-q")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "BenchmarkShip/link=direct/variant=default/streams=2\t1\t") || !strings.Contains(r.stdout, "MB/s") {
		t.Errorf("gobench: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestBenchFaults runs a tiny campaign through the command line.
func TestBenchFaults(t *testing.T) {
	t.Parallel()
	r := logship(t, "bench", "faults", "--runs", "2", "--seed", "9", "--faults", "cut,kill-ship,flip", "--json", "-q", "--dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	var sum struct {
		Seed        uint64         `json:"seed"`
		Runs        int            `json:"runs"`
		Passed      int            `json:"passed"`
		Faults      map[string]int `json:"faults"`
		Divergences int            `json:"divergences"`
		Lost        int            `json:"lost_acked_windows"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if sum.Seed != 9 || sum.Runs != 2 || sum.Passed != 2 || len(sum.Faults) != 3 || sum.Divergences != 0 || sum.Lost != 0 {
		t.Errorf("summary %s", r.stdout)
	}
	r = logship(t, "bench", "faults", "--runs", "1", "--seed", "3", "--faults", "stall", "-q", "--dir", t.TempDir())
	for _, want := range []string{"fault campaign: seed 3, 1 runs", "divergences: 0", "lost acked windows: 0"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("exit %d, summary lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
}
