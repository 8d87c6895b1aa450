package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// jsonRecords decodes stderr as slog JSON records, failing on any line
// that is not one.
func jsonRecords(t *testing.T, what, stderr string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(l, "\x1b[K"))
		if l == "" || strings.HasPrefix(l, "logship ") {
			continue // the final error line of main
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: stderr line %q is not a JSON record: %v", what, l, err)
		}
		if r["level"] == nil || r["msg"] == nil || r["time"] == nil {
			t.Fatalf("%s: record %q lacks time, level or msg", what, l)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestLogFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, _, _ := shipJournal(t, dir, 4)
	p := startServe(t, filepath.Join(dir, "srv"), "--log-format", "json")
	r := logship(t, "ship", path, "--to", p.addr, "--task", "vol", "--insecure", "--log-format", "json", "--log-level", "debug", "--progress", "never")
	if r.code != 0 {
		t.Fatalf("ship: exit %d\n%s", r.code, r.stderr)
	}
	recs := jsonRecords(t, "ship", r.stderr)
	debug := false
	for _, rec := range recs {
		if rec["level"] == "DEBUG" && rec["msg"] == "journal identified" {
			debug = true
		}
	}
	if !debug {
		t.Fatalf("ship --log-level debug: no debug record:\n%s", r.stderr)
	}
	// At warn, a ship that goes well says nothing on stderr.
	r = logship(t, "ship", path, "--to", p.addr, "--task", "vol", "--insecure", "--log-level", "warn", "--progress", "never")
	if r.code != 0 || strings.TrimSpace(r.stderr) != "" {
		t.Fatalf("ship --log-level warn: exit %d, stderr %q", r.code, r.stderr)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var sessions, created int
	for _, rec := range jsonRecords(t, "serve", p.log()) {
		switch {
		case rec["msg"] == "session" && rec["task"] == "vol" && rec["level"] == "INFO":
			sessions++
		case rec["msg"] == "task created" && rec["task"] == "vol" && rec["image_size"] == float64(32<<20):
			created++
		}
	}
	if sessions != 2 || created != 1 {
		t.Fatalf("serve: %d session records, %d task created records:\n%s", sessions, created, p.log())
	}

	for _, args := range [][]string{
		{"serve", "--listen", "127.0.0.1:0", "--dir", dir, "--insecure", "--log-level", "loud"},
		{"serve", "--listen", "127.0.0.1:0", "--dir", dir, "--insecure", "--log-format", "xml"},
		{"ship", path, "--to", p.addr, "--task", "vol", "--insecure", "--log-level", "loud"},
	} {
		if r := logship(t, args...); r.code != 2 || !strings.Contains(r.stderr, "--log-") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}
