package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/logship/logship/fixtures/vm"
	"github.com/logship/logship/journal"
)

var updateDemo = flag.Bool("update-demo", false,
	"capture the demo's kernel journal (cmd/logship/demo) afresh with the kernel VM harness")

// demoCapture is how the demo's journal is made (cmd/logship/demo/README.md).
var demoCapture = kernelCapture{"fsync-marks", vm.Run{
	Scenario:         "fsync-marks",
	LogicalBlockSize: 4096,
	DataSize:         64 << 20,
	LogSize:          64 << 20,
	Env:              map[string]string{"LOGSHIP_STEPS": "20", "LOGSHIP_SEED": "42"},
}}

// TestDemo runs `logship demo`: the embedded kernel journal shipped over
// 4 streams to an in-process server; the image must equal both the local
// replay and the guest's data disk.
func TestDemo(t *testing.T) {
	t.Parallel()
	if *updateDemo {
		writeDemoJournal(t, kernelHarness(t))
	}
	r := logship(t, "demo")
	if r.code != 0 {
		t.Fatalf("logship demo: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^journal: \d+ entries, .* recorded by the Linux kernel's dm-log-writes target`),
		regexp.MustCompile(`(?m)^shipped: \d+ entries in \d+ windows, .* over 4 streams in .*/s\)$`),
		regexp.MustCompile(`(?m)^image equals local replay: yes$`),
		regexp.MustCompile(`(?m)^image equals the guest's data disk \(sha256 [0-9a-f]{64}\): yes$`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("logship demo output does not match %q:\n%s", want, r.stdout)
		}
	}
	// The temporary directory is gone, unless --keep.
	dir := regexp.MustCompile(`(?m)^server: .* directory (\S+)$`).FindStringSubmatch(r.stdout)
	if dir == nil {
		t.Fatalf("no server directory in\n%s", r.stdout)
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("demo left %s behind (%v)", dir[1], err)
	}
	if r := logship(t, "demo", "--streams", "0"); r.code != 2 {
		t.Errorf("demo --streams 0: exit %d, want 2", r.code)
	}
}

// writeDemoJournal captures the demo journal and writes
// demo/fsync-marks.log.zst (the log up to its last entry) and
// demo/fsync-marks.image.
func writeDemoJournal(t *testing.T, h *vm.Harness) {
	t.Helper()
	kj, res := demoCapture.capture(t, h)
	f, err := os.Open(kj.journal)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	r, err := journal.NewReader(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SeekEntry(r.Len()); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join("demo", demoCapture.name)
	out, err := os.Create(base + ".log.zst")
	if err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(zw, io.NewSectionReader(f, 0, r.Offset())); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".image", fmt.Appendf(nil, "sha256 %s size %d\n", kj.sha256, kj.size), 0o644); err != nil {
		t.Fatal(err)
	}
	zfi, _ := os.Stat(base + ".log.zst")
	rel, ver := h.Kernel()
	steps := 0
	for _, l := range res.Output {
		if strings.HasPrefix(l, "OP ") {
			steps++
		}
	}
	t.Logf("wrote %s.log.zst: %d entries, %d journal bytes (%d compressed), %d operations, kernel %s (%s), %v in the VM",
		base, r.Len(), r.Offset(), zfi.Size(), steps, rel, ver, res.Elapsed)
}
