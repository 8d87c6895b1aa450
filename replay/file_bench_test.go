package replay_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replay"
)

// BenchmarkReplayFile replays a journal of large sequential writes (1 MiB
// each, LOGSHIP_BENCH_MB of them, default 256) from a file onto a fresh
// sparse file, and beside it, in the same iteration, does what the
// simplest replayer would: a loop that reads each payload and pwrites it
// at its offset, one at a time. Both end with an fdatasync. It reports
// both speeds and replay/pwrite, the ratio the acceptance of issue 10
// asks for (at least 1). The journal is in the page cache: what is
// measured is writing. Replay runs with 1, 4 and 8 writers, with the
// blocks allocated ahead (Allocate) and with writeback started behind the
// writer (Writeback, as `logship replay` does). Files go in
// LOGSHIP_BENCH_DIR (default the test's temp dir: put it on the disk you
// mean).
func BenchmarkReplayFile(b *testing.B) {
	mb := 256
	if s := os.Getenv("LOGSHIP_BENCH_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil || mb < 1 {
			b.Fatalf("LOGSHIP_BENCH_MB=%q", s)
		}
	}
	dir := b.TempDir()
	if d := os.Getenv("LOGSHIP_BENCH_DIR"); d != "" {
		var err error
		if dir, err = os.MkdirTemp(d, "replay-bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	jpath := filepath.Join(dir, "j.log")
	writeSeqJournal(b, jpath, mb)
	size := int64(mb) << 20
	for _, tc := range []struct {
		par       int
		alloc     bool
		writeback bool
	}{{1, false, false}, {1, false, true}, {2, false, true}, {4, false, false}, {4, true, false}, {8, false, false}, {8, false, true}} {
		par := tc.par
		b.Run(fmt.Sprintf("parallel=%d/allocate=%v/writeback=%v", par, tc.alloc, tc.writeback), func(b *testing.B) {
			var replayT, loopT time.Duration
			runReplay := func() {
				replayT += timeRun(b, filepath.Join(dir, "replay.img"), size, func(d *devio.Device) error {
					_, err := replay.New(openJournal(b, jpath), d, replay.Options{Parallel: par, Allocate: tc.alloc, Writeback: tc.writeback}).Run(context.Background(), journal.Stop{}, nil, nil)
					return err
				})
			}
			runLoop := func() {
				loopT += timeRun(b, filepath.Join(dir, "loop.img"), size, func(d *devio.Device) error {
					return pwriteLoop(openJournal(b, jpath), d)
				})
			}
			for i := 0; b.Loop(); i++ {
				// Alternate which goes first: the disk may still be
				// busy with the other's blocks being freed.
				if i%2 == 0 {
					runReplay()
					runLoop()
				} else {
					runLoop()
					runReplay()
				}
			}
			n := float64(b.N)
			mib := float64(mb)
			b.ReportMetric(mib/(replayT.Seconds()/n), "replay-MiB/s")
			b.ReportMetric(mib/(loopT.Seconds()/n), "pwrite-MiB/s")
			b.ReportMetric(loopT.Seconds()/replayT.Seconds(), "replay/pwrite")
		})
	}
}

// timeRun creates a sparse file of size at path, runs f on it, syncs it
// and returns how long f and the sync took; the file is removed after.
func timeRun(b *testing.B, path string, size int64, f func(*devio.Device) error) time.Duration {
	b.Helper()
	d, err := devio.Open(path, devio.Options{Create: true, Size: size})
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	defer d.Close()
	start := time.Now()
	if err := f(d); err != nil {
		b.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// pwriteLoop is the plain sequential replayer: each write's payload read
// into one buffer and written at its offset, in journal order, headers
// read alone (as scripts/pwrite-loop does).
func pwriteLoop(r *journal.Reader, d *devio.Device) error {
	var buf []byte
	for {
		e, err := r.NextHeader()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !e.IsWrite() {
			continue
		}
		n := int(e.PayloadLen())
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		if _, err := r.Payload(e).ReadAt(buf[:n], 0); err != nil {
			return err
		}
		if _, err := d.WriteAt(buf[:n], e.Start()); err != nil {
			return err
		}
	}
}

func writeSeqJournal(b *testing.B, path string, mb int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w, err := journal.NewWriter(f, 4096)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	for i := range mb {
		buf[0] = byte(i)
		if err := w.Write(uint64(i)<<20/4096, buf, 0); err != nil {
			b.Fatal(err)
		}
		if i%16 == 15 {
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(fmt.Errorf("writing %s: %w", path, err))
	}
	// On the disk before the first round: its writeback must not compete
	// with the first rounds' writes.
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}

func openJournal(b *testing.B, path string) *journal.Reader {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	r, err := journal.NewReader(f, fi.Size())
	if err != nil {
		b.Fatal(err)
	}
	return r
}
