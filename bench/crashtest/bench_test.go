package crashtest_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/logship/logship/bench/crashtest"
)

// kernelJournal decompresses a committed kernel journal (see
// journal/testdata/kernel/README.md) into dir, or takes the journal and
// manifest named by $LOGSHIP_CRASHTEST_JOURNAL and $LOGSHIP_CRASHTEST_MANIFEST
// (say a fresh fsync-marks capture of the VM harness).
func kernelJournal(tb testing.TB, name string) (journalPath, manifestPath string) {
	tb.Helper()
	if j := os.Getenv("LOGSHIP_CRASHTEST_JOURNAL"); j != "" {
		return j, os.Getenv("LOGSHIP_CRASHTEST_MANIFEST")
	}
	base := filepath.Join("..", "..", "journal", "testdata", "kernel", name)
	in, err := os.Open(base + ".log.zst")
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	zr, err := zstd.NewReader(in)
	if err != nil {
		tb.Fatal(err)
	}
	defer zr.Close()
	journalPath = filepath.Join(tb.TempDir(), name+".log")
	out, err := os.Create(journalPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, zr); err != nil {
		tb.Fatal(err)
	}
	return journalPath, base + ".manifest"
}

func loadManifest(tb testing.TB, path string) crashtest.Manifest {
	tb.Helper()
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	m, err := crashtest.ParseManifest(f)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkCrashtest measures Crashtest on a real kernel journal
// (fsync-marks: ext4, mkfs then steps of file operations, a sync and a mark
// after each) from the mark mkfs on, at every FLUSH, FUA and MARK:
//
//   - one-pass: one replay, each state copied from it (Crashtest);
//   - from-zero: the replay-log loop of xfstests, with our own replay: for
//     every point, replay entries 0 to the point into a fresh image;
//
// each with check=e2fsck (e2fsck -fn through a loop device, and the
// manifest mounted at every mark: what the kernel tier runs) and with
// check=none (a check that does nothing: the cost of materializing alone).
// ns/op is one whole run; ms/point divides it by the points.
func BenchmarkCrashtest(b *testing.B) {
	j, mpath := kernelJournal(b, "fsync-marks-512")
	manifest := loadManifest(b, mpath)
	none := crashtest.CheckFunc(func(context.Context, *crashtest.State) ([]byte, error) { return nil, nil })
	fi, err := os.Stat(j)
	if err != nil {
		b.Fatal(err)
	}
	for _, check := range []string{"e2fsck", "none"} {
		for _, strategy := range []crashtest.Strategy{crashtest.OnePass, crashtest.FromZero} {
			name := "check=" + check + "/one-pass"
			if strategy == crashtest.FromZero {
				name = "check=" + check + "/from-zero"
			}
			b.Run(name, func(b *testing.B) {
				o := crashtest.Options{FromMark: "mkfs", Strategy: strategy, WorkDir: b.TempDir()}
				if check == "e2fsck" {
					o.Check, o.Manifest = crashtest.Command{Line: "e2fsck -fn {} >/dev/null"}, manifest
				} else {
					o.Check, o.Device = none, crashtest.DeviceFile
				}
				b.SetBytes(fi.Size())
				b.ReportAllocs()
				var sum crashtest.Summary
				for b.Loop() {
					if sum, err = crashtest.Crashtest(b.Context(), j, o); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(sum.Points), "points")
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(sum.Points), "ms/point")
			})
		}
	}
}

// BenchmarkRefresh measures how the check image is refreshed between
// states, with checks that write (the manifest's mount replays ext4's
// journal into the copy): refresh=changed copies what the journal changed
// and, after a writing check, compares to find what it wrote (the
// default); refresh=full copies every extent of the replay's image at every
// state. The second dirties the whole copy every time, which the next
// check's fsync through the loop device then writes back.
func BenchmarkRefresh(b *testing.B) {
	j, mpath := kernelJournal(b, "fsync-marks-512")
	manifest := loadManifest(b, mpath)
	for _, r := range []struct {
		name    string
		refresh crashtest.Refresh
	}{{"changed", crashtest.RefreshChanged}, {"full", crashtest.RefreshFull}} {
		b.Run("refresh="+r.name, func(b *testing.B) {
			o := crashtest.Options{FromMark: "mkfs", Refresh: r.refresh, WorkDir: b.TempDir(),
				Check: crashtest.Command{Line: "e2fsck -fn {} >/dev/null"}, Manifest: manifest}
			b.ReportAllocs()
			var sum crashtest.Summary
			var err error
			for b.Loop() {
				if sum, err = crashtest.Crashtest(b.Context(), j, o); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(sum.Copied)/float64(sum.Points+sum.Explored), "copied-B/state")
			b.ReportMetric(float64(sum.Prepare.Microseconds())/1000/float64(sum.Points), "prepare-ms/point")
			b.ReportMetric(float64(sum.Check.Microseconds())/1000/float64(sum.Points), "check-ms/point")
		})
	}
}

// BenchmarkCrashtestCI measures what --jobs and dedupe buy on a real
// kernel journal (fsync-marks-512, or $LOGSHIP_CRASHTEST_JOURNAL) with
// e2fsck -fn through a loop device at every FLUSH, FUA and MARK from the
// mark mkfs on. Every iteration runs the four variants one after another,
// so that they share the machine's load alike, each after a sync (so that
// none pays for the writeback of the one before) and starting from another
// variant each time (-benchtime 4x runs each in every position):
//
//   - from-zero: the replay-log loop (one check at a time, every point);
//   - one-pass, one job, every point checked;
//   - one-pass, one job, dedupe;
//   - one-pass, runtime.NumCPU() jobs, dedupe (crashtest's default).
//
// It reports each variant's ms/run, the share of points dedupe did not
// check, and the ratios of the default to the others: x-vs-from-zero,
// x-vs-jobs1 (dedupe in both) and x-vs-plain (one job, no dedupe).
func BenchmarkCrashtestCI(b *testing.B) {
	j, _ := kernelJournal(b, "fsync-marks-512")
	jobs := runtime.NumCPU()
	variants := []struct {
		name string
		o    crashtest.Options
	}{
		{"from-zero", crashtest.Options{Strategy: crashtest.FromZero}},
		{"plain", crashtest.Options{Jobs: 1}},
		{"jobs1", crashtest.Options{Jobs: 1, Dedupe: true}},
		{"default", crashtest.Options{Jobs: jobs, Dedupe: true}},
	}
	total := make([]time.Duration, len(variants))
	var sum crashtest.Summary
	for n := 0; b.Loop(); n++ {
		for k := range variants {
			i := (n + k) % len(variants)
			v := variants[i]
			o := v.o
			syscall.Sync()
			o.FromMark, o.WorkDir, o.Check = "mkfs", b.TempDir(), crashtest.Command{Line: "e2fsck -fn {}"}
			t0 := time.Now()
			s, err := crashtest.Crashtest(b.Context(), j, o)
			if err != nil {
				b.Fatal(err)
			}
			total[i] += time.Since(t0)
			if v.name == "default" {
				sum = s
			}
		}
	}
	for i, v := range variants {
		b.ReportMetric(float64(total[i].Milliseconds())/float64(b.N), v.name+"-ms/run")
	}
	b.ReportMetric(float64(total[0])/float64(total[3]), "x-vs-from-zero")
	b.ReportMetric(float64(total[2])/float64(total[3]), "x-vs-jobs1")
	b.ReportMetric(float64(total[1])/float64(total[3]), "x-vs-plain")
	b.ReportMetric(100*float64(sum.Deduped)/float64(sum.Points), "%deduped")
	b.ReportMetric(float64(sum.Points), "points")
	b.ReportMetric(float64(jobs), "jobs")
}
