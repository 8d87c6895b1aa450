package netbench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// Table prints measurements as an aligned table, one row per run as it
// comes, with each run's speedup over the one-stream run of the same link
// and variant.
type Table struct {
	w      io.Writer
	header bool
	one    map[string]float64 // link+variant → one-stream throughput
}

// NewTable returns a Table writing to w.
func NewTable(w io.Writer) *Table { return &Table{w: w, one: make(map[string]float64)} }

const tableFormat = "%-36s %-10s %7s %10s %7s %9s %8s %8s %8s %8s %9s %9s %10s\n"

// Row prints m.
func (t *Table) Row(m Measurement) error {
	if !t.header {
		t.header = true
		if _, err := fmt.Fprintf(t.w, tableFormat, "LINK", "VARIANT", "STREAMS", "MiB/s", "×1", "WINDOWS/s",
			"P50ms", "P99ms", "SHIPcpu", "SERVEcpu", "SHIPrss", "SERVErss", "WIRE"); err != nil {
			return err
		}
	}
	key := m.Link + "\x00" + m.Variant
	if m.Streams == 1 {
		t.one[key] = m.ThroughputBytesPerSec
	}
	speedup := "-"
	if one := t.one[key]; one > 0 {
		speedup = fmt.Sprintf("%.2f", m.ThroughputBytesPerSec/one)
	}
	lat := func(v float64) string {
		if m.LatencyMax == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", v)
	}
	_, err := fmt.Fprintf(t.w, tableFormat, m.Link, m.Variant, fmt.Sprint(m.Streams),
		fmt.Sprintf("%.1f", m.ThroughputBytesPerSec/(1<<20)), speedup, fmt.Sprintf("%.0f", m.WindowsPerSec),
		lat(m.LatencyP50), lat(m.LatencyP99),
		fmt.Sprintf("%.2fs", m.Ship.CPU().Seconds()), fmt.Sprintf("%.2fs", m.Serve.CPU().Seconds()),
		humanize.IBytes(uint64(m.Ship.PeakRSS)), humanize.IBytes(uint64(m.Serve.PeakRSS)),
		humanize.IBytes(uint64(m.WireBytes)))
	return err
}

// WriteJSON prints m as one JSON object on a line.
func WriteJSON(w io.Writer, m Measurement) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteGoBench prints m as a Go benchmark result line, which benchstat
// reads and compares across commits:
//
//	BenchmarkShip/link=loopback/variant=default/streams=4  1  512000000 ns/op  524.29 MB/s  ...
func WriteGoBench(w io.Writer, m Measurement) error {
	name := fmt.Sprintf("BenchmarkShip/link=%s/variant=%s/streams=%d", strings.ReplaceAll(m.Link, " ", "_"), m.Variant, m.Streams)
	ns := int64(m.Seconds * float64(time.Second))
	mbs := 0.0
	if m.Seconds > 0 {
		mbs = float64(m.Bytes) / 1e6 / m.Seconds
	}
	_, err := fmt.Fprintf(w, "%s\t1\t%d ns/op\t%.2f MB/s\t%.1f windows/s\t%.3f p50-ms\t%.3f p99-ms\t%.3f ship-cpu-s\t%.3f serve-cpu-s\t%d rss-B\n",
		name, ns, mbs, m.WindowsPerSec, m.LatencyP50, m.LatencyP99, m.Ship.CPU().Seconds(), m.Serve.CPU().Seconds(), m.RSSBytes)
	return err
}
