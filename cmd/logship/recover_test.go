package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/logship/logship/fixtures"
)

// TestRecoverAt: a task created by a full sync of a random image on a
// server with --retain, then a journal shipped onto it; recover --at each
// of several marks gives the image with the journal replayed to that mark,
// and plain recover the image as it is. A mark that is not there, and a
// task on a server without --retain, are refused with the target left as
// it was.
func TestRecoverAt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wl := fixtures.DefaultWorkload(71, 512)
	wl.DeviceSize = 8 << 20
	wl.Entries = 800
	jpath, jbytes, _ := writeJournal(t, dir, wl)
	base := make([]byte, wl.DeviceSize)
	rng := rand.New(rand.NewPCG(71, 1))
	for i := range base {
		base[i] = byte(rng.Uint32())
	}
	basePath := filepath.Join(dir, "base")
	if err := os.WriteFile(basePath, base, 0o600); err != nil {
		t.Fatal(err)
	}
	// The journal's marks, and the state at each: base, then the journal
	// up to the mark.
	marks, err := fixtures.Marks(jbytes)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	var at []int64
	for _, m := range marks {
		labels, at = append(labels, m.Label), append(at, m.Index)
	}
	if len(labels) < 3 {
		t.Fatalf("%d marks in the workload; the test wants a few", len(labels))
	}
	// stateAt is base with entries [0, next) replayed; all with next < 0.
	stateAt := func(next int64) []byte {
		img := bytes.Clone(base)
		if next == 0 {
			return img
		}
		if err := fixtures.ReplaySequential(jbytes, img, max(next-1, -1)); err != nil {
			t.Fatal(err)
		}
		return img
	}

	srv := startServe(t, filepath.Join(dir, "srv"), "--retain", "--staging-rotate", "1MiB")
	syncJSON(t, basePath, "--to", srv.addr, "--task", "t", "--mode", "full")
	if r := logship(t, "ship", jpath, "--to", srv.addr, "--task", "t", "--insecure", "--progress", "never"); r.code != 0 {
		t.Fatalf("ship: exit %d\n%s", r.code, r.stderr)
	}
	for _, k := range []int{0, len(labels) / 2, len(labels) - 1} {
		target := filepath.Join(dir, "at-"+labels[k])
		if r := logship(t, "recover", "--from", srv.addr, "--task", "t", "--insecure", "--at", labels[k], target); r.code != 0 {
			t.Fatalf("recover --at %s: exit %d\n%s", labels[k], r.code, r.stderr)
		}
		got, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, stateAt(at[k])) {
			t.Fatalf("recover --at %s (entry %d): the target is not the state at that mark", labels[k], at[k])
		}
	}
	now := filepath.Join(dir, "now")
	if r := logship(t, "recover", "--from", srv.addr, "--task", "t", "--insecure", now); r.code != 0 {
		t.Fatalf("recover: exit %d\n%s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(now); !bytes.Equal(got, stateAt(-1)) {
		t.Fatal("recover without --at: the target is not the image")
	}

	// Refusals leave the target as it was.
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := func(want string) {
		t.Helper()
		r := logship(t, "recover", "--from", srv.addr, "--task", "t", "--insecure", "--at", "no such mark", keep)
		if r.code != 3 || !strings.Contains(r.stderr, want) {
			t.Fatalf("recover --at a mark that is not there: exit %d, want 3 and %q\n%s", r.code, want, r.stderr)
		}
		if b, _ := os.ReadFile(keep); string(b) != "keep" {
			t.Fatalf("a refused recover --at wrote the target: %q", b)
		}
	}
	refused(`no mark "no such mark"`)
	if err := srv.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv = startServe(t, filepath.Join(dir, "srv")) // no --retain: the history goes
	refused("do not reach back to its creation")
}
