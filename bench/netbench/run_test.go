package netbench_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logship/logship/bench/netbench"
)

// TestSweep is the smoke test of the benchmark: a small journal shipped
// with 1 and 3 streams, directly and through a WAN model, with a variant;
// every measurement has its figures, and the plot draws.
func TestSweep(t *testing.T) {
	t.Parallel()
	bin := netbench.LogshipBinary(t)
	dir := t.TempDir()
	g, err := netbench.Workload{Kind: "seq", Size: 12 << 20, Compressible: 0.5}.Generate(filepath.Join(dir, "seq.log"))
	if err != nil {
		t.Fatal(err)
	}
	var links []netbench.Link
	for _, s := range []string{"direct", "wan:rtt=2ms,flow=400Mbit,link=1Gbit"} {
		l, err := netbench.ParseLink(s)
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, l)
	}
	var progress bytes.Buffer
	sw := netbench.Sweep{
		Setup:    netbench.Setup{Binary: bin, Journal: g.Path, Size: g.Device, Dir: dir},
		Streams:  []int{1, 3},
		Links:    links,
		Variants: []netbench.Variant{{}, netbench.Variants["zstd"]},
		Progress: &progress,
	}
	var ms []netbench.Measurement
	var table, js bytes.Buffer
	tab := netbench.NewTable(&table)
	err = sw.Run(t.Context(), func(m netbench.Measurement) error {
		ms = append(ms, m)
		if err := netbench.WriteJSON(&js, m); err != nil {
			return err
		}
		return tab.Row(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 8 {
		t.Fatalf("%d measurements, want 2 links × 2 variants × 2 stream counts", len(ms))
	}
	for _, m := range ms {
		proxied := m.Link != "direct"
		switch {
		case m.Bytes < g.Bytes || m.Entries != g.Entries || m.Windows == 0:
			t.Errorf("%+v: shipped %d bytes, %d entries; the journal has %d, %d", m, m.Bytes, m.Entries, g.Bytes, g.Entries)
		case m.ThroughputBytesPerSec <= 0 || m.WindowsPerSec <= 0 || m.Seconds <= 0:
			t.Errorf("%+v: no throughput", m)
		case m.Ship.PeakRSS <= 0 || m.Serve.PeakRSS <= 0 || m.RSSBytes != m.Ship.PeakRSS+m.Serve.PeakRSS || m.Ship.CPU() <= 0 || m.Serve.CPU() <= 0:
			t.Errorf("%+v: no usage", m)
		case proxied && (m.LatencyP50 <= 0 || m.LatencyP99 < m.LatencyP50 || m.LatencyMax < m.LatencyP99 || m.WireBytesBack == 0):
			t.Errorf("%+v: latencies or return bytes missing through the proxy", m)
		case !proxied && m.LatencyMax != 0:
			t.Errorf("%+v: latencies without the proxy", m)
		case m.Variant == "zstd" && m.WireBytes >= m.Bytes*3/4:
			t.Errorf("%+v: zstd sent %d bytes on the wire for %d half-zero bytes", m, m.WireBytes, m.Bytes)
		case m.Variant == "default" && m.WireBytes < m.Bytes:
			t.Errorf("%+v: %d bytes on the wire for %d bytes of payload", m, m.WireBytes, m.Bytes)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"streams", "link", "throughput_bytes_per_sec", "rss_bytes", "wire_bytes", "latency_p99_ms", "windows_per_sec"} {
			if _, ok := obj[k]; !ok {
				t.Errorf("JSON %s lacks %q", line, k)
			}
		}
	}
	if n := strings.Count(table.String(), "\n"); n != 9 || !strings.Contains(table.String(), "STREAMS") {
		t.Errorf("table of %d lines:\n%s", n, table.String())
	}
	var svg bytes.Buffer
	if err := netbench.Plot(&svg, ms, "smoke", "svg"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "TCP streams", "direct default", "wan:rtt=2ms,flow=400Mbit,link=1Gbit zstd", "limit of the model"} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("the plot lacks %q", want)
		}
	}
	t.Logf("\n%s", table.String())
}

func TestMeasureErrors(t *testing.T) {
	t.Parallel()
	bin := netbench.LogshipBinary(t)
	dir := t.TempDir()
	l, _ := netbench.ParseLink("loopback")
	// A file that is not a journal: the ship fails, and the error says why.
	bad := filepath.Join(dir, "bad.log")
	os.WriteFile(bad, []byte("not a journal"), 0o600)
	_, err := netbench.Measure(t.Context(), netbench.Setup{Binary: bin, Journal: bad, Streams: 1, Link: l, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "journal") {
		t.Errorf("shipping a non-journal: %v", err)
	}
	if err := (netbench.Sweep{}).Run(t.Context(), nil); err != netbench.ErrNoRuns {
		t.Errorf("empty sweep: %v", err)
	}
	if err := netbench.Plot(&bytes.Buffer{}, nil, "", "svg"); err != netbench.ErrNothingToPlot {
		t.Errorf("empty plot: %v", err)
	}
	if err := netbench.Plot(&bytes.Buffer{}, nil, "", "gif"); err == nil {
		t.Error("a plot in gif")
	}
}
