package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/logship/logship/fixtures"
)

// Day-to-day operation (issue 14), through the built binary.

// quickBound is how long a command that must not retry may take: far
// above what a loaded machine needs for a run that ends at once, far below
// the retries it must not make (--retry-for is 5 minutes by default).
const quickBound = time.Minute

// quick runs logship and fails if it takes longer than quickBound: a
// mistake must not be retried for minutes.
func quick(t *testing.T, args ...string) result {
	t.Helper()
	start := time.Now()
	r := logship(t, args...)
	if d := time.Since(start); d > quickBound {
		t.Fatalf("logship %s took %v: a permanent error was retried", strings.Join(args, " "), d)
	}
	return r
}

// TestPermanentFailsFast: usage mistakes exit 2 and refusals that will not
// change exit 3, at once, with --retry-for far above the bound quick allows.
func TestPermanentFailsFast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServe(t, filepath.Join(dir, "srv"))
	jpath, _, _ := writeJournal(t, dir, fixtures.DefaultWorkload(3, 512))
	dev := filepath.Join(dir, "dev.img")
	if err := os.WriteFile(dev, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want []string // in stderr
		not  []string
	}{
		{"ship bad task name", []string{"ship", jpath, "--to", srv.addr, "--task", "a/b", "--insecure"}, 2, []string{`--task "a/b"`}, nil},
		{"ship leading dot", []string{"ship", jpath, "--to", srv.addr, "--task", ".x", "--insecure"}, 2, []string{`--task ".x"`}, nil},
		{"ship no port", []string{"ship", jpath, "--to", "127.0.0.1", "--task", "t", "--insecure"}, 2, []string{"no port"}, nil},
		{"sync no port", []string{"sync", dev, "--to", "localhost", "--task", "t", "--insecure"}, 2, []string{"no port"}, nil},
		{"verify bad task", []string{"verify", dev, "--to", srv.addr, "--task", "x y", "--insecure"}, 2, []string{"task name"}, nil},
		{"recover --from no port", []string{"recover", "--from", "127.0.0.1", "--task", "t", "--insecure", dev}, 2, []string{"no port"}, nil},
		{"unaligned size", []string{"ship", jpath, "--to", srv.addr, "--task", "t", "--insecure", "--size", "100M"}, 2,
			[]string{"not a multiple of the 4096-byte sector", "100003840", "99999744"}, nil},
		{"negative limit", []string{"replay", "--limit", "-5", jpath, dev}, 2, []string{"--limit -5"}, nil},
		{"mark two words", []string{"mark", "--dm-name", "nosuch", "two words"}, 2, []string{"not one word"}, nil},
		{"progress value", []string{"diff", "--progress", "sometimes", dev, dev, "-o", filepath.Join(dir, "d")}, 2, []string{"--progress"}, nil},
		// The server's verdicts: by name, no numbers, no package prefixes, one hint.
		{"no task", []string{"verify", dev, "--to", srv.addr, "--task", "nope", "--insecure"}, 3,
			[]string{"NO_TASK"}, []string{"260", "0x104", "replica:", "parallel:", "open with a size"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := quick(t, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tt.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(r.stderr, n) {
					t.Errorf("stderr has %q:\n%s", n, r.stderr)
				}
			}
		})
	}

	// A task of another size: MISMATCH by name.
	if r := quick(t, "ship", jpath, "--to", srv.addr, "--task", "m", "--insecure", "--size", "8MiB", "--progress", "never"); r.code != 0 {
		t.Fatalf("ship: exit %d\n%s", r.code, r.stderr)
	}
	r := quick(t, "ship", jpath, "--to", srv.addr, "--task", "m", "--insecure", "--size", "16MiB", "--retry-for", "10m")
	if r.code != 3 || !strings.Contains(r.stderr, "MISMATCH") || !strings.Contains(r.stderr, "task m is 8 MiB, this open asks for 16 MiB") || regexp.MustCompile(`code \d|parallel: |replica: `).MatchString(r.stderr) {
		t.Fatalf("ship into a task of another size: exit %d, want 3 and MISMATCH by name, sizes in MiB:\n%s", r.code, r.stderr)
	}
}

// TestUnreachableSaysCannotConnect: nothing listens; the retries and the
// final error say "cannot connect", not "connection lost".
func TestUnreachableSaysCannotConnect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jpath, _, _ := writeJournal(t, dir, fixtures.DefaultWorkload(4, 512))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := quick(t, "ship", jpath, "--to", addr, "--task", "t", "--insecure", "--retry-for", "1s")
	if r.code != 3 {
		t.Fatalf("exit %d, want 3\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "cannot connect to "+addr+": connection refused; retrying for") {
		t.Errorf("no retry line that says cannot connect:\n%s", r.stderr)
	}
	last := strings.TrimSpace(r.stderr[strings.LastIndex(strings.TrimSpace(r.stderr), "\n")+1:])
	if !strings.HasPrefix(last, "logship ship: cannot connect to "+addr) || strings.Contains(r.stderr, "connection lost") {
		t.Errorf("final message %q, want cannot connect:\n%s", last, r.stderr)
	}
	// status asks once.
	if r := quick(t, "status", "--to", addr, "--insecure"); r.code != 3 || r.stderr != "logship status: cannot connect to "+addr+": connection refused\n" {
		t.Errorf("status: exit %d, %q", r.code, r.stderr)
	}
	if r := quick(t, "status", "--to", "127.0.0.1", "--insecure"); r.code != 2 || !strings.Contains(r.stderr, "no port") {
		t.Errorf("status without a port: exit %d, %q", r.code, r.stderr)
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	a, b := logship(t, "--version"), logship(t, "version")
	if a.code != 0 || b.code != 0 || !strings.HasPrefix(a.stdout, "logship ") || a.stdout != b.stdout {
		t.Fatalf("--version %d %q, version %d %q", a.code, a.stdout, b.code, b.stdout)
	}
	r := logship(t, "help", "ship")
	if r.code != 0 || !strings.Contains(r.stderr, "Usage: logship ship JOURNAL") || strings.Contains(r.stderr, "Commands:") {
		t.Fatalf("help ship: exit %d\n%s", r.code, r.stderr)
	}
	if r := logship(t, "help", "nosuch"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "nosuch"`) {
		t.Fatalf("help nosuch: exit %d\n%s", r.code, r.stderr)
	}
	// Defaults print one way: IEC with a space, never a Go identifier.
	for _, c := range []string{"ship", "serve", "sync", "inspect", "diff"} {
		r := logship(t, c, "--help")
		if m := regexp.MustCompile(`default "?(\d+(\.\d+)?[KMGT]i?B|[a-z]+\.[A-Z]\w+)`).FindString(r.stderr); m != "" {
			t.Errorf("%s --help prints %q", c, m)
		}
	}
}

// TestProgressAlways: --progress always prints progress lines with a
// percentage on stderr, even when it is not a terminal; -q prints none.
func TestProgressAlways(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServe(t, filepath.Join(dir, "srv"))
	jpath, _, img := writeJournal(t, dir, fixtures.DefaultWorkload(5, 512))
	dev := filepath.Join(dir, "dev.img")
	if err := os.WriteFile(dev, img, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.img")
	if err := os.WriteFile(zero, make([]byte, len(img)), 0o644); err != nil {
		t.Fatal(err)
	}
	pct := regexp.MustCompile(`(?m)^(\w+): .* of .* \(\d+\.\d%\)`)
	for _, tc := range [][]string{
		{"ship", jpath, "--to", srv.addr, "--task", "p", "--insecure"},
		{"replay", jpath, zero},
		{"diff", zero, dev, "-o", filepath.Join(dir, "delta")},
		{"verify", dev, "--to", srv.addr, "--task", "p", "--insecure"},
	} {
		r := logship(t, append(tc, "--progress", "always")...)
		if r.code != 0 && !(tc[0] == "verify" && r.code == 1) {
			t.Fatalf("%s: exit %d\n%s", tc[0], r.code, r.stderr)
		}
		m := pct.FindStringSubmatch(r.stderr)
		if m == nil || m[1] != tc[0] {
			t.Errorf("%s --progress always: no progress line with a percentage:\n%s", tc[0], r.stderr)
		}
		if strings.Contains(r.stderr, "\033[") {
			t.Errorf("%s: terminal control sequences on a stderr that is not a terminal", tc[0])
		}
		q := logship(t, append(tc, "--progress", "always", "-q")...)
		if pct.MatchString(q.stderr) {
			t.Errorf("%s -q printed progress:\n%s", tc[0], q.stderr)
		}
	}
}

// TestInspectZstd: inspect and replay read a zstd-compressed journal.
func TestInspectZstd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jpath, j, img := writeJournal(t, dir, fixtures.DefaultWorkload(6, 512))
	zpath := jpath + ".zst"
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(zpath, enc.EncodeAll(j, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	plain, z := logship(t, "inspect", jpath), logship(t, "inspect", zpath)
	if z.code != 0 || !strings.Contains(z.stdout, "zstd-compressed") {
		t.Fatalf("inspect of a zstd journal: exit %d\n%s%s", z.code, z.stdout, z.stderr)
	}
	// The same entries as the plain journal (the first line names the file).
	if cut := func(s string) string { return s[strings.Index(s, "\n"):] }; cut(plain.stdout) != cut(z.stdout) {
		t.Errorf("inspect of the zstd journal differs from the plain one")
	}
	target := filepath.Join(dir, "t.img")
	if err := os.WriteFile(target, make([]byte, len(img)), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := logship(t, "replay", "-q", zpath, target); r.code != 0 {
		t.Fatalf("replay of a zstd journal: exit %d\n%s", r.code, r.stderr)
	}
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(img) {
		t.Errorf("replay of the zstd journal: image differs")
	}
}
