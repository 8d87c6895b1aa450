package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// writeJournal generates a random journal into dir and returns its path,
// bytes and the sequential replay of it onto zeros.
func writeJournal(t *testing.T, dir string, wl fixtures.Workload) (string, []byte, []byte) {
	t.Helper()
	j, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("j-%d-%d.log", wl.SectorSize, wl.Seed))
	if err := os.WriteFile(p, j, 0o644); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, wl.DeviceSize)
	if err := fixtures.ReplaySequential(j, img, -1); err != nil {
		t.Fatal(err)
	}
	return p, j, img
}

func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestInspect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wl := fixtures.DefaultWorkload(3, 512)
	wl.Mark = 0.1
	p, j, _ := writeJournal(t, dir, wl)
	r, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	var entries []journal.Entry
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}

	res := logship(t, "inspect", p)
	if res.code != 0 {
		t.Fatalf("inspect: exit %d: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stdout, fmt.Sprintf("sector size 512, %d entries", wl.Entries)) {
		t.Errorf("no superblock line in:\n%.300s", res.stdout)
	}
	e := entries[17]
	line := fmt.Sprintf("%10d %14d %12d %8d  %s", e.Index, e.Offset, e.Sector, e.NrSectors, e.Flags)
	if !strings.Contains(res.stdout, line) {
		t.Errorf("entry 17 line %q missing", line)
	}

	// --json: one object per line, a superblock then every entry.
	res = logship(t, "inspect", "--json", p)
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	var n int
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", n, err)
		}
		if n > 0 {
			e := entries[n-1]
			if m["type"] != "entry" || int64(m["index"].(float64)) != e.Index || m["flags"] != e.Flags.String() {
				t.Fatalf("json line %d = %v, want entry %+v", n, m, e)
			}
		}
		n++
	}
	if n != wl.Entries+1 {
		t.Fatalf("--json printed %d lines, want %d", n, wl.Entries+1)
	}

	// --find: the first mark, the next FUA after entry 100, the 10th entry from 5.
	var firstMark, fuaAfter journal.Entry
	for _, e := range entries {
		if e.IsMark() && firstMark.Flags == 0 {
			firstMark = e
		}
		if e.Index >= 100 && e.Flags&journal.FlagFUA != 0 && fuaAfter.Flags == 0 {
			fuaAfter = e
		}
	}
	for _, tc := range []struct {
		args []string
		want journal.Entry
	}{
		{[]string{"--end-mark", firstMark.Label}, firstMark},
		{[]string{"--next-fua", "--start-entry", "100"}, fuaAfter},
		{[]string{"--limit", "10", "--start-entry", "5"}, entries[14]},
	} {
		res := logship(t, append([]string{"inspect", "--find", p}, tc.args...)...)
		want := fmt.Sprintf("%d@%d\n", tc.want.Index, tc.want.NextOffset()/512)
		if res.code != 0 || res.stdout != want {
			t.Errorf("--find %v = %q (exit %d), want %q", tc.args, res.stdout, res.code, want)
		}
	}
	if res := logship(t, "inspect", "--find", "--end-mark", "nosuch", p); res.code != 1 {
		t.Errorf("--find of a missing mark: exit %d", res.code)
	}

	// --windows: the windows' entries add up to the journal's.
	res = logship(t, "inspect", "--windows", "--json", p)
	var total int
	for _, l := range strings.Split(strings.TrimSpace(res.stdout), "\n")[1:] {
		var m map[string]any
		json.Unmarshal([]byte(l), &m)
		total += int(m["entries"].(float64))
	}
	if total != wl.Entries {
		t.Errorf("windows hold %d entries, want %d", total, wl.Entries)
	}
}

func TestReplay(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, ss := range []int{512, 4096} {
		wl := fixtures.DefaultWorkload(5, ss)
		p, j, want := writeJournal(t, dir, wl)
		target := filepath.Join(dir, "target")
		// The default writers (two, through the page cache), one, eight.
		for _, par := range [][]string{nil, {"--parallel", "1"}, {"--parallel", "8"}} {
			sparseFile(t, target, wl.DeviceSize)
			if res := logship(t, append(append([]string{"replay"}, par...), p, target)...); res.code != 0 {
				t.Fatalf("replay %v: exit %d: %s", par, res.code, res.stderr)
			}
			got, _ := os.ReadFile(target)
			if !bytes.Equal(got, want) {
				t.Fatalf("ss=%d %v: replayed image differs from sequential replay", ss, par)
			}
		}
		if res := logship(t, "replay", "--parallel", "-1", p, target); res.code != 2 || !strings.Contains(res.stderr, "--parallel -1") {
			t.Fatalf("replay --parallel -1: exit %d, stderr %q; want a usage error", res.code, res.stderr)
		}

		// --end-mark stops at (and includes) the mark.
		r, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
		var mark journal.Entry
		for e := range r.All() {
			if e.IsMark() {
				mark = e
				break
			}
		}
		sparseFile(t, target, wl.DeviceSize)
		if res := logship(t, "replay", "--end-mark", mark.Label, p, target); res.code != 0 {
			t.Fatalf("replay --end-mark: %s", res.stderr)
		}
		want2 := make([]byte, wl.DeviceSize)
		fixtures.ReplaySequential(j, want2, mark.Index)
		got, _ := os.ReadFile(target)
		if !bytes.Equal(got, want2) {
			t.Fatalf("ss=%d: replay --end-mark %s differs", ss, mark.Label)
		}
	}
}

func TestReplayCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wl := fixtures.DefaultWorkload(8, 512)
	p, j, _ := writeJournal(t, dir, wl)
	target := filepath.Join(dir, "target")
	sparseFile(t, target, wl.DeviceSize)
	// The check command records the target's hash and the entry index at
	// every FUA: each must be the sequential state at that entry.
	logf := filepath.Join(dir, "checks")
	res := logship(t, "replay", "--check", "fua", "--fsck", `echo $LOGSHIP_ENTRY $(sha256sum < {} | cut -d" " -f1) >> `+logf, p, target)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	lines, _ := os.ReadFile(logf)
	var n int
	for _, l := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		var idx int64
		var sum string
		fmt.Sscan(l, &idx, &sum)
		want := make([]byte, wl.DeviceSize)
		fixtures.ReplaySequential(j, want, idx)
		if fmt.Sprintf("%x", sha256.Sum256(want)) != sum {
			t.Fatalf("state at check point %d differs from sequential replay", idx)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no check ran")
	}
	// A failing check: exit 1, naming the entry.
	sparseFile(t, target, wl.DeviceSize)
	res = logship(t, "replay", "--check", "5", "--fsck", "test $LOGSHIP_ENTRY -lt 12", p, target)
	if res.code != 1 || !strings.Contains(res.stderr, "fsck errored out on entry 14") {
		t.Fatalf("failing check: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestBadInput: each bad input gives a one-line error naming the file,
// entry and offset, exit 3, and leaves the target untouched.
func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wl := fixtures.DefaultWorkload(4, 512)
	_, j, _ := writeJournal(t, dir, wl)
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	corrupt := bytes.Clone(j)
	r, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	r.SeekEntry(30)
	e30, _ := r.Next()
	binary.LittleEndian.PutUint64(corrupt[e30.Offset+16:], 0x100)
	for _, tc := range []struct {
		name, journal string
		targetSize    int64
		want          []string
	}{
		{"not a journal", put("text", []byte(strings.Repeat("hello world\n", 100))), wl.DeviceSize, []string{"text", "not a dm-log-writes journal", "bad magic"}},
		{"corrupt entry", put("corrupt", corrupt), wl.DeviceSize, []string{"corrupt", "entry 30", fmt.Sprintf("offset %d", e30.Offset), "unknown flag bits 0x100"}},
		{"truncated", put("short", j[:len(j)/2]), wl.DeviceSize, []string{"short", "entry ", "unexpected EOF"}},
		{"target too small", put("ok", j), wl.DeviceSize / 2, []string{"target too small"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(dir, "target-"+strings.ReplaceAll(tc.name, " ", "-"))
			orig := bytes.Repeat([]byte{0x5a}, int(tc.targetSize))
			os.WriteFile(target, orig, 0o644)
			res := logship(t, "replay", tc.journal, target)
			if res.code != 3 {
				t.Fatalf("exit %d, want 3; stderr %q", res.code, res.stderr)
			}
			if strings.Count(res.stderr, "\n") != 1 {
				t.Errorf("error is not one line: %q", res.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr %q lacks %q", res.stderr, w)
				}
			}
			if got, _ := os.ReadFile(target); !bytes.Equal(got, orig) {
				t.Errorf("target was modified")
			}
		})
	}
}
