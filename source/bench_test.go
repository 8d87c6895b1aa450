package source

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// The ship benchmarks use a synthetic journal of $LOGSHIP_BENCH_JOURNAL
// bytes of payload (default 256MiB; the figures use 1GiB): random
// writes of up to 1 MiB with a few flushes, FUA writes and discards over a
// 2 GiB device, 4096-byte sectors (what fixtures/mkjournal makes).
var (
	benchOnce sync.Once
	benchPath string
	benchDir  string
	benchErr  error
)

func benchJournal(b *testing.B) (path string, payload int64) {
	b.Helper()
	size := int64(256 << 20)
	if s := os.Getenv("LOGSHIP_BENCH_JOURNAL"); s != "" {
		n, err := humanize.ParseBytes(s)
		if err != nil {
			b.Fatalf("LOGSHIP_BENCH_JOURNAL=%q: %v", s, err)
		}
		size = int64(n)
	}
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "logship-bench-")
		if benchErr != nil {
			return
		}
		benchPath = filepath.Join(benchDir, "journal")
		benchErr = writeBenchJournal(benchPath, size)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	f, err := os.Open(benchPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	r, err := journal.NewReader(f, fi.Size())
	if err != nil {
		b.Fatal(err)
	}
	for {
		e, err := r.NextHeader()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		payload += e.PayloadLen()
	}
	return benchPath, payload
}

func writeBenchJournal(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := journal.NewWriter(f, 4096)
	if err != nil {
		return err
	}
	wl := fixtures.Workload{Seed: 1000, SectorSize: 4096, DeviceSize: 2 << 30, MaxWriteSectors: 256,
		Discard: 0.01, Flush: 0.02, FUA: 0.02, Overlap: 0.2}
	if err := wl.WriteUntil(w, size); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Sync()
}

// BenchmarkShipNoDisk ships the benchmark journal over loopback with 1,
// 2, 4 and 8 streams to the test server keeping no image (it decodes and
// checks every entry frame, then drops it): the cost of the source and the
// transport alone, without a server's disk. Bytes are the journal's
// payload bytes. BenchmarkShipProcess in cmd/logship runs the real
// binaries, serve and ship, end to end.
func BenchmarkShipNoDisk(b *testing.B) {
	path, payload := benchJournal(b)
	for _, streams := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			srv := newTestServer(b, parallel.ServerConfig{})
			srv.noImage = true
			b.SetBytes(payload)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				task := fmt.Sprintf("b%d", i)
				i++
				s, err := New(Config{
					Journal: path, Addr: srv.Addr(),
					Client: parallel.ClientConfig{Task: task, Streams: streams, Insecure: true},
					Size:   2 << 30, Log: slog.New(slog.DiscardHandler),
				})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				srv.mu.Lock()
				delete(srv.tasks, task)
				srv.mu.Unlock()
				b.StartTimer()
			}
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}
