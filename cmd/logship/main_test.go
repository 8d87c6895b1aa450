package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logship/logship/journal"
)

// logshipBin is the binary under test, built once by TestMain: the tests
// run the real command line, as users and scripts do.
var logshipBin string

func TestMain(m *testing.M) {
	// Inside a GitLab parallel: job these would shard every crashtest the
	// tests run; only the shard test sets them, on purpose.
	os.Unsetenv("CI_NODE_INDEX")
	os.Unsetenv("CI_NODE_TOTAL")
	dir, err := os.MkdirTemp("", "logship-cmd-test")
	if err != nil {
		panic(err)
	}
	logshipBin = filepath.Join(dir, "logship")
	out, err := exec.Command("go", "build", "-o", logshipBin, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a run of the binary gave.
type result struct {
	stdout, stderr string
	code           int
}

func logship(t testing.TB, args ...string) result {
	t.Helper()
	cmd := exec.Command(logshipBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{nil, 2, "Commands:"},
		{[]string{"--help"}, 0, "replay"},
		{[]string{"nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"inspect"}, 2, "want one JOURNAL"},
		{[]string{"inspect", "--bogus", "x"}, 2, "unknown flag: --bogus"},
		{[]string{"replay", "--help"}, 0, "--start-mark"},
		{[]string{"replay", "a"}, 2, "want JOURNAL and TARGET"},
		{[]string{"replay", "--check", "fua", "a", "b"}, 2, "--check and --fsck go together"},
		{[]string{"replay", "--check", "bogus", "--fsck", "true", "a", "b"}, 2, `--check "bogus"`},
	} {
		r := logship(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("logship %q: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// readJournal opens the journal at path (openJournal) for the rest of the
// test.
func readJournal(t testing.TB, path string) *journal.Reader {
	t.Helper()
	j, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j.r
}
