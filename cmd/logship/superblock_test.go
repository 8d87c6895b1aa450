package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logship/logship/fixtures"
)

// TestSuperblockCount: a superblock that counts more entries than its
// journal can hold (2^63 or more, which would turn negative as an index,
// or more than one per sector of the file) is refused as not a journal,
// with exit 3, by every command that reads journals; none of them reports
// an empty journal or a passing run.
func TestSuperblockCount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wl := fixtures.DefaultWorkload(11, 512)
	_, j, _ := writeJournal(t, dir, wl)
	for _, tc := range []struct {
		name  string
		count uint64
	}{
		{"2^63", 1 << 63},
		{"2^64-1", 1<<64 - 1},
		{"one per sector plus one", uint64(len(j)/512) + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := append([]byte(nil), j...)
			binary.LittleEndian.PutUint64(bad[16:], tc.count)
			p := filepath.Join(dir, "bad-"+strings.ReplaceAll(tc.name, " ", "-")+".log")
			if err := os.WriteFile(p, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, "target")
			sparseFile(t, target, wl.DeviceSize)
			for _, args := range [][]string{
				{"inspect", p},
				{"inspect", "--json", p},
				{"inspect", "--windows", p},
				{"replay", p, target},
				{"crashtest", p, "--check", "true"},
				{"crashtest", p, "--check", "true", "--json"},
			} {
				r := logship(t, args...)
				if r.code != 3 || !strings.Contains(r.stderr, "nr_entries") || !strings.Contains(r.stderr, p) {
					t.Errorf("logship %q: exit %d, stderr %q, stdout %.200q; want exit 3 naming the file and nr_entries", args, r.code, r.stderr, r.stdout)
				}
			}
		})
	}
}
