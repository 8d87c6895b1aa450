package netbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/logship/logship/bench/internal/proc"
)

// Setup is one benchmark run: a real `logship serve` and a real
// `logship ship` of one journal, over one link model, with one stream
// count.
type Setup struct {
	// Binary is the logship executable (this program if empty).
	Binary string
	// Journal is the journal file to ship; Size the task's image size (0:
	// what ship picks for a journal file).
	Journal string
	Size    int64
	Streams int
	Link    Link
	// Variant names the comparison this run belongs to (for the report);
	// ServeArgs and ShipArgs are its extra flags.
	Variant   Variant
	ServeArgs []string
	ShipArgs  []string
	// Dir is a scratch directory: the server's directory goes under it
	// and is removed after the run.
	Dir string
	// Timeout bounds the run (30 minutes if 0).
	Timeout time.Duration
	// Verify compares the server's image with the journal replayed onto
	// zeros once the server stopped; a difference is ErrDiverged.
	Verify bool
}

// Variant is a configuration compared against the default one.
type Variant struct {
	Name      string   // "" for the default
	ServeArgs []string // extra `logship serve` flags
	ShipArgs  []string // extra `logship ship` flags
}

// The variants `logship bench --compare` knows. Coalescing is always on
// in the server; "nocoalesce" ships every entry as its own window, so
// there is nothing to coalesce or to write in parallel inside a window,
// which is what coalescing buys.
var Variants = map[string]Variant{
	"default":    {},
	"zstd":       {Name: "zstd", ShipArgs: []string{"--compress", "zstd"}},
	"nocoalesce": {Name: "nocoalesce", ShipArgs: []string{"--window-entries", "1"}},
	"sync":       {Name: "sync", ServeArgs: []string{"--sync-per-window"}},
}

// Measurement is what one run measured.
type Measurement struct {
	Link    string `json:"link"`
	Variant string `json:"variant"`
	Streams int    `json:"streams"`
	// Bytes is the DATA payload shipped (entry headers and data), Entries
	// and Windows what it was cut into.
	Bytes   int64 `json:"bytes"`
	Entries int64 `json:"entries"`
	Windows int64 `json:"windows"`
	// Seconds is the ship's run, from its start to the ack of its last
	// window.
	Seconds               float64 `json:"seconds"`
	ThroughputBytesPerSec float64 `json:"throughput_bytes_per_sec"`
	WindowsPerSec         float64 `json:"windows_per_sec"`
	// Apply latency: from a window's last WINDOW_END leaving the source to
	// the ACK covering it reaching the source (seen by the proxy; none
	// with the direct link), milliseconds.
	LatencyP50 float64 `json:"latency_p50_ms"`
	LatencyP90 float64 `json:"latency_p90_ms"`
	LatencyP99 float64 `json:"latency_p99_ms"`
	LatencyMax float64 `json:"latency_max_ms"`
	// Usage of each process, and their peak RSS added up.
	Ship     proc.Usage `json:"ship"`
	Serve    proc.Usage `json:"serve"`
	RSSBytes int64      `json:"rss_bytes"`
	// Bytes on the wire, source to server and back (frame headers,
	// payloads after compression, handshakes).
	WireBytes     int64 `json:"wire_bytes"`
	WireBytesBack int64 `json:"wire_bytes_back"`
	Reconnects    int   `json:"reconnects"`
}

// benchTask is the task every run ships; the image is DIR/bench/image.
const benchTask = "bench"

// Measure runs one Setup.
func Measure(ctx context.Context, s Setup) (Measurement, error) {
	m := Measurement{Link: s.Link.String(), Variant: s.Variant.Name, Streams: s.Streams}
	if m.Variant == "" {
		m.Variant = "default"
	}
	bin, err := proc.Executable(s.Binary)
	if err != nil {
		return m, err
	}
	if s.Streams < 1 {
		return m, fmt.Errorf("bench: %d streams", s.Streams)
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("bench: the run took longer than %v", timeout))
	defer cancel()

	if s.Link.Kind == LinkVM {
		return m, fmt.Errorf("bench: %s: a vm link runs a whole Sweep in one boot, not one Measure", s.Link)
	}

	dir, err := os.MkdirTemp(s.Dir, "serve-")
	if err != nil {
		return m, err
	}
	defer os.RemoveAll(dir)
	listen, shipBin := "127.0.0.1:0", bin
	var srvWrap, shipWrap, auth []string
	if s.Link.Kind == LinkNetns {
		ns, err := newNetnsPair(ctx, s.Link)
		if err != nil {
			return m, err
		}
		defer ns.Close() // after the processes are killed (deferred below)
		listen, srvWrap, shipWrap = netnsServerIP+":0", ns.exec(ns.server), ns.exec(ns.source)
		shipBin = shipWrap[0]
		// Not a loopback address: --insecure is refused, the key is not.
		if auth, err = writePSK(dir); err != nil {
			return m, err
		}
	}
	srv, err := proc.StartServeIn(ctx, srvWrap, bin, listen, filepath.Join(dir, "srv"), auth, append(slices.Clone(s.ServeArgs), s.Variant.ServeArgs...), nil)
	if err != nil {
		return m, err
	}
	defer srv.Kill()
	addr := srv.Addr
	var px *Proxy
	if s.Link.Proxied() {
		if px, err = NewProxy(srv.Addr, s.Link, nil); err != nil {
			return m, err
		}
		defer px.Close()
		addr = px.Addr()
	}
	args := proc.ShipArgs(s.Journal, addr, benchTask, s.Streams, s.Size, append(slices.Clone(s.ShipArgs), s.Variant.ShipArgs...))
	if shipWrap != nil {
		args = append(append(slices.Clone(shipWrap[1:]), bin), withAuth(args, auth)...)
	}
	sh, err := proc.Start("logship ship", shipBin, args, nil, nil)
	if err != nil {
		return m, err
	}
	if err := sh.Wait(ctx); err != nil {
		return m, sh.Failure(err)
	}
	sum, err := proc.ParseShipSummary(sh.Stdout())
	if err != nil {
		return m, err
	}
	if sum.State != "done" {
		return m, sh.Failure(fmt.Errorf("ship ended %q", sum.State))
	}
	if err := srv.Stop(time.Minute); err != nil {
		return m, srv.Failure(err)
	}
	if s.Verify {
		if err := verifyImage(s.Journal, filepath.Join(dir, "srv", benchTask, "image")); err != nil {
			return m, err
		}
	}
	m.Bytes, m.Entries, m.Windows, m.Seconds, m.Reconnects = sum.Bytes, sum.Entries, sum.Windows, sum.Seconds, sum.Reconnects
	if m.Seconds > 0 {
		m.ThroughputBytesPerSec = float64(m.Bytes) / m.Seconds
		m.WindowsPerSec = float64(m.Windows) / m.Seconds
	}
	m.Ship, m.Serve = sh.Usage(), srv.Usage()
	m.RSSBytes = m.Ship.PeakRSS + m.Serve.PeakRSS
	m.WireBytes = sum.WireBytes
	if px != nil {
		px.Close()
		st := px.Stats()
		m.WireBytes, m.WireBytesBack = st.BytesUp, st.BytesDown
		lat := px.Ledger().Latencies()
		m.LatencyP50, m.LatencyP90, m.LatencyP99, m.LatencyMax = percentileMs(lat, 50), percentileMs(lat, 90), percentileMs(lat, 99), percentileMs(lat, 100)
	}
	return m, nil
}

// percentileMs is the p-th percentile of d (nearest rank), milliseconds.
func percentileMs(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	k := int(float64(len(s))*p/100+0.999999) - 1
	k = max(0, min(k, len(s)-1))
	return float64(s[k]) / float64(time.Millisecond)
}

// Sweep is a benchmark campaign: every stream count over every link
// model, for every variant, on one journal.
type Sweep struct {
	Setup    Setup // Streams, Link and Variant are filled in per run
	Streams  []int
	Links    []Link
	Variants []Variant
	// Repeat runs each combination this many times (1 if 0) and reports
	// the run with the median throughput, or every run with ReportAll.
	Repeat    int
	ReportAll bool
	// Progress, if set, gets a line per run.
	Progress io.Writer
}

// ErrNoRuns: a Sweep with nothing to run.
var ErrNoRuns = errors.New("bench: nothing to run")

// Run runs the sweep, calling report with each measurement in order:
// links, then variants, then stream counts.
func (sw Sweep) Run(ctx context.Context, report func(Measurement) error) error {
	if len(sw.Streams) == 0 || len(sw.Links) == 0 {
		return ErrNoRuns
	}
	variants := sw.Variants
	if len(variants) == 0 {
		variants = []Variant{{}}
	}
	repeat := max(sw.Repeat, 1)
	for _, l := range sw.Links {
		if l.Kind == LinkVM {
			ms, err := measureVM(ctx, sw, l, variants)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if err := report(m); err != nil {
					return err
				}
			}
			continue
		}
		for _, v := range variants {
			for _, n := range sw.Streams {
				s := sw.Setup
				s.Link, s.Variant, s.Streams = l, v, n
				var runs []Measurement
				for range repeat {
					m, err := Measure(ctx, s)
					if err != nil {
						return fmt.Errorf("%s, %s, %d streams: %w", l, orDefault(v.Name), n, err)
					}
					if sw.Progress != nil {
						fmt.Fprintf(sw.Progress, "bench: %s %s %d streams: %.1f MiB/s in %.2fs\n", l, orDefault(v.Name), n, m.ThroughputBytesPerSec/(1<<20), m.Seconds)
					}
					runs = append(runs, m)
				}
				if !sw.ReportAll {
					slices.SortFunc(runs, func(a, b Measurement) int {
						return cmpFloat(a.ThroughputBytesPerSec, b.ThroughputBytesPerSec)
					})
					runs = runs[len(runs)/2:][:1]
				}
				for _, m := range runs {
					if err := report(m); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
