package main

// Tests of `logship replay-log`, through the built binary, on the committed
// kernel captures (journal/testdata/kernel). Every expected answer comes
// from the rules written down in docs/xfstests.md, applied here to the
// entries package journal reads: rlRuleStop, rlRuleImage, rlRuleChecks.

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/logship/logship/journal"
)

// rlCapture is a committed kernel capture, decompressed, with its entries.
type rlCapture struct {
	kernelJournal
	name    string
	j       []byte
	entries []journal.Entry
	ss      int64
}

func loadRLCapture(t *testing.T, name string) rlCapture {
	t.Helper()
	return rlCaptureOf(t, name, loadKernelTestdata(t, name))
}

// rlCaptureOf reads the entries of a captured journal.
func rlCaptureOf(t *testing.T, name string, kj kernelJournal) rlCapture {
	t.Helper()
	c := rlCapture{kernelJournal: kj, name: name}
	var err error
	if c.j, err = os.ReadFile(c.journal); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(c.journal)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := journal.NewReader(f, int64(len(c.j)))
	if err != nil {
		t.Fatal(err)
	}
	c.ss = int64(r.SectorSize())
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		c.entries = append(c.entries, e)
	}
	return c
}

func rlCaptures(t *testing.T) []rlCapture {
	return []rlCapture{loadRLCapture(t, "fsync-marks-512"), loadRLCapture(t, "fsync-marks-4096")}
}

// mark is the index of the first mark labelled label.
func (c rlCapture) mark(t *testing.T, label string) int {
	t.Helper()
	for _, e := range c.entries {
		if e.IsMark() && e.Label == label {
			return int(e.Index)
		}
	}
	t.Fatalf("%s: no mark %q", c.name, label)
	return -1
}

// rlStop is a stop condition as replay-log's options give it.
type rlStop struct {
	limit      int
	endMark    string
	flush, fua bool
}

// rlRuleStop is the rule of a walk's end: from entry start, the first entry
// that is the limit-th walked, or, with an end mark, the first mark with that
// label (flush and FUA entries then stop nothing: rule 1), or, without one,
// the first FLUSH (--next-flush) or FUA (--next-fua) entry. -1: none.
func (c rlCapture) rlRuleStop(start int, s rlStop) int {
	for i := start; i < len(c.entries); i++ {
		e := c.entries[i]
		switch {
		case s.limit > 0 && i-start+1 == s.limit:
			return i
		case s.endMark != "":
			if e.IsMark() && e.Label == s.endMark {
				return i
			}
		case s.flush && e.Flags&journal.FlagFlush != 0, s.fua && e.Flags&journal.FlagFUA != 0:
			return i
		}
	}
	return -1
}

// rlImageOpts are the options that change what a replay writes.
type rlImageOpts struct {
	noDiscard              bool
	startSector, endSector uint64 // endSector 0: no bound
}

// rlRuleImage applies entries [from, to] to img in order: a write copies its
// payload unless it lies wholly before startSector or begins after
// endSector (a straddling write is written whole); a discard writes zeros
// (a regular file refuses BLKDISCARD, and these are under 128 MiB) unless
// noDiscard, and the sector bounds never skip it.
func (c rlCapture) rlRuleImage(img []byte, from, to int, o rlImageOpts) {
	for _, e := range c.entries[from : to+1] {
		switch {
		case e.IsMark() || e.NrSectors == 0:
		case e.IsDiscard():
			if !o.noDiscard {
				clear(img[e.Start():e.End()])
			}
		case e.Sector+e.NrSectors <= o.startSector, o.endSector != 0 && e.Sector > o.endSector:
		default:
			copy(img[e.Start():e.End()], c.j[e.PayloadOffset():e.NextOffset()])
		}
	}
}

// rlRuleChecks lists the entries after which --check MODE runs the fsck
// command in a replay of [from, to]: the check points among the entries
// replayed, the last one included only if it is a check point (rule 2).
func (c rlCapture) rlRuleChecks(from, to int, mode string, every int) []int {
	var at []int
	for i := from; i <= to; i++ {
		e := c.entries[i]
		var hit bool
		switch mode {
		case "fua":
			hit = e.Flags&journal.FlagFUA != 0
		case "flush":
			hit = e.Flags&journal.FlagFlush != 0
		case "discard":
			hit = e.IsDiscard()
		case "N":
			hit = (i-from+1)%every == 0
		}
		if hit {
			at = append(at, i)
		}
	}
	return at
}

// zeroTarget makes a sparse target of the capture's data disk size.
// It lives in memory (/dev/shm) where there is one: replay-log fsyncs the
// target at every check and at the end, which on a busy disk costs more
// than the rest of a test.
func (c rlCapture) zeroTarget(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "logship-test"); err == nil {
		dir = d
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	p := filepath.Join(dir, "target.img")
	sparseFile(t, p, c.size)
	return p
}

// stateCopies returns an --fsck command that keeps a sparse copy of target
// each time it runs, and a function that lists the copies in the order they
// were made.
func stateCopies(t *testing.T, target string) (string, func() []string) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(target), "states")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := fmt.Sprintf("cp --sparse=always %s %s/$(ls %s | wc -l)", target, dir, dir)
	return cmd, func() []string {
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		paths := make([]string, len(des))
		for _, de := range des {
			n, err := strconv.Atoi(de.Name())
			if err != nil || n >= len(paths) {
				t.Fatalf("unexpected state copy %s", de.Name())
			}
			paths[n] = filepath.Join(dir, de.Name())
		}
		return paths
	}
}

func replayLogRun(t *testing.T, args ...string) result {
	t.Helper()
	return logship(t, append([]string{"replay-log"}, args...)...)
}

func md5Hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// image returns buf, cleared, as an image of the capture's data disk,
// allocating it on first use: the tests compare many 64 MiB images, and a
// fresh buffer each time costs more (page faults) than the replays.
func (c rlCapture) image(buf *[]byte) []byte {
	if int64(len(*buf)) != c.size {
		*buf = make([]byte, c.size)
	}
	clear(*buf)
	return *buf
}

// fileIs reports whether the file at path holds exactly want (false if it
// cannot be read), reading it a MiB at a time.
func fileIs(path string, want []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for off := 0; ; {
		n, err := io.ReadFull(f, buf)
		if n > len(want)-off || !bytes.Equal(buf[:n], want[off:off+n]) {
			return false
		}
		off += n
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return off == len(want)
		case err != nil:
			return false
		}
	}
}

func TestReplayLogInfo(t *testing.T) {
	t.Parallel()
	link := filepath.Join(t.TempDir(), "replay-log")
	if err := os.Symlink(logshipBin, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range rlCaptures(t) {
		n := len(c.entries)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{nil, fmt.Sprintf("Log version=1, sectorsize=%d, entries=%d\n", c.ss, n)},
			{[]string{"--num-entries"}, fmt.Sprintf("%d\n", n)},
			{[]string{"--number-entries"}, fmt.Sprintf("%d\n", n)},
			// The count is the superblock's, whatever the start.
			{[]string{"--num-entries", "--start-mark", "step3"}, fmt.Sprintf("%d\n", n)},
		} {
			args := append([]string{"--log", c.journal}, tc.args...)
			res := replayLogRun(t, args...)
			if res.code != 0 || res.stdout != tc.want || res.stderr != "" {
				t.Errorf("%s: replay-log %q = %q, %q, exit %d; want %q", c.name, tc.args, res.stdout, res.stderr, res.code, tc.want)
			}
			// The binary run through a link named replay-log answers the same.
			out, err := runLink(link, args...)
			if err != nil || out != tc.want {
				t.Errorf("%s: the replay-log link with %q = %q, %v; want %q", c.name, tc.args, out, err, tc.want)
			}
		}
	}
}

func TestReplayLogFind(t *testing.T) {
	t.Parallel()
	for _, c := range rlCaptures(t) {
		step3 := c.mark(t, "step3")
		for _, tc := range []struct {
			args  []string
			start int
			stop  rlStop
		}{
			{[]string{"--end-mark", "mkfs"}, 0, rlStop{endMark: "mkfs"}},
			{[]string{"--end-mark", "step7"}, 0, rlStop{endMark: "step7"}},
			{[]string{"--next-flush"}, 0, rlStop{flush: true}},
			{[]string{"--next-fua", "--start-entry", "100"}, 100, rlStop{fua: true}},
			{[]string{"--next-fua", "--start-entry", fmt.Sprint(step3)}, step3, rlStop{fua: true}},
			{[]string{"--limit", "10", "--start-entry", "5"}, 5, rlStop{limit: 10}},
			{[]string{"--start-mark", "step3", "--next-fua"}, step3 + 1, rlStop{fua: true}},
			{[]string{"--start-mark", "step3", "--limit", "1"}, step3 + 1, rlStop{limit: 1}},
			// Difference 1: with an end mark, flush and FUA entries do not stop.
			{[]string{"--next-flush", "--end-mark", "step3"}, 0, rlStop{flush: true, endMark: "step3"}},
			{[]string{"--next-fua", "--next-flush", "--end-mark", "step9"}, 0, rlStop{fua: true, flush: true, endMark: "step9"}},
			{[]string{"--limit", "30", "--next-fua", "--end-mark", "step9"}, 0, rlStop{limit: 30, fua: true, endMark: "step9"}},
		} {
			want := c.rlRuleStop(tc.start, tc.stop)
			res := replayLogRun(t, append([]string{"--find", "--log", c.journal}, tc.args...)...)
			e := c.entries[want]
			if w := fmt.Sprintf("%d@%d\n", want, e.NextOffset()/c.ss); res.code != 0 || res.stdout != w {
				t.Errorf("%s: --find %q = %q (exit %d, %q), want %q", c.name, tc.args, res.stdout, res.code, res.stderr, w)
			}
		}
		// The first flush comes long before step3: the rule did stop at the mark.
		if first := c.rlRuleStop(0, rlStop{flush: true}); first >= step3 {
			t.Fatalf("%s: the first flush (%d) is not before step3 (%d): difference 1 untested", c.name, first, step3)
		}

		// Failures: exit 1 with replay-log's message, nothing on stdout.
		n := len(c.entries)
		for _, tc := range []struct {
			args []string
			msg  string
		}{
			{[]string{"--end-mark", "nosuch"}, "Couldn't find entry\n"},
			{[]string{"--next-fua", "--start-entry", fmt.Sprint(n - 1)}, "Couldn't find entry\n"},
			{[]string{"--next-fua", "--start-entry", fmt.Sprint(n)}, "Invalid entry number\n"},
			{[]string{"--next-fua", "--start-mark", "nosuch"}, "Couldn't find starting mark\n"},
			{nil, "Couldn't find entry\n"}, // no stop condition: walks to the end
		} {
			res := replayLogRun(t, append([]string{"--find", "--log", c.journal}, tc.args...)...)
			if res.code != 1 || res.stdout != "" || res.stderr != tc.msg {
				t.Errorf("%s: --find %q = %q, %q, exit %d; want exit 1 and %q", c.name, tc.args, res.stdout, res.stderr, res.code, tc.msg)
			}
		}
	}
}

func TestReplayLogReplay(t *testing.T) {
	t.Parallel()
	var buf []byte
	for _, c := range rlCaptures(t) {
		last := len(c.entries) - 1
		step3, step5 := c.mark(t, "step3"), c.mark(t, "step5")
		for _, tc := range []struct {
			args     []string
			from, to int
			o        rlImageOpts
		}{
			{nil, 0, last, rlImageOpts{}},
			{[]string{"--end-mark", "step3"}, 0, step3, rlImageOpts{}},
			{[]string{"--end-mark", "nosuch"}, 0, last, rlImageOpts{}}, // replay-log replays everything, exit 0
			{[]string{"--limit", "50"}, 0, 49, rlImageOpts{}},
			{[]string{"--start-entry", "100", "--limit", "50"}, 100, 149, rlImageOpts{}},
			{[]string{"--start-mark", "step3", "--end-mark", "step5"}, step3 + 1, step5, rlImageOpts{}},
			{[]string{"--next-fua", "--start-entry", "40"}, 40, c.rlRuleStop(40, rlStop{fua: true}), rlImageOpts{}},
			{[]string{"--no-discard"}, 0, last, rlImageOpts{noDiscard: true}},
			{[]string{"--start-sector", "1000", "--end-sector", "20000"}, 0, last, rlImageOpts{startSector: 1000, endSector: 20000}},
			{[]string{"--start-sector", "0x800"}, 0, last, rlImageOpts{startSector: 0x800}},
			// Difference 1: the replay stops at the mark, not at the first flush or FUA.
			{[]string{"--next-flush", "--end-mark", "step3"}, 0, step3, rlImageOpts{}},
			{[]string{"--next-fua", "--end-mark", "step5"}, 0, step5, rlImageOpts{}},
		} {
			if c.name != "fsync-marks-512" && !slices.Contains(tc.args, "--end-mark") {
				continue // the other capture: the cases of difference 1 only, to save time
			}
			target := c.zeroTarget(t)
			res := replayLogRun(t, append([]string{"--log", c.journal, "--replay", target}, tc.args...)...)
			if res.code != 0 || res.stdout != "" || res.stderr != "" {
				t.Fatalf("%s: replay %q: exit %d, %q, %q", c.name, tc.args, res.code, res.stdout, res.stderr)
			}
			want := c.image(&buf)
			c.rlRuleImage(want, tc.from, tc.to, tc.o)
			if !fileIs(target, want) {
				t.Errorf("%s: replay %q: the image is not entries %d..%d replayed by the rules", c.name, tc.args, tc.from, tc.to)
			}
		}
		// Discards show on a target that does not start as zeros: mkfs's
		// discard of the whole disk zeroes it, unless --no-discard.
		fill := bytes.Repeat([]byte{0xa5}, 4<<20)
		var wants [2][]byte
		for k, noDiscard := range []bool{false, true} {
			target := c.zeroTarget(t)
			f, err := os.OpenFile(target, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(fill, 0)
			f.Close()
			args := []string{"--log", c.journal, "--replay", target, "--end-mark", "mkfs"}
			if noDiscard {
				args = append(args, "--no-discard")
			}
			if res := replayLogRun(t, args...); res.code != 0 {
				t.Fatalf("%s: %q: exit %d: %s", c.name, args, res.code, res.stderr)
			}
			wants[k] = make([]byte, c.size)
			copy(wants[k], fill)
			c.rlRuleImage(wants[k], 0, c.mark(t, "mkfs"), rlImageOpts{noDiscard: noDiscard})
			if !fileIs(target, wants[k]) {
				t.Errorf("%s: %q: the image is not the rules' (discards applied: %v)", c.name, args, !noDiscard)
			}
		}
		if bytes.Equal(wants[0], wants[1]) {
			t.Fatalf("%s: discards change nothing up to mkfs: --no-discard untested", c.name)
		}

		// The full replay is the data disk the kernel left.
		target := c.zeroTarget(t)
		replayLogRun(t, "--log", c.journal, "--replay", target)
		if got, _ := sha256File(t, target); got != c.sha256 {
			t.Errorf("%s: full replay-log replay differs from the captured data disk", c.name)
		}

		// A regular-file target grows as pwrite grows it: an empty file
		// ends at the last byte the replay wrote.
		empty := filepath.Join(t.TempDir(), "empty.img")
		os.WriteFile(empty, nil, 0o644)
		if res := replayLogRun(t, "--log", c.journal, "--replay", empty, "--end-mark", "step3"); res.code != 0 {
			t.Fatalf("replay onto an empty file: exit %d: %s", res.code, res.stderr)
		}
		var end int64
		for _, e := range c.entries[:step3+1] {
			if !e.IsMark() && e.NrSectors > 0 {
				end = max(end, e.End())
			}
		}
		want := c.image(&buf)
		c.rlRuleImage(want, 0, step3, rlImageOpts{})
		if !fileIs(empty, want[:end]) {
			fi, _ := os.Stat(empty)
			t.Errorf("%s: empty target grew to %v bytes (want %d), or holds other bytes", c.name, fi.Size(), end)
		}
	}
}

// TestReplayLogCheck: --check MODE --fsck CMD runs CMD at the check points
// of rule 2 and nowhere else, on the state replayed up to each one.
func TestReplayLogCheck(t *testing.T) {
	t.Parallel()
	var buf []byte
	for _, c := range rlCaptures(t) {
		last := len(c.entries) - 1
		step6 := c.mark(t, "step6")
		for _, tc := range []struct {
			args     []string
			from, to int
			mode     string
			every    int
		}{
			{[]string{"--check", "fua", "--start-mark", "step11"}, c.mark(t, "step11") + 1, last, "fua", 0},
			{[]string{"--check", "flush", "--start-mark", "step11"}, c.mark(t, "step11") + 1, last, "flush", 0},
			{[]string{"--check", "discard"}, 0, last, "discard", 0},
			{[]string{"--check", "90"}, 0, last, "N", 90},
			{[]string{"--check", "0x10", "--start-entry", "7", "--limit", "40"}, 7, 46, "N", 16},
			// Difference 2: an early stop that is no check point gets no check.
			{[]string{"--check", "fua", "--start-mark", "step4", "--end-mark", "step6"}, c.mark(t, "step4") + 1, step6, "fua", 0},
			{[]string{"--check", "flush", "--start-mark", "step4", "--limit", "21"}, c.mark(t, "step4") + 1, c.mark(t, "step4") + 21, "flush", 0},
			{[]string{"--check", "30", "--limit", "80"}, 0, 79, "N", 30},
		} {
			early := slices.Contains(tc.args, "--end-mark") || slices.Contains(tc.args, "--limit")
			if c.name != "fsync-marks-4096" && !early {
				continue // the other capture: the cases of difference 2 only, to save time
			}
			target := c.zeroTarget(t)
			fsck, states := stateCopies(t, target)
			args := append([]string{"--log", c.journal, "--replay", target, "--fsck", fsck}, tc.args...)
			if res := replayLogRun(t, args...); res.code != 0 {
				t.Fatalf("%s: %q: exit %d: %s", c.name, tc.args, res.code, res.stderr)
			}
			got := states()
			at := c.rlRuleChecks(tc.from, tc.to, tc.mode, tc.every)
			if len(at) == 0 && tc.mode != "discard" {
				t.Fatalf("%s: %q: no check point in %d..%d: the case tests nothing", c.name, tc.args, tc.from, tc.to)
			}
			if len(got) != len(at) {
				t.Errorf("%s: %q ran the check %d times, want %d (after entries %v)", c.name, tc.args, len(got), len(at), at)
				continue
			}
			img := c.image(&buf)
			prev := tc.from
			for k, i := range at {
				c.rlRuleImage(img, prev, i, rlImageOpts{})
				prev = i + 1
				if !fileIs(got[k], img) {
					t.Errorf("%s: %q: check %d (after entry %d) saw another state", c.name, tc.args, k, i)
				}
			}
		}

		// A failing check stops the replay at the first check point: exit 1.
		target := c.zeroTarget(t)
		first := c.rlRuleChecks(0, last, "fua", 0)[0]
		res := replayLogRun(t, "--log", c.journal, "--replay", target, "--check", "fua", "--fsck", "exit 3")
		if want := fmt.Sprintf("Fsck errored out on entry %d\n", first); res.code != 1 || res.stderr != want {
			t.Errorf("%s: failing check: exit %d, %q; want 1, %q", c.name, res.code, res.stderr, want)
		}
		img := c.image(&buf)
		c.rlRuleImage(img, 0, first, rlImageOpts{})
		if !fileIs(target, img) {
			t.Errorf("%s: a failing check at %d left another state than entries 0..%d", c.name, first, first)
		}
	}
}

// runLink runs the replay-log link and returns its stdout.
func runLink(link string, args ...string) (string, error) {
	cmd := exec.Command(link, args...)
	out, err := cmd.Output()
	return string(out), err
}

// TestReplayLogVerbose: -v prints a line per entry written, -vv one per
// entry walked (skipped ones and, with --start-entry, the seek).
func TestReplayLogVerbose(t *testing.T) {
	t.Parallel()
	c := loadRLCapture(t, "fsync-marks-4096")
	line := func(verb string, e journal.Entry) string {
		fl := strings.ReplaceAll(e.Flags.String(), "WRITE", "NONE")
		return fmt.Sprintf("%s %d@%d: sector %d, size %d, flags 0x%x(%s)", verb, e.Index, e.PayloadOffset()/c.ss, e.Sector, e.Len(), uint64(e.Flags), fl)
	}
	skipped := func(e journal.Entry, lo, hi uint64) bool {
		return e.NrSectors != 0 && (e.Sector+e.NrSectors <= lo || e.Sector > hi)
	}
	for _, tc := range []struct {
		args   []string
		from   int
		to     int
		lo, hi uint64
		all    bool // -vv
	}{
		{[]string{"-v", "--limit", "60"}, 0, 59, 0, 1<<64 - 1, false},
		{[]string{"--verbose", "--start-sector", "2000", "--end-sector", "9000"}, 0, len(c.entries) - 1, 2000, 9000, false},
		{[]string{"-vv", "--start-sector", "2000", "--end-sector", "9000"}, 0, len(c.entries) - 1, 2000, 9000, true},
		{[]string{"-v", "-v", "--start-entry", "5", "--limit", "20"}, 5, 24, 0, 1<<64 - 1, true},
	} {
		target := c.zeroTarget(t)
		res := replayLogRun(t, append([]string{"--log", c.journal, "--replay", target}, tc.args...)...)
		if res.code != 0 {
			t.Fatalf("%q: exit %d: %s", tc.args, res.code, res.stderr)
		}
		var want []string
		if tc.all {
			for i := 0; i < tc.from; i++ {
				e := c.entries[i]
				want = append(want, fmt.Sprintf("seek entry %d@%d: %d, size %d, flags 0x%x", i, e.Offset/c.ss, e.Sector, e.NrSectors, uint64(e.Flags)))
			}
		}
		refused := false
		for _, e := range c.entries[tc.from : tc.to+1] {
			switch {
			case !skipped(e, tc.lo, tc.hi):
				want = append(want, line("replaying", e))
			case tc.all:
				want = append(want, line("skipping", e))
			}
			// A discard is applied even when "skipping"; the first one a
			// regular file refuses (BLKDISCARD) says so.
			if e.IsDiscard() && !refused {
				want = append(want, "replay device doesn't support discard, switching to writing zeros")
				refused = true
			}
		}
		got := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
		if !slices.Equal(got, want) {
			t.Errorf("%q: %d lines, want %d; first lines:\n%s\nwant:\n%s", tc.args, len(got), len(want),
				strings.Join(got[:min(3, len(got))], "\n"), strings.Join(want[:min(3, len(want))], "\n"))
		}
	}
	// --find -vv prints the walk before the answer.
	res := replayLogRun(t, "--log", c.journal, "--find", "-vv", "--limit", "2")
	e0, e1 := c.entries[0], c.entries[1]
	want := fmt.Sprintf("seek entry 0@%d: %d, size %d, flags 0x%x(%s)\nseek entry 1@%d: %d, size %d, flags 0x%x(%s)\n1@%d\n",
		e0.PayloadOffset()/c.ss, e0.Sector, e0.NrSectors, uint64(e0.Flags), strings.ReplaceAll(e0.Flags.String(), "WRITE", "NONE"),
		e1.PayloadOffset()/c.ss, e1.Sector, e1.NrSectors, uint64(e1.Flags), strings.ReplaceAll(e1.Flags.String(), "WRITE", "NONE"),
		e1.NextOffset()/c.ss)
	if res.stdout != want {
		t.Errorf("--find -vv --limit 2 = %q, want %q", res.stdout, want)
	}
}
