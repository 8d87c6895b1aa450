package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestNativeParity: where the options of `logship replay` and `inspect`
// overlap with replay-log's, they give replay-log's answers.
func TestNativeParity(t *testing.T) {
	t.Parallel()
	for _, c := range rlCaptures(t) {
		step3 := c.mark(t, "step3")
		// inspect --find answers as replay-log --find.
		for _, args := range [][]string{
			{"--end-mark", "step4"},
			{"--next-fua", "--start-entry", "100"},
			{"--next-flush", "--start-entry", fmt.Sprint(step3)},
			{"--limit", "10", "--start-entry", "5"},
			{"--start-mark", "step3", "--next-fua"},
			{"--next-flush", "--end-mark", "step3"},               // difference 1
			{"--next-fua", "--next-flush", "--end-mark", "step8"}, // difference 1
			{"--end-mark", "nosuch"},
		} {
			rl := replayLogRun(t, append([]string{"--find", "--log", c.journal}, args...)...)
			in := logship(t, append([]string{"inspect", "--find", c.journal}, args...)...)
			if rl.stdout != in.stdout || rl.code != in.code {
				t.Errorf("%s: --find %q: replay-log %q (exit %d), inspect %q (exit %d)", c.name, args, rl.stdout, rl.code, in.stdout, in.code)
			}
		}

		// replay writes what replay-log writes, and checks where it checks.
		for _, args := range [][]string{
			{"--end-mark", "step3"},
			{"--limit", "77"},
			{"--start-entry", "120", "--limit", "40"},
			{"--start-mark", "step2", "--end-mark", "step6"},
			{"--no-discard"},
			{"--next-fua", "--start-entry", "60"},
			{"--next-flush", "--end-mark", "step4"},                        // difference 1
			{"--check", "fua", "--end-mark", "step5"},                      // difference 2
			{"--check", "flush", "--start-mark", "step6", "--limit", "17"}, // difference 2
			{"--check", "25", "--start-entry", "3", "--limit", "90"},       // difference 2
			{"--check", "discard", "--next-fua", "--start-mark", "step1"},  // difference 2
		} {
			if c.name != "fsync-marks-4096" {
				break // one capture is enough for the replays, which take time
			}
			states := func(run func(target, fsck string) result) ([]string, string, result) {
				target := c.zeroTarget(t)
				fsck, list := stateCopies(t, target)
				res := run(target, fsck)
				return list(), target, res
			}
			withFsck := func(target, fsck string) []string {
				a := append([]string(nil), args...)
				if a[0] == "--check" {
					a = append(a, "--fsck", fsck)
				}
				return a
			}
			rlSums, rlImg, rl := states(func(target, fsck string) result {
				return replayLogRun(t, append([]string{"--log", c.journal, "--replay", target}, withFsck(target, fsck)...)...)
			})
			nSums, nImg, n := states(func(target, fsck string) result {
				return logship(t, append(append([]string{"replay", "-q"}, withFsck(target, fsck)...), c.journal, target)...)
			})
			if rl.code != 0 || n.code != 0 {
				t.Fatalf("%s: %q: replay-log exit %d (%s), replay exit %d (%s)", c.name, args, rl.code, rl.stderr, n.code, n.stderr)
			}
			if same, err := sameFiles(rlImg, nImg); err != nil || !same {
				t.Errorf("%s: %q: replay and replay-log leave different images", c.name, args)
			}
			if len(rlSums) != len(nSums) {
				t.Errorf("%s: %q: replay-log ran the check %d times, replay %d", c.name, args, len(rlSums), len(nSums))
				continue
			}
			for k := range rlSums {
				if same, err := sameFiles(rlSums[k], nSums[k]); err != nil || !same {
					t.Errorf("%s: %q: check %d ran on another state in replay than in replay-log", c.name, args, k)
				}
			}
		}
	}
}

// TestNativeRefusals: where replay-log's answer is a trap, replay refuses
// with exit 3 and leaves the target as it was.
func TestNativeRefusals(t *testing.T) {
	t.Parallel()
	c := loadRLCapture(t, "fsync-marks-512")
	before := bytes.Repeat([]byte{0x5a}, 1<<20)
	var buf []byte
	untouched := c.image(&buf) // the target as written: before, then zeros
	copy(untouched, before)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--end-mark", "nosuch"}, `mark not found: --end-mark "nosuch"`},
		{[]string{"--start-mark", "step9", "--end-mark", "step3"}, `mark not found: --end-mark "step3"`}, // only before the start
		{[]string{"--start-mark", "nosuch"}, "mark not found"},
		{[]string{"--start-entry", fmt.Sprint(len(c.entries))}, "out of range"},
	} {
		target := c.zeroTarget(t)
		if err := os.WriteFile(target, before, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Truncate(target, c.size)
		res := logship(t, append(append([]string{"replay"}, tc.args...), c.journal, target)...)
		if res.code != 3 || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("replay %q: exit %d, %q; want exit 3 and %q", tc.args, res.code, res.stderr, tc.msg)
		}
		if !fileIs(target, untouched) {
			t.Errorf("replay %q touched the target", tc.args)
		}
		// replay-log, for the record, replays everything and exits 0 on the first.
	}
	if res := replayLogRun(t, "--log", c.journal, "--replay", c.zeroTarget(t), "--end-mark", "nosuch"); res.code != 0 {
		t.Errorf("replay-log --end-mark nosuch: exit %d, want 0 (replay-log's answer)", res.code)
	}
}

// TestInspectSelection: inspect's selection flags apply to the listing and
// to --windows, not only to --find.
func TestInspectSelection(t *testing.T) {
	t.Parallel()
	c := loadRLCapture(t, "fsync-marks-4096")
	step3, step5 := c.mark(t, "step3"), c.mark(t, "step5")
	for _, tc := range []struct {
		args     []string
		from, to int
		code     int
	}{
		{nil, 0, len(c.entries) - 1, 0},
		{[]string{"--start-entry", "10", "--limit", "25"}, 10, 34, 0},
		{[]string{"--start-mark", "step3", "--end-mark", "step5"}, step3 + 1, step5, 0},
		{[]string{"--next-fua", "--start-entry", "50"}, 50, c.rlRuleStop(50, rlStop{fua: true}), 0},
		{[]string{"--next-flush", "--end-mark", "step5"}, 0, step5, 0},
		{[]string{"--start-entry", "200", "--end-mark", "nosuch"}, 200, len(c.entries) - 1, 3},
	} {
		// The listing: one JSON object per entry selected.
		res := logship(t, append([]string{"inspect", "--json", c.journal}, tc.args...)...)
		var idx []int
		for _, l := range strings.Split(strings.TrimSpace(res.stdout), "\n")[1:] {
			var m struct{ Index int }
			json.Unmarshal([]byte(l), &m)
			idx = append(idx, m.Index)
		}
		if res.code != tc.code || len(idx) != tc.to-tc.from+1 || idx[0] != tc.from || idx[len(idx)-1] != tc.to {
			t.Errorf("inspect %q: exit %d, entries %d..%d (%d); want exit %d, %d..%d",
				tc.args, res.code, idx[0], idx[len(idx)-1], len(idx), tc.code, tc.from, tc.to)
		}
		// --windows: the windows cover the same entries.
		res = logship(t, append([]string{"inspect", "--windows", "--json", c.journal}, tc.args...)...)
		first, last, total := -1, -1, 0
		for _, l := range strings.Split(strings.TrimSpace(res.stdout), "\n")[1:] {
			var m struct{ First, Last, Entries int }
			json.Unmarshal([]byte(l), &m)
			if first < 0 {
				first = m.First
			}
			last, total = m.Last, total+m.Entries
		}
		if res.code != tc.code || first != tc.from || last != tc.to || total != tc.to-tc.from+1 {
			t.Errorf("inspect --windows %q: exit %d, windows over %d..%d (%d entries); want %d..%d",
				tc.args, res.code, first, last, total, tc.from, tc.to)
		}
	}
}
