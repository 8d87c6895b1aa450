package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/logship/logship/fixtures"
)

// TestProfileFlags replays a journal with every profile asked for and
// checks that each file was written in its format: pprof profiles are
// gzipped protocol buffers, an execution trace starts with its header.
func TestProfileFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, _, img := writeJournal(t, dir, fixtures.DefaultWorkload(5, 512))
	target := filepath.Join(dir, "img")
	sparseFile(t, target, int64(len(img)))
	files := map[string][]byte{
		"cpuprofile":   {0x1f, 0x8b},
		"blockprofile": {0x1f, 0x8b},
		"mutexprofile": {0x1f, 0x8b},
		"memprofile":   {0x1f, 0x8b},
		"trace":        []byte("go 1."),
	}
	args := []string{"replay", "-q", p, target}
	for flag := range files {
		args = append(args, "--"+flag, filepath.Join(dir, flag))
	}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("replay exited %d: %s", code, stderr.String())
	}
	for flag, magic := range files {
		b, err := os.ReadFile(filepath.Join(dir, flag))
		if err != nil {
			t.Errorf("--%s: %v", flag, err)
			continue
		}
		if !bytes.HasPrefix(b, magic) {
			t.Errorf("--%s: file starts with %q, want %q", flag, b[:min(len(b), 8)], magic)
		}
	}
	// A profile that cannot be created fails the command before it runs.
	stderr.Reset()
	bad := []string{"replay", "-q", p, target, "--cpuprofile", filepath.Join(dir, "no", "such", "dir")}
	if code := run(bad, &stdout, &stderr); code == exitOK {
		t.Fatalf("replay with an unwritable --cpuprofile exited 0")
	}
}
