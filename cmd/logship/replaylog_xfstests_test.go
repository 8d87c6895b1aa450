package main

// A harness that drives `logship replay-log` as xfstests' common/dmlogwrites
// drives replay-log for generic/482 (find the next FUA from the mark mkfs,
// replay up to it with -vv, check the file system, repeat from the entry
// after it) and generic/455 (find a mark, replay to it, check the files the
// workload recorded there and the file system). The shell below issues the
// same command lines as those helpers, through a link named replay-log; the
// Go side checks what it saw against the rules of docs/xfstests.md.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/logship/logship/fixtures/prereq"
	"github.com/logship/logship/journal"
)

// xfstestsHarness is run by bash with RL (the replay-log link), LOG, DEV
// (the replay target), MANIFEST, OUT (what the Go side checks), FULL (the
// equivalent of $seqres.full) and TMP set.
const xfstestsHarness = `
set -u
fail() { echo "FAIL $*" >> "$OUT"; exit 1; }

# common/dmlogwrites, the helpers generic/482 and 455 call.
mark_to_entry_number() {
	local r
	r=$("$RL" --find --log "$LOG" --end-mark "$1" 2> /dev/null)
	[ -z "$r" ] && return
	echo "$r" | cut -f1 -d@
}
find_next_fua() {
	local r
	r=$("$RL" --find --log "$LOG" --next-fua --start-entry "${1:-0}" 2> /dev/null)
	[ -z "$r" ] && return
	echo "$r" | cut -f1 -d@
}
replay_log_range() {
	echo "=== replay to $1 ===" >> "$FULL"
	"$RL" -vv --log "$LOG" --replay "$2" --limit $(($1 + 1)) >> "$FULL" 2>&1 || fail "replay to $1"
}
replay_log() {
	"$RL" --log "$LOG" --find --end-mark "$1" >> "$FULL" 2>&1 || fail "mark '$1' does not exist"
	"$RL" --log "$LOG" --replay "$2" --end-mark "$1" >> "$FULL" 2>&1 || fail "replay to mark $1"
}
# What mounting does to ext4 before the check: recover its journal (on a
# copy, so that the replay target stays the replayed state).
recovered_copy() {
	cp --sparse=always "$1" "$TMP/fs.img" || fail "copy"
	e2fsck -p -E journal_only "$TMP/fs.img" > /dev/null 2>&1
}
check_fs() {
	e2fsck -fn "$TMP/fs.img" >> "$FULL" 2>&1 || fail "e2fsck at $1"
}

# generic/482
prev=$(mark_to_entry_number mkfs)
[ -z "$prev" ] && fail "failed to locate entry mark 'mkfs'"
cur=$(find_next_fua $prev)
[ -z "$cur" ] && fail "could not locate any FUA write"
while [ -n "$cur" ]; do
	replay_log_range $cur "$DEV"
	echo "FUA $cur $(md5sum < "$DEV" | cut -c1-32)" >> "$OUT"
	recovered_copy "$DEV"
	check_fs "entry $cur"
	prev=$cur
	cur=$(find_next_fua $(($cur + 1)))
done

# generic/455: replay to each mark of the manifest, check its files.
last=
while read -r _ mark path sum; do
	if [ "$mark" != "$last" ]; then
		[ -n "$last" ] && check_fs "mark $last"
		replay_log "$mark" "$DEV"
		recovered_copy "$DEV"
		last=$mark
	fi
	got=$(debugfs -R "cat $path" "$TMP/fs.img" 2> /dev/null | md5sum | cut -c1-32)
	echo "FILE $mark $path $got $sum" >> "$OUT"
done < "$MANIFEST"
[ -n "$last" ] && check_fs "mark $last"
echo DONE >> "$OUT"
`

// runXfstestsHarness runs the harness on c, replaying onto dev (a file or a
// block device of c.size bytes, all zeros), and checks its answers.
func runXfstestsHarness(t *testing.T, c rlCapture, dev string) {
	t.Helper()
	for tool, pkg := range map[string]string{"bash": "bash", "e2fsck": "e2fsprogs", "debugfs": "e2fsprogs", "md5sum": "coreutils"} {
		prereq.Tool(t, tool, pkg)
	}
	dir := t.TempDir()
	link := filepath.Join(dir, "replay-log")
	if err := os.Symlink(logshipBin, link); err != nil {
		t.Fatal(err)
	}
	out, full := filepath.Join(dir, "out"), filepath.Join(dir, "full")
	cmd := exec.Command("bash", "-c", xfstestsHarness)
	cmd.Env = append(os.Environ(), "RL="+link, "LOG="+c.journal, "DEV="+dev, "MANIFEST="+c.manifest,
		"OUT="+out, "FULL="+full, "TMP="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		o, _ := os.ReadFile(out)
		t.Fatalf("%s: harness: %v\n%s\n%s", c.name, err, b, o)
	}

	// The generic/482 loop visits every FUA entry from the mark mkfs on,
	// in order, and each state is entries 0..N replayed.
	mkfs := c.mark(t, "mkfs")
	var fuas []int
	for _, e := range c.entries[mkfs:] {
		if e.Flags&journal.FlagFUA != 0 {
			fuas = append(fuas, int(e.Index))
		}
	}
	img := make([]byte, c.size)
	next, visited, files := 0, 0, 0
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	done := false
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		switch w[0] {
		case "FUA":
			n, _ := strconv.Atoi(w[1])
			if visited >= len(fuas) || n != fuas[visited] {
				t.Fatalf("%s: the generic/482 loop visited entry %d as FUA point %d; the FUA entries from mkfs on are %v", c.name, n, visited, fuas)
			}
			c.rlRuleImage(img, next, n, rlImageOpts{})
			next = n + 1
			if md5Hex(img) != w[2] {
				t.Errorf("%s: state at FUA entry %d is not entries 0..%d replayed", c.name, n, n)
			}
			visited++
		case "FILE":
			if w[3] != w[4] {
				t.Errorf("%s: at mark %s, %s has md5 %s, the workload saw %s", c.name, w[1], w[2], w[3], w[4])
			}
			files++
		case "DONE":
			done = true
		default:
			t.Errorf("%s: harness: %s", c.name, sc.Text())
		}
	}
	if visited != len(fuas) || !done || files == 0 {
		t.Errorf("%s: harness visited %d of %d FUA points, checked %d files, finished %v", c.name, visited, len(fuas), files, done)
	}

	// Each -vv replay of the range printed one line per entry replayed.
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range strings.Split(string(b), "=== replay to ")[1:] {
		n, _ := strconv.Atoi(sec[:strings.IndexByte(sec, ' ')])
		if got := strings.Count(sec, "\nreplaying "); got != n+1 {
			t.Errorf("%s: -vv replay to %d printed %d replaying lines, want %d", c.name, n, got, n+1)
			break
		}
	}
	t.Logf("%s: generic/482 loop over %d FUA points, generic/455 checks of %d files", c.name, visited, files)
}

// TestReplayLogXfstests runs the harness on the committed captures: onto a
// regular file, and onto a loop device (BLKDISCARD, as on xfstests' dm-thin
// volume).
func TestReplayLogXfstests(t *testing.T) {
	if testing.Short() {
		t.Skip("runs e2fsck and debugfs at every point, and needs root for the loop device")
	}
	t.Run("file", func(t *testing.T) {
		c := loadRLCapture(t, "fsync-marks-512")
		runXfstestsHarness(t, c, c.zeroTarget(t))
	})
	t.Run("loop", func(t *testing.T) {
		c := loadRLCapture(t, "fsync-marks-4096")
		runXfstestsHarness(t, c, blkLoop(t, c.size).Path())
	})
}
