package netbench_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/bench/netbench"
	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replay"
	"github.com/logship/logship/source"
)

// Benchmarks of the hot paths that have none in their own packages: the
// entry codec of every DATA frame, the journal writer (staging logs,
// diff), the live tailer, block digests (sync, verify), applying a window
// with and without coalescing, the journal identity, and the bench's own
// proxy and frame tap. `make bench` runs them with the rest, in the format
// benchstat compares.

var entrySizes = []int{4 << 10, 64 << 10, 1 << 20}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// BenchmarkEntryCodec: control.AppendEntry and ParseEntry, once per DATA
// frame on each side.
func BenchmarkEntryCodec(b *testing.B) {
	for _, size := range entrySizes {
		e := journal.Entry{Index: 7, Sector: 1000, NrSectors: uint64(size / 512), SectorSize: 512, Flags: journal.FlagFUA}
		data := make([]byte, size)
		b.Run("append/"+sizeName(size), func(b *testing.B) {
			buf := make([]byte, 0, control.EntryHeader+size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf = control.AppendEntry(buf[:0], e, data)
			}
		})
		b.Run("parse/"+sizeName(size), func(b *testing.B) {
			p := control.AppendEntry(nil, e, data)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := control.ParseEntry(p, 7, 512); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discardAt is an io.WriterAt that keeps nothing.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// BenchmarkJournalWriter: journal.Writer.Append, which the server's
// staging logs and logship diff write through.
func BenchmarkJournalWriter(b *testing.B) {
	for _, size := range entrySizes {
		b.Run(sizeName(size), func(b *testing.B) {
			w, err := journal.NewWriter(discardAt{}, 512)
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := w.Write(uint64(i%1000)*8, data, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchJournalFile writes wl as a journal file in dir.
func benchJournalFile(b *testing.B, wl fixtures.Workload) (path string, payload int64, entries int64) {
	b.Helper()
	j, err := wl.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	path = filepath.Join(b.TempDir(), "j.log")
	if err := os.WriteFile(path, j, 0o600); err != nil {
		b.Fatal(err)
	}
	r, err := journal.NewReader(bytesReader(j), int64(len(j)))
	if err != nil {
		b.Fatal(err)
	}
	for e, err := range r.All() {
		if err != nil {
			b.Fatal(err)
		}
		payload += e.PayloadLen()
		entries++
	}
	return path, payload, entries
}

// BenchmarkTailer: journal.Tailer reading a journal file to its counted
// end, headers and payloads, as `ship --follow` does (page cache; a log
// device is read with O_DIRECT).
func BenchmarkTailer(b *testing.B) {
	path, payload, entries := benchJournalFile(b, fixtures.Workload{Seed: 1, SectorSize: 512, DeviceSize: 256 << 20,
		Entries: 2000, MaxWriteSectors: 128, Flush: 0.05, FUA: 0.05})
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 128*512)
	b.SetBytes(payload)
	b.ReportAllocs()
	for b.Loop() {
		t := journal.NewTailer(f, journal.TailOptions{Poll: time.Millisecond, Settle: time.Nanosecond})
		for range entries {
			e, err := t.Next(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if e.IsWrite() {
				if err := t.ReadPayload(e, buf[:e.PayloadLen()]); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkJournalID: source.IdentifyReader, once per ship.
func BenchmarkJournalID(b *testing.B) {
	path, _, _ := benchJournalFile(b, fixtures.Workload{Seed: 2, SectorSize: 4096, DeviceSize: 64 << 20, Entries: 200, MaxWriteSectors: 16})
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := source.IdentifyReader(f, fi.Size()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDigest: devio.Device.Digest over a 64 MiB file in the page
// cache, the block digests of sync and verify.
func BenchmarkDigest(b *testing.B) {
	path := filepath.Join(b.TempDir(), "img")
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	d, err := devio.Open(path, devio.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for _, block := range []int64{4 << 10, 1 << 20} {
		b.Run("block="+sizeName(int(block)), func(b *testing.B) {
			buf := devio.AlignedBuffer(int(block), 4096)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				for off := int64(0); off < int64(len(data)); off += block {
					if _, err := d.Digest(off, block, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkApplyWindow: one window of 512 random 4 KiB-32 KiB writes, 40%
// overlapping earlier ones, applied to a file: coalesced into disjoint
// extents written 4 at a time (replay.ApplyExtents, what the server and
// logship replay do), against every entry written in journal order (what
// replay-log does). written-B/op is the bytes each writes.
func BenchmarkApplyWindow(b *testing.B) {
	wl := fixtures.Workload{Seed: 3, SectorSize: 512, DeviceSize: 64 << 20, Entries: 512, MaxWriteSectors: 64, Overlap: 0.4}
	j, err := wl.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	r, err := journal.NewReader(bytesReader(j), int64(len(j)))
	if err != nil {
		b.Fatal(err)
	}
	w := &barrier.Window{}
	var payloads [][]byte
	var raw int64
	for e, err := range r.All() {
		if err != nil {
			b.Fatal(err)
		}
		p := make([]byte, e.PayloadLen())
		if err := r.ReadPayload(e, p); err != nil {
			b.Fatal(err)
		}
		w.Entries = append(w.Entries, e)
		payloads = append(payloads, p)
		raw += int64(len(p))
	}
	d, err := devio.Open(filepath.Join(b.TempDir(), "img"), devio.Options{Create: true, Size: wl.DeviceSize})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	payload := func(i int) []byte { return payloads[i] }
	b.Run("coalesce=on", func(b *testing.B) {
		b.SetBytes(raw)
		b.ReportAllocs()
		var st replay.Stats
		for b.Loop() {
			if st, err = replay.Apply(b.Context(), d, w, payload, replay.Options{Parallel: 4}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(st.Written), "written-B/op")
	})
	b.Run("coalesce=off", func(b *testing.B) {
		b.SetBytes(raw)
		b.ReportAllocs()
		for b.Loop() {
			for i, e := range w.Entries {
				if _, err := d.WriteAt(payloads[i], e.Start()); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(raw), "written-B/op")
	})
}

// BenchmarkProxy: 64 MiB over one TCP connection, directly and through
// the bench's proxy, unshaped and under a WAN model too wide to limit:
// what the proxy itself costs.
func BenchmarkProxy(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() { // ends when ln closes
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Write([]byte{1})
				c.Close()
			}()
		}
	}()
	const n = 64 << 20
	buf := make([]byte, 1<<20)
	for _, link := range []string{"direct", "loopback", "wan:flow=100Gbit,link=100Gbit"} {
		b.Run("link="+link, func(b *testing.B) {
			addr := ln.Addr().String()
			if link != "direct" {
				l, _ := netbench.ParseLink(link)
				p, err := netbench.NewProxy(addr, l, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				addr = p.Addr()
			}
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				for sent := 0; sent < n; sent += len(buf) {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				c.(*net.TCPConn).CloseWrite()
				if _, err := io.ReadFull(c, buf[:1]); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkWorkload: generating the synthetic workloads of logship bench
// (random payloads dominate).
func BenchmarkWorkload(b *testing.B) {
	for _, kind := range []string{"seq", "rand4k"} {
		b.Run(kind, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), kind+".log")
			wl := netbench.Workload{Kind: kind, Size: 16 << 20, Compressible: 0.5, Seed: rand.Uint64()}
			b.SetBytes(wl.Size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := wl.Generate(path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
