package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
)

// statusJSON runs `logship status --json` and decodes its lines.
func statusJSON(t *testing.T, args ...string) []control.TaskStatus {
	t.Helper()
	r := logship(t, append([]string{"status", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	var out []control.TaskStatus
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if l == "" {
			continue
		}
		var ts control.TaskStatus
		if err := json.Unmarshal([]byte(l), &ts); err != nil {
			t.Fatalf("status line %q: %v", l, err)
		}
		out = append(out, ts)
	}
	return out
}

func TestStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, j, _ := shipJournal(t, dir, 5)
	jr, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	p := startServe(t, filepath.Join(dir, "srv"))

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status", "--insecure"}, 2, "--to is required"},
		{[]string{"status", "--to", p.addr}, 2, "choose one authentication"},
		{[]string{"status", "--to", p.addr, "--insecure", "extra"}, 2, "unexpected arguments"},
		{[]string{"status", "--to", p.addr, "--insecure", "--task", "nosuch"}, 3, `no task "nosuch"`},
		{[]string{"status", "--to", p.addr, "--insecure", "--wait-caught-up"}, 2, "--wait-caught-up needs --task"},
	} {
		r := logship(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if r := logship(t, "status", "--to", p.addr, "--insecure"); r.code != 0 || !strings.Contains(r.stdout, "no tasks") {
		t.Fatalf("status of an empty server: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// A follow of a finished journal without an end mark stays connected
	// once everything is durable: status shows its session, its report
	// and no lag.
	s := startShip(t, path, "--to", p.addr, "--task", "vol", "--insecure", "--follow", "--streams", "2", "--size", "32MiB")
	s.waitDurable(t, jr.Len())
	var ts control.TaskStatus
	for deadline := time.Now().Add(30 * time.Second); ; {
		st := statusJSON(t, "--to", p.addr, "--insecure", "--task", "vol")
		if len(st) != 1 {
			t.Fatalf("status --task vol gave %d tasks", len(st))
		}
		ts = st[0]
		if ts.Source != nil && ts.Source.Read == jr.Len() && ts.Lag != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report of the whole journal in status: %+v", ts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	switch {
	case ts.Durable.NextEntry != jr.Len() || ts.ImageSize != 32<<20 || ts.DurableTime.IsZero():
		t.Fatalf("task %+v", ts)
	case ts.Session == nil || ts.Session.Streams != 2 || ts.Session.Windows == 0 || ts.Session.Journal != ts.Durable.Journal:
		t.Fatalf("session %+v", ts.Session)
	case ts.Source.Log != path || ts.Source.Head != jr.Len() || ts.Source.Journal != ts.Durable.Journal:
		t.Fatalf("source %+v", ts.Source)
	case ts.Lag.Entries != 0 || ts.Lag.Bytes != 0 || ts.Lag.Seconds != 0:
		t.Fatalf("lag %+v", ts.Lag)
	}
	r := logship(t, "status", "--to", p.addr, "--insecure")
	for _, want := range []string{"task vol", "image:    32 MiB", "2 streams", "lag:      0 entries not yet durable: 0 to ship, 0 in flight; 0 B of log", "state:    CaughtUp", "log " + path} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}
	start := time.Now()
	if r := logship(t, "status", "--to", p.addr, "--insecure", "--task", "vol", "--wait-caught-up", "--timeout", "30s"); r.code != 0 ||
		time.Since(start) < caughtUpSettle {
		t.Fatalf("--wait-caught-up with a ship caught up: exit %d after %v, %q", r.code, time.Since(start), r.stderr)
	}
	s.cmd.Process.Kill()
	<-s.done
	// Without a ship, nothing new is reported: the wait times out.
	if r := logship(t, "status", "--to", p.addr, "--insecure", "--task", "vol", "--wait-caught-up", "--timeout", "2s"); r.code != 3 ||
		!strings.Contains(r.stderr, "not caught up") {
		t.Fatalf("--wait-caught-up without a ship: exit %d, %q", r.code, r.stderr)
	}
	// Once the ship is gone: no session; the last error names why.
	for deadline := time.Now().Add(20 * time.Second); ; {
		ts = statusJSON(t, "--to", p.addr, "--insecure", "--task", "vol")[0]
		if ts.Session == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still in status after ship was killed: %+v", ts.Session)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ts.LastError == "" {
		t.Errorf("no last error after the ship was killed: %+v", ts)
	}
}
