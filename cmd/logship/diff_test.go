package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestDiff: diff OLD NEW, then replay the delta onto a copy of OLD: the
// result is NEW, byte for byte; the delta ends with FLUSH and the mark, and
// zeroed ranges are discards.
func TestDiff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	const size = 8 << 20
	old := make([]byte, size)
	for i := range old {
		old[i] = byte(rng.Uint32())
	}
	nw := bytes.Clone(old)
	for range 200 { // scattered changes of 1 byte to 64 KiB
		off := rng.IntN(size - 65536)
		n := 1 + rng.IntN(65536)
		for i := off; i < off+n; i++ {
			nw[i] = byte(rng.Uint32())
		}
	}
	clear(nw[1<<20 : 3<<20]) // a zeroed range
	op, np, delta := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "delta")
	os.WriteFile(op, old, 0o644)
	os.WriteFile(np, nw, 0o644)
	for _, ss := range []string{"512", "4096"} {
		if res := logship(t, "diff", op, np, "-o", delta, "--sector-size", ss); res.code != 0 {
			t.Fatalf("diff: exit %d: %s", res.code, res.stderr)
		}
		target := filepath.Join(dir, "target")
		os.WriteFile(target, old, 0o644)
		if res := logship(t, "replay", "-q", delta, target); res.code != 0 {
			t.Fatalf("replay of the delta: %s", res.stderr)
		}
		got, _ := os.ReadFile(target)
		if !bytes.Equal(got, nw) {
			t.Fatalf("ss=%s: OLD + delta differs from NEW at byte %d", ss, firstDiff(got, nw))
		}
		res := logship(t, "inspect", delta)
		for _, want := range []string{"DISCARD", "FLUSH", `MARK "diff"`} {
			if !bytes.Contains([]byte(res.stdout), []byte(want)) {
				t.Errorf("ss=%s: delta lacks %s", ss, want)
			}
		}
	}
	// Images of different sizes are refused, and no delta is left behind.
	os.WriteFile(np, nw[:size/2], 0o644)
	os.Remove(delta)
	if res := logship(t, "diff", op, np, "-o", delta); res.code != 3 {
		t.Fatalf("size mismatch: exit %d", res.code)
	}
	if _, err := os.Stat(delta); !os.IsNotExist(err) {
		t.Fatalf("a failed diff left %s behind", delta)
	}
}
