package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStrtoull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"", 0, true}, // strtoull converts nothing and stops at the NUL
		{"0", 0, true},
		{"42", 42, true},
		{"0x10", 16, true},
		{"0X1f", 31, true},
		{"010", 8, true},
		{"08", 0, false},
		{"0x", 0, false}, // "0" read, "x" left over
		{" 7", 7, true},
		{"+7", 7, true},
		{"-1", math.MaxUint64, true},
		{"99999999999999999999999", math.MaxUint64, true},
		{"1x", 0, false},
		{" ", 0, false},
		{"-", 0, false},
		{"7 ", 0, false},
	} {
		got, ok := strtoull(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("strtoull(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestReplayLogArgs: getopt_long's reading of the command line and
// replay-log's answers to mistakes, each with its exit status.
func TestReplayLogArgs(t *testing.T) {
	t.Parallel()
	c := loadRLCapture(t, "fsync-marks-512")
	first := func(s rlStop) string {
		i := c.rlRuleStop(0, s)
		return fmt.Sprintf("%d@%d\n", i, c.entries[i].NextOffset()/c.ss)
	}
	L := c.journal
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string // a substring
	}{
		// Abbreviations: a prefix picks the first option it matches when
		// the others it matches take the same kind of argument.
		{[]string{"--log", L, "--find", "--next"}, 0, first(rlStop{flush: true}), ""},
		{[]string{"--l", L, "--find", "--next-fu"}, 0, first(rlStop{fua: true}), ""},
		{[]string{"--lo=" + L, "--fi", "--lim=7"}, 0, first(rlStop{limit: 7}), ""},
		{[]string{"--log", L, "--find", "--end=step2"}, 0, first(rlStop{endMark: "step2"}), ""},
		{[]string{"--log", L, "--find", "--f"}, 1, "", "option '--f' is ambiguous"},
		// Words that are not options are skipped; -- ends the options.
		{[]string{"stray", "--log", L, "word", "--find", "--limit", "3"}, 0, first(rlStop{limit: 3}), ""},
		{[]string{"--log", L, "--find", "--limit", "3", "--", "--limit", "9"}, 0, first(rlStop{limit: 3}), ""},
		// Numbers are read as strtoull(s, &end, 0) reads them.
		{[]string{"--log", L, "--find", "--limit", "0x10"}, 0, first(rlStop{limit: 16}), ""},
		{[]string{"--log", L, "--find", "--limit", "010"}, 0, first(rlStop{limit: 8}), ""},
		{[]string{"--log", L, "--find", "--limit", "08"}, 1, "", "Invalid entry number\n"},
		{[]string{"--log", L, "--find", "--start-entry", "1x"}, 1, "", "Invalid entry number\n"},
		{[]string{"--log", L, "--replay", L, "--start-sector", "z"}, 1, "", "Invalid sector number\n"},
		{[]string{"--log", L, "--replay", L, "--end-sector", "-"}, 1, "", "Invalid sector number\n"},
		{[]string{"--log", L, "--find", "--limit", ""}, 1, "", "Couldn't find entry\n"}, // "" is 0: no limit
		// --check: flush, fua, discard or a positive number; with --fsck.
		{[]string{"--log", L, "--replay", L, "--check", "0", "--fsck", "true"}, 1, "", "Invalid entry number\n"},
		{[]string{"--log", L, "--replay", L, "--check", "mark", "--fsck", "true"}, 1, "", "Invalid entry number\n"},
		{[]string{"--log", L, "--replay", L, "--check", "fua"}, 1, "", "Usage: replay-log --log <logfile>"},
		{[]string{"--log", L, "--find", "--fsck", "true"}, 1, "", "Usage: replay-log"},
		// getopt's mistakes: usage, exit 1.
		{[]string{"--log", L, "--bogus"}, 1, "", "unrecognized option '--bogus'"},
		{[]string{"--log", L, "-vx"}, 1, "", "invalid option -- 'x'"},
		{[]string{"--log", L, "--find=1"}, 1, "", "option '--find' doesn't allow an argument"},
		{[]string{"--log"}, 1, "", "option '--log' requires an argument"},
		{[]string{"--find"}, 1, "", "Usage: replay-log"}, // no --log
		// Opening.
		{[]string{"--log", "/nonexistent"}, 1, "", "Couldn't open log /nonexistent: 2\n"},
		{[]string{"--log", L, "--replay", "/nonexistent/t"}, 1, "", "Couldn't open replay file /nonexistent/t: 2\n"},
		// The start is checked before anything else is done.
		{[]string{"--log", L, "--num-entries", "--start-entry", "100000"}, 1, "", "Invalid entry number\n"},
		{[]string{"--log", L, "--start-mark", "nosuch", "--check", "fua"}, 1, "", "Couldn't find starting mark\n"},
	} {
		res := replayLogRun(t, tc.args...)
		if res.code != tc.code || res.stdout != tc.stdout || !strings.Contains(res.stderr, tc.stderr) {
			t.Errorf("replay-log %q = exit %d, %q, %q; want exit %d, %q, stderr with %q",
				tc.args, res.code, res.stdout, res.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
}

// rlJournal builds a journal of 512-byte sectors from raw entry headers.
type rlHeader struct {
	sector, nr, flags, dataLen uint64
	data                       string // at byte 32
}

func rlJournal(t *testing.T, nrEntries uint64, hs ...rlHeader) string {
	t.Helper()
	b := make([]byte, 512)
	binary.LittleEndian.PutUint64(b[0:], rlMagic)
	binary.LittleEndian.PutUint64(b[8:], 1)
	binary.LittleEndian.PutUint64(b[16:], nrEntries)
	binary.LittleEndian.PutUint32(b[24:], 512)
	for _, h := range hs {
		e := make([]byte, 512)
		binary.LittleEndian.PutUint64(e[0:], h.sector)
		binary.LittleEndian.PutUint64(e[8:], h.nr)
		binary.LittleEndian.PutUint64(e[16:], h.flags)
		binary.LittleEndian.PutUint64(e[24:], h.dataLen)
		copy(e[32:], h.data)
		b = append(b, e...)
		if h.flags&rlDiscard == 0 {
			b = append(b, make([]byte, h.nr*512)...)
		}
	}
	p := filepath.Join(t.TempDir(), "j.log")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplayLogMalformed: replay-log's test of an entry, its messages, and
// its exit statuses (255 from --find).
func TestReplayLogMalformed(t *testing.T) {
	t.Parallel()
	w := rlHeader{sector: 1, nr: 1}
	fl := rlHeader{flags: rlFlush}
	dirty := rlHeader{sector: 3, nr: 1, data: "x"}                     // byte 32 set in a write
	mm := rlHeader{flags: rlMark | rlMetadata, dataLen: 2, data: "mm"} // a labelled entry that is not exactly MARK
	odd := rlHeader{sector: 2, nr: 1, flags: 1 << 6}                   // a flag no kernel sets: replay-log takes it
	m := rlHeader{flags: rlMark, dataLen: 2, data: "ok"}
	target := filepath.Join(t.TempDir(), "t.img")
	sparseFile(t, target, 1<<20)
	for _, tc := range []struct {
		name   string
		log    string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"empty", rlJournal(t, 0), nil, 1, "", "Invalid entry number\n"},
		{"malformed find", rlJournal(t, 4, w, fl, dirty, m), []string{"--find", "--end-mark", "ok"}, 255, "", "Malformed entry @4\n"},
		{"malformed replay", rlJournal(t, 4, w, fl, dirty, m), []string{"--replay", target}, 1, "", "Malformed entry @4\n"},
		{"malformed seek", rlJournal(t, 4, w, fl, dirty, m), []string{"--start-entry", "3", "--num-entries"}, 1, "", "Malformed entry @4\n"},
		{"before malformed", rlJournal(t, 4, w, fl, dirty, m), []string{"--find", "--next-flush"}, 0, "1@4\n", ""},
		{"all zero", rlJournal(t, 2, w, rlHeader{}), []string{"--find", "--limit", "2"}, 255, "", "Malformed entry @3\n"},
		{"mark|metadata", rlJournal(t, 2, w, mm), []string{"--find", "--limit", "2"}, 255, "", "Malformed entry @3\n"},
		{"unknown flag", rlJournal(t, 3, w, odd, m), []string{"--find", "--end-mark", "ok"}, 0, "2@6\n", ""},
		{"short", rlJournal(t, 3, w, fl), []string{"--find", "--end-mark", "ok"}, 255, "", "Error reading entry: 0\n"},
		{"short payload", rlTruncated(t, rlJournal(t, 1, w), 100), []string{"--replay", target}, 1, "", "Error reading data: 0\n"},
	} {
		res := replayLogRun(t, append([]string{"--log", tc.log}, tc.args...)...)
		if res.code != tc.code || res.stdout != tc.stdout || res.stderr != tc.stderr {
			t.Errorf("%s: exit %d, %q, %q; want exit %d, %q, %q", tc.name, res.code, res.stdout, res.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
}

// rlTruncated cuts n bytes off the end of the journal at p.
func rlTruncated(t *testing.T, p string, n int64) string {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, fi.Size()-n); err != nil {
		t.Fatal(err)
	}
	return p
}
