package main

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/logship/logship/bench/crashtest"
	"github.com/logship/logship/fixtures/prereq"
	"github.com/logship/logship/journal"
)

func TestCrashtestUsage(t *testing.T) {
	t.Parallel()
	kj := loadKernelTestdata(t, "fsync-marks-512")
	m := filepath.Join(t.TempDir(), "bad.manifest")
	os.WriteFile(m, []byte("step1 /a/f4 nothex\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"crashtest"}, 2, "want one JOURNAL"},
		{[]string{"crashtest", kj.journal}, 2, "want --check 'CMD', --manifest FILE or both"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--points", "fsync"}, 2, `--points "fsync"`},
		{[]string{"crashtest", kj.journal, "--check", "true", "--points", "every:0"}, 2, "every:N needs a positive"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--device", "nbd"}, 2, `--device "nbd"`},
		{[]string{"crashtest", kj.journal, "--check", "true", "--strategy", "twice"}, 2, `--strategy "twice"`},
		{[]string{"crashtest", kj.journal, "--check", "true", "--size", "lots"}, 2, `--size "lots"`},
		{[]string{"crashtest", kj.journal, "--manifest", kj.manifest, "--explore", "2"}, 2, "--explore needs --check"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--manifest", m}, 3, "not an md5 sum"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--from-mark", "nosuch"}, 3, "mark not found"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--size", "1MiB"}, 3, "target too small"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--fault", "drop:999999"}, 2, "the journal has"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--jobs", "0"}, 2, "--jobs 0"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--shard", "4/3"}, 2, "shard 4/3"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--shard", "2"}, 2, `shard "2"`},
		{[]string{"crashtest", kj.journal, "--check", "ext4", "--device", "file"}, 2, "--check ext4 needs --device loop"},
		{[]string{"crashtest", kj.journal, "--check", "true", "--strategy", "from-zero", "--shard", "1/2"}, 2, "shards apply to the one-pass replay only"},
		{[]string{"crashtest", "merge"}, 2, "want the shards' --json reports"},
		{[]string{"crashtest", "merge", m}, 3, "bad crashtest report"},
		{[]string{"crashtest", "--help"}, 0, "--from-mark"},
		{[]string{"crashtest", "--help"}, 0, "at most N+1 sparse images"},
		{[]string{"crashtest", "merge", "--help"}, 0, "exactly once"},
	} {
		r := logship(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("logship %q: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// kernelEntries reads the headers of a journal.
func kernelEntries(t *testing.T, path string) []journal.Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	r, err := journal.NewReader(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	var es []journal.Entry
	for {
		e, err := r.NextHeader()
		if err == io.EOF {
			return es
		}
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
}

func markIndex(t *testing.T, es []journal.Entry, label string) int64 {
	t.Helper()
	for _, e := range es {
		if e.IsMark() && e.Label == label {
			return e.Index
		}
	}
	t.Fatalf("no mark %q", label)
	return -1
}

// TestCrashtestFaults proves the bench can fail (issue 3, item 5): on a
// real kernel journal, a replay corrupted on purpose (a window dropped, a
// write moved across barriers) makes crashtest exit 1 at the point where
// the state first goes wrong, naming it and showing the evidence.
func TestCrashtestFaults(t *testing.T) {
	prereq.Root(t) // the check device is a loop device
	prereq.Tool(t, "e2fsck", "e2fsprogs")
	kj := loadKernelTestdata(t, "fsync-marks-512")
	es := kernelEntries(t, kj.journal)
	mkfs, step1 := markIndex(t, es, "mkfs"), markIndex(t, es, "step1")
	// mkfs's first write of the start of the device (the superblock), and
	// step 1's file data: the first plain write after the mark mkfs.
	var sb, data int64 = -1, -1
	for _, e := range es {
		if sb < 0 && e.IsWrite() && e.Sector == 0 {
			sb = e.Index
		}
		if data < 0 && e.Index > mkfs && e.IsWrite() && e.Flags == 0 {
			data = e.Index
		}
	}
	if sb < 0 || sb > mkfs || data < 0 || data > step1 {
		t.Fatalf("journal layout: superblock write %d, data write %d, marks mkfs %d, step1 %d", sb, data, mkfs, step1)
	}
	for _, tc := range []struct {
		fault   string
		failAt  int64
		evident string // in stderr
	}{
		// mkfs's metadata lost: e2fsck fails at the first point.
		{fmt.Sprintf("drop:%d", sb), mkfs, "e2fsck"},
		// The window with step 1's data and its journal blocks lost:
		// e2fsck -fn does not see it, the manifest does.
		{fmt.Sprintf("drop:%d", data), step1, "/a/f4: missing"},
		// Step 1's data moved after the mark: the file has other bytes.
		{fmt.Sprintf("delay:%d:%d", data, step1), step1, "/a/f4: md5 "},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			r := logship(t, "crashtest", kj.journal, "--check", "e2fsck -fn {}", "--from-mark", "mkfs",
				"--manifest", kj.manifest, "--fault", tc.fault, "--json", "-q", "--workdir", t.TempDir())
			want := fmt.Sprintf("logship crashtest: entry %d (", tc.failAt)
			if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, tc.evident) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 1, %q and %q", r.code, r.stderr, want, tc.evident)
			}
			// The JSON report ends with the failing point, then the summary.
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			var last pointJSON
			if len(lines) < 2 || json.Unmarshal([]byte(lines[len(lines)-2]), &last) != nil || last.Result != "FAIL" || last.Entry != tc.failAt || last.Output == "" {
				t.Errorf("JSON report does not end with the failing point %d and its output:\n%s", tc.failAt, r.stdout)
			}
		})
	}
	// The same journal without a fault passes (checked by TestKernelTestdata).
}

// TestCrashtestReport: the table, the JSON objects, --keep-going, and the
// exit at the first failing point with the checker's output.
func TestCrashtestReport(t *testing.T) {
	t.Parallel()
	kj := loadKernelTestdata(t, "fsync-marks-512")
	es := kernelEntries(t, kj.journal)
	var barriers []int64
	for _, e := range es {
		if e.IsBarrier() {
			barriers = append(barriers, e.Index)
		}
	}
	bad1, bad2 := barriers[len(barriers)/3], barriers[2*len(barriers)/3]
	check := fmt.Sprintf(`case $LOGSHIP_ENTRY in %d|%d) echo "no good at $LOGSHIP_ENTRY"; exit 3;; esac`, bad1, bad2)

	r := logship(t, "crashtest", kj.journal, "--check", check, "--device", "file", "--workdir", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("entry %d (", bad1)) || !strings.Contains(r.stderr, "no good at "+fmt.Sprint(bad1)) {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 at entry %d with the check's output", r.code, r.stderr, bad1)
	}
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !strings.HasPrefix(strings.TrimSpace(rows[0]), "POINT") || len(rows) != 1+len(barriers)/3+1 {
		t.Errorf("table of %d rows, want a header and %d points up to the failure:\n%s", len(rows), len(barriers)/3+1, r.stdout)
	}
	if f := strings.Fields(rows[len(rows)-1]); len(f) < 4 || f[1] != fmt.Sprint(bad1) || !strings.Contains(rows[len(rows)-1], "FAIL") {
		t.Errorf("last row %q, want entry %d FAIL", rows[len(rows)-1], bad1)
	}

	r = logship(t, "crashtest", kj.journal, "--check", check, "--device", "file", "--keep-going", "--json", "--workdir", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, "first of 2 failing states") {
		t.Fatalf("--keep-going: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	var points, failed int
	var sum crashSummary
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var p pointJSON
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		switch p.Type {
		case "point":
			if p.Entry != barriers[points] {
				t.Errorf("point %d at entry %d, want %d", p.Point, p.Entry, barriers[points])
			}
			points++
			if p.Result == "FAIL" {
				failed++
				if p.Entry != bad1 && p.Entry != bad2 || !strings.Contains(p.Output, "no good") {
					t.Errorf("failing point %+v", p)
				}
			}
		case "summary":
			json.Unmarshal(sc.Bytes(), &sum)
		}
	}
	if points != len(barriers) || failed != 2 || sum.Points != points || sum.Failed != 2 {
		t.Errorf("--keep-going reported %d points, %d failed, summary %+v; want %d points, 2 failed", points, failed, sum, len(barriers))
	}
}

// TestCrashtestChecksMayWrite: a check that scribbles over its state (after
// passing it) leaks nothing into the next point, through a loop device or
// on the image file; a check that runs fsck -y, which repairs, neither.
func TestCrashtestChecksMayWrite(t *testing.T) {
	prereq.Root(t) // the check device is a loop device
	prereq.Tool(t, "e2fsck", "e2fsprogs")
	kj := loadKernelTestdata(t, "fsync-marks-4096")
	scribble := "e2fsck -fn {} >/dev/null 2>&1 || { e2fsck -fn {}; exit 1; }; dd if=/dev/urandom of={} bs=4096 seek=$((LOGSHIP_ENTRY % 7)) count=300 conv=notrunc status=none"
	for _, device := range []string{"loop", "file"} {
		t.Run(device, func(t *testing.T) {
			r := logship(t, "crashtest", kj.journal, "--check", scribble, "--device", device, "--from-mark", "mkfs",
				"--manifest", kj.manifest, "-q", "--workdir", t.TempDir())
			if r.code != 0 {
				t.Fatalf("exit %d:\n%s", r.code, r.stderr)
			}
		})
	}
}

// TestCrashtestBase: a journal that starts after mkfs needs the image it
// started from; with --base it passes, from zeros it fails at once.
func TestCrashtestBase(t *testing.T) {
	prereq.Root(t) // the check device is a loop device
	prereq.Tool(t, "e2fsck", "e2fsprogs")
	kj := loadKernelTestdata(t, "fsync-marks-512")
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	sparseFile(t, base, kj.size)
	if r := logship(t, "replay", "-q", "--end-mark", "mkfs", kj.journal, base); r.code != 0 {
		t.Fatalf("replay: %s", r.stderr)
	}
	// The rest of the journal, after the mark mkfs, as a journal of its own.
	f, err := os.Open(kj.journal)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	rd, err := journal.NewReader(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.SeekMark("mkfs"); err != nil {
		t.Fatal(err)
	}
	tail := filepath.Join(dir, "tail.log")
	out, err := os.Create(tail)
	if err != nil {
		t.Fatal(err)
	}
	w, err := journal.NewWriter(out, rd.SectorSize())
	if err != nil {
		t.Fatal(err)
	}
	for e, err := range rd.All() {
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, e.PayloadLen())
		if err := rd.ReadPayload(e, p); err != nil {
			t.Fatal(err)
		}
		if err := w.Append(e, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()

	r := logship(t, "crashtest", tail, "--base", base, "--check", "e2fsck -fn {}", "--manifest", kj.manifest, "-q", "--workdir", dir)
	if r.code != 0 {
		t.Fatalf("with --base: exit %d:\n%s", r.code, r.stderr)
	}
	r = logship(t, "crashtest", tail, "--size", fmt.Sprint(kj.size), "--check", "e2fsck -fn {}", "-q", "--workdir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "entry 0 (") {
		t.Fatalf("without --base: exit %d, want 1 at the first point:\n%s", r.code, r.stderr)
	}
}

// stateKeys lists what the --json state lines say about the states,
// without the times and the check's output (which names the job's image).
func stateKeys(t *testing.T, report string) (keys []string, sum crashtest.SummaryRecord) {
	t.Helper()
	rep, err := crashtest.ReadReport(strings.NewReader(report), "report")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Records {
		r.PrepareMS, r.CheckMS, r.Output = 0, 0, ""
		b, _ := json.Marshal(r)
		keys = append(keys, string(b))
	}
	return keys, rep.Summary
}

// TestCrashtestShardsMerge: on a kernel journal, with explored states that
// e2fsck -fn fails (it does not replay ext4's journal) and points that
// dedupe takes as the same as the one before, three shards (by --shard and
// by GitLab's CI_NODE_INDEX/CI_NODE_TOTAL) check every state exactly once,
// and crashtest merge gives back the whole run's report and exit status;
// the JUnit files parse and hold a test case per state. Merging reports
// that do not cover the run exactly once exits 3.
func TestCrashtestShardsMerge(t *testing.T) {
	prereq.Tool(t, "e2fsck", "e2fsprogs")
	kj := loadKernelTestdata(t, "fsync-marks-512")
	dir := t.TempDir()
	t.Setenv("CI_NODE_INDEX", "")
	t.Setenv("CI_NODE_TOTAL", "")
	args := []string{"crashtest", kj.journal, "--check", "e2fsck -fn {}", "--device", "file", "--from-mark", "mkfs",
		"--explore", "1", "--keep-going", "--json", "-q", "--workdir", dir}
	whole := logship(t, append(args, "--junit", filepath.Join(dir, "whole.xml"))...)
	if whole.code != 1 {
		t.Fatalf("whole run: exit %d, want 1 (explored states fail e2fsck -fn):\n%s", whole.code, whole.stderr)
	}
	wantKeys, wantSum := stateKeys(t, whole.stdout)
	if wantSum.Deduped == 0 || wantSum.Failed == 0 || wantSum.Explored == 0 || len(wantKeys) != wantSum.RunStates {
		t.Fatalf("whole run: %+v: want dedupes, failures and explored states, %d states", wantSum, len(wantKeys))
	}
	checkJUnit(t, filepath.Join(dir, "whole.xml"), len(wantKeys), wantSum.Failed)

	var shards []string
	for k := 1; k <= 3; k++ {
		a := append(slices.Clone(args), "--shard", fmt.Sprintf("%d/3", k))
		if k == 2 {
			t.Setenv("CI_NODE_INDEX", "2")
			t.Setenv("CI_NODE_TOTAL", "3")
			a = slices.Clone(args)
		}
		r := logship(t, a...)
		t.Setenv("CI_NODE_INDEX", "")
		t.Setenv("CI_NODE_TOTAL", "")
		if r.code != 0 && r.code != 1 {
			t.Fatalf("shard %d/3: exit %d:\n%s", k, r.code, r.stderr)
		}
		if _, sum := stateKeys(t, r.stdout); sum.Shard != fmt.Sprintf("%d/3", k) || !sum.Complete {
			t.Fatalf("shard %d/3: summary %+v", k, sum)
		}
		p := filepath.Join(dir, fmt.Sprintf("shard%d.json", k))
		if err := os.WriteFile(p, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		shards = append(shards, p)
	}
	m := logship(t, append([]string{"crashtest", "merge", "--json", "--junit", filepath.Join(dir, "merged.xml")}, shards[2], shards[0], shards[1])...)
	if m.code != 1 {
		t.Fatalf("merge: exit %d, want 1 (states failed):\n%s", m.code, m.stderr)
	}
	gotKeys, gotSum := stateKeys(t, m.stdout)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Errorf("merged states differ from the whole run's:\n%s\nwant\n%s", strings.Join(gotKeys, "\n"), strings.Join(wantKeys, "\n"))
	}
	if gotSum.Points != wantSum.Points || gotSum.Explored != wantSum.Explored || gotSum.Deduped != wantSum.Deduped || gotSum.Failed != wantSum.Failed {
		t.Errorf("merged summary %+v, want the counts of %+v", gotSum, wantSum)
	}
	checkJUnit(t, filepath.Join(dir, "merged.xml"), len(wantKeys), wantSum.Failed)

	// Shards that cover the run exactly once, or not.
	pass := []string{"crashtest", kj.journal, "--check", "true", "--device", "file", "--json", "-q", "--workdir", dir}
	var ok []string
	for k := 1; k <= 2; k++ {
		r := logship(t, append(slices.Clone(pass), "--shard", fmt.Sprintf("%d/2", k))...)
		if r.code != 0 {
			t.Fatalf("shard %d/2: exit %d:\n%s", k, r.code, r.stderr)
		}
		p := filepath.Join(dir, fmt.Sprintf("pass%d.json", k))
		os.WriteFile(p, []byte(r.stdout), 0o644)
		ok = append(ok, p)
	}
	for _, tc := range []struct {
		files []string
		code  int
		want  string
	}{
		{ok, 0, "2 reports"},
		{ok[:1], 3, "shard 2/2 is missing"},
		{[]string{ok[0], ok[0], ok[1]}, 3, "are both shard 1/2"},
		{[]string{ok[0], shards[1]}, 3, "another run"},
	} {
		r := logship(t, append([]string{"crashtest", "merge"}, tc.files...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("merge %v: exit %d, stderr %q; want exit %d and %q", tc.files, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// checkJUnit parses a JUnit file and counts its test cases and failures.
func checkJUnit(t *testing.T, path string, tests, failures int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("%s: %d test suites, want 1", path, len(doc.Suites))
	}
	s := doc.Suites[0]
	failed := 0
	for _, c := range s.Cases {
		if c.Failure != nil {
			failed++
			if c.Failure.Message == "" || c.Failure.Text == "" {
				t.Errorf("%s: test case %q fails without a message or output", path, c.Name)
			}
		}
	}
	if len(s.Cases) != tests || s.Tests != tests || failed != failures || s.Failures != failures {
		t.Errorf("%s: %d test cases (tests=%d), %d failing (failures=%d); want %d and %d", path, len(s.Cases), s.Tests, failed, s.Failures, tests, failures)
	}
}

// TestCrashtestPresetExt4: --check ext4 replays ext4's journal before
// e2fsck -fn, so the explored states of the kernel captures pass (e2fsck
// -fn alone fails them, see TestCrashtestShardsMerge); and it still finds
// an ordering bug planted in the replay: the window of a jbd2 transaction's
// journal blocks (or one of them) moved across the barriers after its
// commit block, which fails at the commit.
func TestCrashtestPresetExt4(t *testing.T) {
	prereq.Root(t) // the check device is a loop device
	prereq.Tool(t, "e2fsck", "e2fsprogs")
	for _, name := range []string{"fsync-marks-512", "fsync-marks-4096"} {
		t.Run(name, func(t *testing.T) {
			kj := loadKernelTestdata(t, name)
			r := logship(t, "crashtest", kj.journal, "--check", "ext4", "--from-mark", "mkfs", "--explore", "3",
				"--json", "-q", "--workdir", t.TempDir())
			if r.code != 0 {
				t.Fatalf("exit %d:\n%s", r.code, r.stderr)
			}
			if _, sum := stateKeys(t, r.stdout); sum.Explored == 0 {
				t.Errorf("no explored states: %+v", sum)
			}
		})
	}
	kj := loadKernelTestdata(t, "fsync-marks-512")
	es := kernelEntries(t, kj.journal)
	// The first transaction after the mark step2: its journal blocks, the
	// flush, the commit block (FUA), then a mark.
	var commit, block int64 = -1, -1
	for _, e := range es[markIndex(t, es, "step2"):] {
		if e.IsWrite() && e.Flags&journal.FlagFUA != 0 {
			commit = e.Index
			break
		}
		if e.IsWrite() && !e.IsBarrier() {
			block = e.Index
		}
	}
	if commit < 0 || block < 0 || !es[commit+1].IsBarrier() {
		t.Fatalf("journal layout: commit block %d, journal block %d", commit, block)
	}
	// One journal block moved across the commit: the replay of the
	// transaction copies a stale block, at the commit.
	r := logship(t, "crashtest", kj.journal, "--check", "ext4", "--from-mark", "mkfs", "--explore", "3",
		"--fault", fmt.Sprintf("delay:%d:%d", block, commit+1), "-q", "--workdir", t.TempDir())
	want := fmt.Sprintf("logship crashtest: entry %d (", commit)
	if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "e2fsck -fn") {
		t.Errorf("a journal block moved past its commit: exit %d, stderr:\n%s\nwant exit 1 and %q", r.code, r.stderr, want)
	}
	// The window after the mark step5 (a transaction's journal blocks and
	// checkpoint writes) moved across three barriers: its old metadata
	// lands over newer, which e2fsck finds once no later transaction
	// replays over it. (Moving a window by one barrier, or a transaction
	// up to its commit whole, leaves an older but consistent file system:
	// ext4 is right to pass that, a manifest would catch it.)
	var barriers []int64
	for _, e := range es {
		if e.IsBarrier() {
			barriers = append(barriers, e.Index)
		}
	}
	first := markIndex(t, es, "step5") + 1
	k, _ := slices.BinarySearch(barriers, first)
	until := barriers[k+3]
	r = logship(t, "crashtest", kj.journal, "--check", "ext4", "--from-mark", "mkfs", "--json", "--keep-going",
		"--fault", fmt.Sprintf("delaywindow:%d:%d", first, until), "-q", "--workdir", t.TempDir())
	keys, sum := stateKeys(t, r.stdout)
	if r.code != 1 || sum.Failed == 0 {
		t.Fatalf("the window after step5 moved to entry %d: exit %d, %d failed, stderr:\n%s\nwant exit 1", until, r.code, sum.Failed, r.stderr)
	}
	for _, key := range keys {
		var rec pointJSON
		json.Unmarshal([]byte(key), &rec)
		if rec.Failed() && rec.Entry < barriers[k] {
			t.Errorf("state %s at entry %d fails before the moved window's barrier", rec.Label(), rec.Entry)
		}
	}
}
