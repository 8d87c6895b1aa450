package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTaskGrants: an identity that is not granted a task can neither
// remove nor grow it, nor see it in task list; one granted it can.
func TestTaskGrants(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := filepath.Join(dir, "srv")
	path, _, _ := shipJournal(t, dir, 23)
	p := startServe(t, srv)
	for _, task := range []string{"vol", "other-1"} {
		if r := logship(t, "ship", path, "--to", p.addr, "--insecure", "--task", task, "--size", "32MiB"); r.code != 0 {
			t.Fatalf("ship %s: exit %d, %s", task, r.code, r.stderr)
		}
	}
	p.stop(t, os.Interrupt)
	grants := filepath.Join(dir, "grants")
	if err := os.WriteFile(grants, []byte("insecure other-*\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p = startServe(t, srv, "--grants", grants)
	to := []string{"--to", p.addr, "--insecure"}
	for _, a := range [][]string{
		{"task", "rm", "--task", "vol", "--yes"},
		{"task", "resize", "--task", "vol", "--size", "64MiB"},
	} {
		if r := logship(t, append(a, to...)...); r.code != 3 || !strings.Contains(r.stderr, "FORBIDDEN") {
			t.Errorf("%q by an ungranted identity: exit %d, %q; want 3 and FORBIDDEN", a, r.code, r.stderr)
		}
	}
	if fi, err := os.Stat(filepath.Join(srv, "vol", "image")); err != nil || fi.Size() != 32<<20 {
		t.Fatalf("the ungranted task's image after rm and resize: %v, %v", fi, err)
	}
	if r := logship(t, append([]string{"task", "list"}, to...)...); r.code != 0 || strings.Contains(r.stdout, "vol") || !strings.Contains(r.stdout, "other-1") {
		t.Errorf("task list with grants: exit %d, %q", r.code, r.stdout)
	}
	if r := logship(t, append([]string{"task", "resize", "--task", "other-1", "--size", "64MiB"}, to...)...); r.code != 0 {
		t.Errorf("resize of a granted task: exit %d, %q", r.code, r.stderr)
	}
	if r := logship(t, append([]string{"task", "rm", "--task", "other-1", "--yes"}, to...)...); r.code != 0 {
		t.Errorf("rm of a granted task: exit %d, %q", r.code, r.stderr)
	}
	noDir(t, srv, "other-1")
}
