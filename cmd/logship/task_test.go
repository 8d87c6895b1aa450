package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logship/logship/control"
)

// waitTask polls `logship status --json` until the server has task and ok
// holds of it, for up to a minute.
func waitTask(t *testing.T, addr, task, what string, ok func(control.TaskStatus) bool) control.TaskStatus {
	t.Helper()
	var ts control.TaskStatus
	for deadline := time.Now().Add(time.Minute); ; {
		found := false
		for _, x := range statusJSON(t, "--to", addr, "--insecure") {
			if x.Name == task {
				ts, found = x, true
			}
		}
		if found && ok(ts) {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: not %s after a minute: %+v (lag %+v)", task, what, ts, ts.Lag)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inState is a waitTask condition: the task is in state s and no session
// holds it unless held.
func inState(s control.TaskState, held bool) func(control.TaskStatus) bool {
	return func(ts control.TaskStatus) bool { return ts.State == s && (ts.Session != nil) == held }
}

// statusText runs `logship status --task NAME` and fails unless its output
// holds every one of want.
func statusText(t *testing.T, addr, task string, want ...string) {
	t.Helper()
	r := logship(t, "status", "--to", addr, "--insecure", "--task", task)
	if r.code != 0 {
		t.Fatalf("status --task %s: exit %d, %s", task, r.code, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("status --task %s lacks %q:\n%s", task, w, r.stdout)
		}
	}
}

// The state word through the binary: Idle, CaughtUp (with no stale
// counters after a resume with nothing to do), Shipping, Error, Behind;
// then task list, resize and rm, refused while a ship holds the task, and
// rm and resize on the directory of a stopped server.
func TestTaskStatesAndCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, _, _ := shipJournal(t, dir, 7)
	n := readJournal(t, path).Len()
	srvDir := filepath.Join(dir, "srv")
	p := startServe(t, srvDir)
	insecure := []string{"--to", p.addr, "--insecure"}
	args := func(a ...string) []string { return append(append([]string{}, a...), insecure...) }

	// A ship to the end: once its session is gone, nothing remains.
	if r := logship(t, args("ship", path, "--task", "vol", "--size", "32MiB")...); r.code != 0 {
		t.Fatalf("ship: exit %d, %s", r.code, r.stderr)
	}
	waitTask(t, p.addr, "vol", "Idle", inState(control.StateIdle, false))
	statusText(t, p.addr, "vol", "state:    Idle")

	// A follow that resumes with nothing to do: CaughtUp, and the source's
	// counters are where the image is, not 0.
	start := time.Now()
	follow := startShip(t, args(path, "--task", "vol", "--follow")...)
	ts := waitTask(t, p.addr, "vol", "CaughtUp with a report of this ship", func(ts control.TaskStatus) bool {
		return ts.State == control.StateCaughtUp && ts.Source != nil && ts.Source.Time.After(start)
	})
	switch {
	case ts.Source.Head != n || ts.Source.Read != n:
		t.Errorf("source after a resume with nothing to do: head %d, read %d; want %d", ts.Source.Head, ts.Source.Read, n)
	case ts.Lag == nil || ts.Lag.Entries != 0 || ts.Lag.ToShip != 0 || ts.Lag.InFlight != 0:
		t.Errorf("lag of a caught-up task: %+v", ts.Lag)
	}
	statusText(t, p.addr, "vol", "state:    CaughtUp", "head entry 3000, read 3000", "0 entries not yet durable: 0 to ship, 0 in flight")
	if r := logship(t, args("status", "--json", "--task", "vol")...); !strings.Contains(r.stdout, `"state":"CaughtUp"`) {
		t.Errorf("status --json lacks the state field: %s", r.stdout)
	}
	// While the ship holds the task, rm and resize are refused and change
	// nothing.
	for _, a := range [][]string{
		{"task", "rm", "--task", "vol", "--yes"},
		{"task", "resize", "--task", "vol", "--size", "64MiB"},
	} {
		if r := logship(t, args(a...)...); r.code != 3 || !strings.Contains(r.stderr, "in use") {
			t.Errorf("%q while a ship holds the task: exit %d, %q", a, r.code, r.stderr)
		}
	}
	if fi, err := os.Stat(filepath.Join(srvDir, "vol", "image")); err != nil || fi.Size() != 32<<20 {
		t.Fatalf("image after refused rm and resize: %v, %v", fi, err)
	}

	// A ship that cannot go fast: Shipping, with entries to ship or in
	// flight.
	slow := startShip(t, args(path, "--task", "slow", "--follow", "--size", "32MiB", "--bwlimit", "16KiB")...)
	ts = waitTask(t, p.addr, "slow", "Shipping with a lag", func(ts control.TaskStatus) bool {
		return ts.State == control.StateShipping && ts.Lag != nil && ts.Lag.Entries > 0
	})
	if l := ts.Lag; l.ToShip+l.InFlight != l.Entries || l.ToShip < 0 || l.InFlight < 0 {
		t.Errorf("lag of a shipping task: %+v", l)
	}
	statusText(t, p.addr, "slow", "state:    Shipping", " to ship, ", " in flight")

	// A ship killed: Error. A ship stopped in order before it shipped
	// everything: Behind.
	follow.cmd.Process.Kill()
	<-follow.done
	waitTask(t, p.addr, "vol", "Error", inState(control.StateError, false))
	statusText(t, p.addr, "vol", "state:    Error", "last error:")
	slow.cmd.Process.Signal(syscall.SIGINT)
	<-slow.done
	waitTask(t, p.addr, "slow", "Behind", inState(control.StateBehind, false))

	// task list names both, with their states.
	r := logship(t, args("task", "list")...)
	if r.code != 0 || !regexpLine(r.stdout, "vol", "Error", "32 MiB") || !regexpLine(r.stdout, "slow", "Behind", "32 MiB") {
		t.Errorf("task list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// resize grows, never shrinks, and wants whole 4 KiB blocks; a ship
	// then goes on without --size.
	for _, tc := range []struct {
		size string
		code int
		want string
	}{
		{"16MiB", 3, "cannot shrink"},
		{"100M", 2, "is not a multiple of the 4096-byte sector"},
		{"64MiB", 0, "grown from 32 MiB to 64 MiB"},
		{"64MiB", 0, "nothing to do"},
	} {
		r := logship(t, args("task", "resize", "--task", "slow", "--size", tc.size)...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("resize to %s: exit %d, %q %q; want %d and %q", tc.size, r.code, r.stdout, r.stderr, tc.code, tc.want)
		}
	}
	if fi, err := os.Stat(filepath.Join(srvDir, "slow", "image")); err != nil || fi.Size() != 64<<20 {
		t.Fatalf("image after resize: %v, %v", fi, err)
	}
	if r := logship(t, args("ship", path, "--task", "slow")...); r.code != 0 {
		t.Fatalf("ship after resize: exit %d, %s", r.code, r.stderr)
	}
	ts = waitTask(t, p.addr, "slow", "Idle", inState(control.StateIdle, false))
	if ts.ImageSize != 64<<20 || ts.Durable.NextEntry != n {
		t.Errorf("task after resize and ship: %+v", ts)
	}

	// rm wants --yes, removes the directory, and status then says there is
	// no such task.
	if r := logship(t, args("task", "rm", "--task", "vol")...); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("rm without --yes: exit %d, %q", r.code, r.stderr)
	}
	if r := logship(t, args("task", "rm", "--task", "vol", "--yes")...); r.code != 0 || !strings.Contains(r.stdout, "task vol removed") {
		t.Fatalf("rm: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	noDir(t, srvDir, "vol")
	if r := logship(t, args("status", "--task", "vol")...); r.code != 3 || !strings.Contains(r.stderr, `no task "vol"`) {
		t.Errorf("status --task of a removed task: exit %d, %q", r.code, r.stderr)
	}
	if r := logship(t, args("task", "rm", "--task", "vol", "--yes")...); r.code != 3 || !strings.Contains(r.stderr, "NO_TASK") {
		t.Errorf("rm of a removed task: exit %d, %q", r.code, r.stderr)
	}
	if r := logship(t, args("task", "list")...); r.code != 0 || strings.Contains(r.stdout, "vol") || !strings.Contains(r.stdout, "slow") {
		t.Errorf("task list after rm: exit %d, %q", r.code, r.stdout)
	}

	// On the directory: refused while the server runs, done once it is
	// stopped; a restarted server does not know the task.
	if r := logship(t, "task", "rm", "--dir", srvDir, "--task", "slow", "--yes"); r.code != 3 || !strings.Contains(r.stderr, "running server") {
		t.Errorf("rm --dir while serve runs: exit %d, %q", r.code, r.stderr)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if r := logship(t, "task", "resize", "--dir", srvDir, "--task", "slow", "--size", "128MiB"); r.code != 0 {
		t.Errorf("resize --dir: exit %d, %q", r.code, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(srvDir, "slow", "image")); err != nil || fi.Size() != 128<<20 {
		t.Fatalf("image after resize --dir: %v, %v", fi, err)
	}
	if r := logship(t, "task", "rm", "--dir", srvDir, "--task", "slow", "--yes"); r.code != 0 {
		t.Errorf("rm --dir: exit %d, %q", r.code, r.stderr)
	}
	noDir(t, srvDir, "slow")
	p = startServe(t, srvDir)
	if r := logship(t, "task", "list", "--to", p.addr, "--insecure"); r.code != 0 || !strings.Contains(r.stdout, "no tasks") {
		t.Errorf("task list after rm --dir: exit %d, %q", r.code, r.stdout)
	}
}

// regexpLine reports whether a line of out holds every one of words.
func regexpLine(out string, words ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}

// noDir fails unless task's directory is gone from dir and nothing of a
// removal is left beside the tasks.
func noDir(t *testing.T, dir, task string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, task)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("task %s's directory after rm: %v", task, err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") && de.Name() != ".lock" {
			t.Errorf("left in %s after rm: %s", dir, de.Name())
		}
	}
}

func TestTaskUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"task"}, 2, "want list, rm or resize"},
		{[]string{"task", "bogus"}, 2, `unknown task command "bogus"`},
		{[]string{"task", "--help"}, 0, "logship task rm"},
		{[]string{"task", "list", "--insecure"}, 2, "--to is required"},
		{[]string{"task", "rm", "--to", "127.0.0.1:1", "--insecure", "--yes"}, 2, "--task is required"},
		{[]string{"task", "rm", "--to", "127.0.0.1:1", "--insecure", "--task", "a/b", "--yes"}, 2, "a task name is"},
		{[]string{"task", "rm", "--task", "a", "--yes"}, 2, "--to (or --dir) is required"},
		{[]string{"task", "rm", "--to", "127.0.0.1:1", "--dir", "x", "--task", "a", "--yes"}, 2, "exclude each other"},
		{[]string{"task", "resize", "--to", "127.0.0.1:1", "--insecure", "--task", "a"}, 2, "--size is required"},
		{[]string{"task", "resize", "--to", "127.0.0.1:1", "--insecure", "--task", "a", "--size", "4097"}, 2, "(8192) or 4.0 KiB (4096)"},
		{[]string{"task", "resize", "--to", "127.0.0.1:1", "--insecure", "--task", "a", "--size", "lots"}, 2, "want a size"},
		{[]string{"task", "list", "--to", "localhost", "--insecure"}, 2, "no port"},
	} {
		r := logship(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("logship %q: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}
