package main

// The kernel tier (issue 3): journals written by the real dm-log-writes
// target, in Debian's kernel booted under qemu (fixtures/vm), replayed and
// crash-tested by the logship binary. TestKernel captures every scenario
// afresh (timing differs from run to run, so every run sees new journals);
// TestKernelTestdata checks the small captures committed under
// journal/testdata/kernel without a VM, and with -update-kernel-testdata
// captures them again.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/logship/logship/fixtures/prereq"
	"github.com/logship/logship/fixtures/vm"
	"github.com/logship/logship/journal"
)

var updateKernelTestdata = flag.Bool("update-kernel-testdata", false,
	"capture the journals of journal/testdata/kernel afresh with the kernel VM harness")

const kernelTestdataDir = "../../journal/testdata/kernel"

// kernelCapture is one boot of the VM harness.
type kernelCapture struct {
	name string
	run  vm.Run
}

// tierCaptures are the kernel tier's scenarios at their full sizes. seed
// picks fsync-marks' operations; it changes every run.
func tierCaptures(seed string) []kernelCapture {
	env := func() map[string]string { return map[string]string{"LOGSHIP_SEED": seed} }
	return []kernelCapture{
		{"fsync-marks-512", vm.Run{Scenario: "fsync-marks", LogicalBlockSize: 512, Env: env()}},
		{"fsync-marks-4096", vm.Run{Scenario: "fsync-marks", LogicalBlockSize: 4096, Env: env()}},
		{"discard", vm.Run{Scenario: "discard", Env: env()}},
		{"big", vm.Run{Scenario: "big", DataSize: 512 << 20, LogSize: 768 << 20, Env: env()}},
	}
}

// testdataCaptures are the committed captures: small disks, few steps, a
// fixed seed (journal/testdata/kernel/README.md).
func testdataCaptures() []kernelCapture {
	env := func() map[string]string { return map[string]string{"LOGSHIP_STEPS": "12", "LOGSHIP_SEED": "7"} }
	return []kernelCapture{
		{"fsync-marks-512", vm.Run{Scenario: "fsync-marks", LogicalBlockSize: 512, DataSize: 64 << 20, LogSize: 64 << 20, Env: env()}},
		{"fsync-marks-4096", vm.Run{Scenario: "fsync-marks", LogicalBlockSize: 4096, DataSize: 64 << 20, LogSize: 64 << 20, Env: env()}},
	}
}

var (
	vmOnce    sync.Once
	vmHarness *vm.Harness
	vmErr     error
)

// kernelHarness prepares the VM harness once per test binary. A missing
// Debian package fails the test with its name: the kernel tier never skips
// for want of one.
func kernelHarness(t *testing.T) *vm.Harness {
	t.Helper()
	prereq.VM(t)
	vmOnce.Do(func() {
		start := time.Now()
		vmHarness, vmErr = vm.Prepare(t.Context(), vm.Config{Timeout: 5 * time.Minute})
		if vmErr == nil {
			rel, ver := vmHarness.Kernel()
			t.Logf("VM harness ready in %v: kernel %s (%s)", time.Since(start).Round(time.Millisecond), rel, ver)
		}
	})
	if vmErr != nil {
		t.Fatalf("kernel tier: %v\n(`make deps` installs the Debian packages: qemu-system-x86 busybox-static dmsetup e2fsprogs)", vmErr)
	}
	return vmHarness
}

// kernelJournal is a captured journal and what to check it against.
type kernelJournal struct {
	journal  string // the dm-log-writes journal
	manifest string // MANIFEST lines, as the scenario printed them
	sha256   string // of the final data image
	size     int64  // of the final data image
}

func (kc kernelCapture) capture(t *testing.T, h *vm.Harness) (kernelJournal, *vm.Result) {
	t.Helper()
	run := kc.run
	run.Dir = t.TempDir()
	res, err := h.Capture(t.Context(), run)
	if err != nil {
		t.Fatalf("capturing %s: %v", kc.name, err)
	}
	kj := kernelJournal{journal: res.Journal, manifest: filepath.Join(run.Dir, "manifest")}
	var m strings.Builder
	for _, l := range res.Output {
		if strings.HasPrefix(l, "MANIFEST ") {
			m.WriteString(l + "\n")
		}
	}
	if err := os.WriteFile(kj.manifest, []byte(m.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	kj.sha256, kj.size = sha256File(t, res.Data)
	return kj, res
}

func sha256File(t testing.TB, path string) (string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// crashSummary is the summary line of crashtest --json.
type crashSummary struct {
	Type      string  `json:"type"`
	Points    int     `json:"points"`
	Explored  int     `json:"explored"`
	Manifests int     `json:"manifests"`
	Failed    int     `json:"failed"`
	TotalMS   float64 `json:"total_ms"`
	PrepareMS float64 `json:"prepare_ms"`
	CheckMS   float64 `json:"check_ms"`
}

// crashtestJSON runs crashtest --json and returns its summary.
func crashtestJSON(t *testing.T, args ...string) crashSummary {
	t.Helper()
	res := logship(t, append([]string{"crashtest", "--json", "-q"}, args...)...)
	if res.code != 0 {
		t.Fatalf("logship crashtest %q: exit %d\n%s", args, res.code, res.stderr)
	}
	var sum crashSummary
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var obj map[string]any
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatalf("crashtest --json line %q: %v", sc.Text(), err)
		}
		if obj["type"] == "summary" {
			json.Unmarshal(sc.Bytes(), &sum)
		} else if obj["result"] != "ok" {
			t.Errorf("crashtest reported a failing state with exit 0: %s", sc.Text())
		}
	}
	if sum.Type != "summary" {
		t.Fatalf("crashtest --json printed no summary:\n%s", res.stdout)
	}
	return sum
}

// expectedPoints counts, independently of the bench, the FLUSH, FUA and
// MARK entries from the first mark "mkfs" on, and the marks the manifest
// names.
func expectedPoints(t *testing.T, kj kernelJournal) (points, manifests int) {
	t.Helper()
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
	m, err := os.ReadFile(kj.manifest)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(m)), "\n") {
		if f := strings.Fields(l); len(f) == 4 {
			labels[f[1]] = true
		}
	}
	started := false
	for {
		e, err := r.NextHeader()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		started = started || e.IsMark() && e.Label == "mkfs"
		if started && e.IsBarrier() {
			points++
		}
		if started && e.IsMark() && labels[e.Label] {
			manifests++
			delete(labels, e.Label) // the first mark of a label
		}
	}
	if !started {
		t.Fatalf("%s has no mark mkfs", kj.journal)
	}
	return points, manifests
}

// checkKernelJournal is the tier's check of one journal: replayed to the
// end onto zeros it gives the final data image, and every FLUSH, FUA and
// MARK state from mkfs on passes the ext4 preset (ext4's journal replayed on
// the copy, then e2fsck -fn), with the files of every manifest mark as the
// guest saw them. A plain e2fsck -fn is the wrong checker: it skips the
// journal, so a state whose metadata is committed in the jbd2 journal but not
// yet checkpointed fails it (seen on a loaded machine, where jbd2's commit
// timer fires at other points of the workload).
func checkKernelJournal(t *testing.T, kj kernelJournal) crashSummary {
	t.Helper()
	target := filepath.Join(t.TempDir(), "replayed.img")
	sparseFile(t, target, kj.size)
	if res := logship(t, "replay", "-q", kj.journal, target); res.code != 0 {
		t.Fatalf("logship replay: exit %d: %s", res.code, res.stderr)
	}
	if got, _ := sha256File(t, target); got != kj.sha256 {
		t.Errorf("replay of %s to the end: sha256 %s, want the data image's %s", kj.journal, got, kj.sha256)
	}
	os.Remove(target)

	sum := crashtestJSON(t, kj.journal, "--check", "ext4", "--points", "flush,fua,mark",
		"--from-mark", "mkfs", "--manifest", kj.manifest, "--manifest-exact", "--workdir", t.TempDir())
	points, manifests := expectedPoints(t, kj)
	if sum.Points != points || sum.Manifests < manifests || sum.Failed != 0 {
		t.Errorf("crashtest checked %d points and %d manifests (%d failed); the journal has %d FLUSH/FUA/MARK entries from mkfs on and %d manifest marks",
			sum.Points, sum.Manifests, sum.Failed, points, manifests)
	}
	return sum
}

// TestKernel is the kernel tier: a fresh capture of each scenario, checked
// by checkKernelJournal. On fsync-marks (512-byte sectors) it also measures
// crashtest against the replay-log style loop (from entry 0 for every
// point) and checks explored crash states with a checker that replays
// ext4's journal first. The figures are logged (go test -v).
func TestKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("the kernel tier boots VMs (about a minute); it runs without -short, as make test does")
	}
	start := time.Now()
	h := kernelHarness(t)
	seed := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10)
	t.Logf("scenario seed %s (LOGSHIP_SEED)", seed)
	slots := make(chan struct{}, 2) // two VMs at a time: TCG takes a core each
	t.Run("scenarios", func(t *testing.T) {
		for _, kc := range tierCaptures(seed) {
			t.Run(kc.name, func(t *testing.T) {
				t.Parallel()
				slots <- struct{}{}
				defer func() { <-slots }()
				kj, res := kc.capture(t, h)
				t.Logf("capture %s: %v in the VM", kc.name, res.Elapsed.Round(time.Millisecond))
				t0 := time.Now()
				sum := checkKernelJournal(t, kj)
				t.Logf("%s: replay and crashtest (%d points, %d manifests) in %v; crashtest %.0f ms",
					kc.name, sum.Points, sum.Manifests, time.Since(t0).Round(time.Millisecond), sum.TotalMS)
				if kc.name != "fsync-marks-512" {
					return
				}
				args := []string{kj.journal, "--check", "ext4", "--from-mark", "mkfs", "--manifest", kj.manifest, "--workdir", t.TempDir()}
				base := crashtestJSON(t, append(args, "--strategy", "from-zero")...)
				if base.Points != sum.Points || base.Manifests != sum.Manifests {
					t.Errorf("from-zero checked %d points, %d manifests; one-pass %d, %d", base.Points, base.Manifests, sum.Points, sum.Manifests)
				}
				t.Logf("fsync-marks-512, %d points + %d manifests: crashtest one-pass %.0f ms (materializing %.0f ms, checks %.0f ms); replay-log style loop from entry 0 %.0f ms (materializing %.0f ms, checks %.0f ms): %.1fx",
					sum.Points, sum.Manifests, sum.TotalMS, sum.PrepareMS, sum.CheckMS, base.TotalMS, base.PrepareMS, base.CheckMS, base.TotalMS/sum.TotalMS)
				ex := crashtestJSON(t, kj.journal, "--check", "e2fsck -p -E journal_only {} >/dev/null 2>&1; e2fsck -fn {}",
					"--from-mark", "mkfs", "--explore", "3", "--seed", seed, "--workdir", t.TempDir())
				if ex.Explored == 0 {
					t.Error("no explored states on fsync-marks")
				}
				t.Logf("fsync-marks-512 explored: %d points, %d explored states in %.0f ms", ex.Points, ex.Explored, ex.TotalMS)
			})
		}
	})
	t.Logf("kernel tier: %v in all", time.Since(start).Round(time.Millisecond))
}

// TestKernelTestdata checks the committed kernel journals as the tier
// checks fresh ones, without a VM. With -update-kernel-testdata it first
// captures them again.
func TestKernelTestdata(t *testing.T) {
	prereq.Root(t) // crashtest's check device is a loop device
	prereq.Tool(t, "e2fsck", "e2fsprogs")
	if *updateKernelTestdata {
		h := kernelHarness(t)
		for _, kc := range testdataCaptures() {
			writeKernelTestdata(t, h, kc)
		}
	}
	for _, kc := range testdataCaptures() {
		t.Run(kc.name, func(t *testing.T) {
			checkKernelJournal(t, loadKernelTestdata(t, kc.name))
		})
	}
}

// loadKernelTestdata decompresses a committed journal into a temporary
// directory.
func loadKernelTestdata(t testing.TB, name string) kernelJournal {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(kernelTestdataDir, name)
	kj := kernelJournal{journal: filepath.Join(dir, name+".log"), manifest: base + ".manifest"}
	in, err := os.Open(base + ".log.zst")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := zstd.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := os.Create(kj.journal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatalf("decompressing %s.log.zst: %v", base, err)
	}
	out.Close()
	img, err := os.ReadFile(base + ".image")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(string(img), "sha256 %s size %d", &kj.sha256, &kj.size); err != nil {
		t.Fatalf("%s.image: %v", base, err)
	}
	return kj
}

// writeKernelTestdata captures kc and writes NAME.log.zst (the journal up
// to its last entry), NAME.manifest and NAME.image into the testdata.
func writeKernelTestdata(t *testing.T, h *vm.Harness, kc kernelCapture) {
	t.Helper()
	kj, res := kc.capture(t, h)
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
	base := filepath.Join(kernelTestdataDir, kc.name)
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
	m, err := os.ReadFile(kj.manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".manifest", m, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".image", fmt.Appendf(nil, "sha256 %s size %d\n", kj.sha256, kj.size), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, ver := h.Kernel()
	t.Logf("wrote %s.log.zst: %d entries, %d journal bytes, kernel %s (%s), %v in the VM", base, r.Len(), r.Offset(), rel, ver, res.Elapsed)
}
