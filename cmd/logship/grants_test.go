package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/source"
)

// TestServeGrants: a real `logship serve --grants` refuses a task the
// client's identity is not granted with FORBIDDEN, and the task's image
// and state stay as they were; status lists only granted tasks.
func TestServeGrants(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := filepath.Join(dir, "srv")
	j1, _, img1 := shipJournal(t, dir, 21)
	j2, _, img2 := shipJournal(t, dir, 22)
	if bytes.Equal(img1, img2) {
		t.Fatal("the two journals give the same image")
	}
	grants := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ship := func(addr, j, task string) result {
		return logship(t, "ship", j, "--to", addr, "--task", task, "--insecure", "--size", "32MiB", "--progress", "never", "--retry-for", "5s")
	}

	// Granted: the task is made.
	p := startServe(t, srv, "--grants", grants("all", "# every task\ninsecure *\n"))
	if r := ship(p.addr, j1, "vol"); r.code != 0 {
		t.Fatalf("ship of a granted task: exit %d\n%s", r.code, r.stderr)
	}
	imageAfterStop(t, p, "vol", img1)

	// Not granted any more: refused, nothing of it touched.
	p = startServe(t, srv, "--grants", grants("some", "insecure other-*\n"))
	state, err := os.ReadFile(filepath.Join(srv, "vol", "state")) // as the server's recovery at start left it
	if err != nil {
		t.Fatal(err)
	}
	r := ship(p.addr, j2, "vol")
	if r.code == 0 || !strings.Contains(r.stderr, "FORBIDDEN") {
		t.Fatalf("ship of an ungranted task: exit %d, stderr %q; want FORBIDDEN", r.code, r.stderr)
	}
	if r := ship(p.addr, j2, "other-1"); r.code != 0 {
		t.Fatalf("ship of another granted task: exit %d\n%s", r.code, r.stderr)
	}
	st := statusJSON(t, "--to", p.addr, "--insecure")
	if len(st) != 1 || st[0].Name != "other-1" {
		t.Fatalf("status lists %+v, want only other-1", st)
	}
	if r := logship(t, "status", "--to", p.addr, "--insecure", "--task", "vol"); r.code != 3 {
		t.Fatalf("status --task of an ungranted task: exit %d, %q", r.code, r.stdout)
	}
	imageAfterStop(t, p, "vol", img1)
	if now, _ := os.ReadFile(filepath.Join(srv, "vol", "state")); !bytes.Equal(now, state) {
		t.Fatalf("the ungranted task's state changed:\n%s\nwas\n%s", now, state)
	}
	// A grants file that does not parse stops serve at start.
	r = logship(t, "serve", "--listen", "127.0.0.1:0", "--dir", srv, "--insecure", "--grants", grants("bad", "insecure\n"))
	if r.code != 3 || !strings.Contains(r.stderr, "line 1") {
		t.Fatalf("serve with a bad grants file: exit %d, %q", r.code, r.stderr)
	}
}

// TestStatusEscapes: what a source reports (and the server passes on) is
// printed by status with control characters, newlines and terminal
// escapes quoted: a forged report cannot add lines or drive the terminal.
func TestStatusEscapes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startServe(t, filepath.Join(dir, "srv"))
	j, o := serveJournal(t, 23)
	c, _ := dialServe(t, p.addr, "vol", j, o)
	forged := "/dev/x\n  lag:      0 entries\x1b[2J\x1b]0;owned\x07\r\u202eevil"
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rep := control.Report{Journal: o.Journal, Log: forged, Error: "boom\ntask fake\n", Head: 3, Time: time.Now()}
	if _, err := c.s.Call(ctx, control.Marshal(control.Request{Op: control.OpReport, Report: &rep})); err != nil {
		t.Fatal(err)
	}
	r := logship(t, "status", "--to", p.addr, "--insecure")
	if r.code != 0 {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e", "\ntask fake", "\n  lag:      0 entries"} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("status output holds %q:\n%s", bad, r.stdout)
		}
	}
	for _, want := range []string{`\x1b[2J`, `\n  lag:`, `"boom\ntask fake\n"`, `\u202e`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks the escaped %q:\n%s", want, r.stdout)
		}
	}
	if n := strings.Count(r.stdout, "\n  lag:"); n != 1 {
		t.Errorf("%d lag lines, want 1:\n%s", n, r.stdout)
	}
	c.s.Close()
	p.stop(t, syscall.SIGTERM)
}

// TestServeCorruptStaging is the operator's path of docs/production.md
// section 6 through the real binaries: a ship's windows are durable in a
// staging log when serve is killed; a flipped byte in an early window
// (later batches acked after it) keeps the task closed: status prints
// CORRUPT naming the log, a new ship fails with CORRUPT; serve
// --truncate-staging moves the log aside, and the next serve and ship
// bring the image to the whole journal.
func TestServeCorruptStaging(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := filepath.Join(dir, "srv")
	j, _, img := shipJournal(t, dir, 24)
	flags := []string{"--checkpoint-every", "1h", "--staging-rotate", "1GiB"}
	ship := func(addr string) result {
		return logship(t, "ship", j, "--to", addr, "--task", "vol", "--insecure", "--size", "32MiB", "--progress", "never",
			"--window-entries", "50", "--bwlimit", "8MiB", "--retry-for", "5s")
	}
	// The first ship is a session the test holds open while it kills
	// serve: the end of a session checkpoints after its last window, and
	// recovery from that checkpoint would never read the damaged window, so
	// a `logship ship` that exits would race the kill. Each window is acked
	// before the next is sent, so the windows after the damaged one are
	// durable in later batches.
	b, err := os.ReadFile(j)
	if err != nil {
		t.Fatal(err)
	}
	id, sb, err := source.IdentifyReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, srv, flags...)
	c, tk := dialServe(t, p.addr, "vol", b, control.Open{Size: 32 << 20, Journal: id, SectorSize: sb.SectorSize})
	ctx := t.Context()
	if _, err := c.ship(ctx, tk.Durable, func(w servedWindow) error { return c.s.WaitAck(ctx, w.seq) }); err != nil {
		t.Fatal(err)
	}
	p.stop(t, syscall.SIGKILL) // nothing checkpointed: the windows are in the staging log only
	c.s.Close()

	stg := filepath.Join(srv, "vol", "staging-000001.log")
	b, err = os.ReadFile(stg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := journal.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	windows, flip := 0, int64(-1)
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		if e.IsMark() && strings.HasPrefix(e.Label, "logship-window ") {
			windows++
		}
		if windows == 3 && flip < 0 && e.PayloadLen() > 0 {
			flip = e.PayloadOffset() + e.PayloadLen()/2
		}
	}
	if windows < 20 || flip < 0 {
		t.Fatalf("%d windows in the staging log, want many", windows)
	}
	b[flip] ^= 0x10
	if err := os.WriteFile(stg, b, 0o600); err != nil {
		t.Fatal(err)
	}

	p = startServe(t, srv, append(flags, "--metrics", "127.0.0.1:0")...)
	if m := scrape(t, metricsAddr(t, "serve", p.log)); m[`logship_task_corrupt{task="vol"}`] != 1 {
		t.Errorf("logship_task_corrupt of the damaged task: %v, want 1", m[`logship_task_corrupt{task="vol"}`])
	}
	st := logship(t, "status", "--to", p.addr, "--insecure")
	if st.code != 0 || !strings.Contains(st.stdout, "CORRUPT:") || !strings.Contains(st.stdout, "state:    Corrupt") || !strings.Contains(st.stdout, "staging-000001.log") || strings.Contains(st.stdout, srv) {
		t.Fatalf("status of the damaged task: exit %d\n%s", st.code, st.stdout)
	}
	if r := ship(p.addr); r.code == 0 || !strings.Contains(r.stderr, "CORRUPT: staging log DIR/vol/staging-000001.log is damaged") || strings.Contains(r.stderr, srv) {
		t.Fatalf("ship to the damaged task: exit %d, %q; want CORRUPT", r.code, r.stderr)
	}
	if r := logship(t, "serve", "--dir", srv, "--truncate-staging", "vol"); r.code != 3 || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("--truncate-staging while serve runs: exit %d, %q", r.code, r.stderr)
	}
	p.stop(t, syscall.SIGTERM)

	tr := logship(t, "serve", "--dir", srv, "--truncate-staging", "vol")
	if tr.code != 0 || !strings.Contains(tr.stdout, "damaged-staging-000001.log") || !strings.Contains(tr.stdout, "at window 3,") {
		t.Fatalf("--truncate-staging: exit %d\n%s%s", tr.code, tr.stdout, tr.stderr)
	}
	if _, err := os.Stat(filepath.Join(srv, "vol", "damaged-staging-000001.log")); err != nil {
		t.Fatal(err)
	}
	if again := logship(t, "serve", "--dir", srv, "--truncate-staging", "vol"); again.code != 0 || !strings.Contains(again.stdout, "nothing changed") {
		t.Fatalf("--truncate-staging again: exit %d\n%s%s", again.code, again.stdout, again.stderr)
	}
	p = startServe(t, srv, flags...)
	if r := ship(p.addr); r.code != 0 {
		t.Fatalf("ship after the truncation: exit %d\n%s", r.code, r.stderr)
	}
	imageAfterStop(t, p, "vol", img)
}
