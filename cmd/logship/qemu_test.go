package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/fixtures/prereq"
)

// TestReplayQemuJournals is the acceptance test of the journal core against
// an independent producer: journals that QEMU's blklogwrites driver wrote
// (no code of ours), replayed by `logship replay` onto zeros, give a target
// byte-identical to the data image qemu-io wrote; many random workloads,
// both sector sizes, with discards and write-zeroes.
func TestReplayQemuJournals(t *testing.T) {
	prereq.Tool(t, "qemu-io", "qemu-utils")
	ctx := context.Background()
	dir := t.TempDir()
	for _, ss := range []int{512, 4096} {
		for seed := uint64(1); seed <= 6; seed++ {
			w := fixtures.DefaultQemuWorkload(seed, ss)
			os.MkdirAll(filepath.Join(dir, "q"), 0o755)
			qj, err := fixtures.QemuIO(ctx, filepath.Join(dir, "q"), w)
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, "target")
			sparseFile(t, target, w.DeviceSize)
			if res := logship(t, "replay", "-q", qj.Journal, target); res.code != 0 {
				t.Fatalf("ss=%d seed=%d: replay exit %d: %s", ss, seed, res.code, res.stderr)
			}
			got, _ := os.ReadFile(target)
			want, _ := os.ReadFile(qj.Data)
			if !bytes.Equal(got, want) {
				t.Fatalf("ss=%d seed=%d: replay of the qemu-io journal differs from qemu-io's data image at byte %d",
					ss, seed, firstDiff(got, want))
			}
			os.RemoveAll(filepath.Join(dir, "q"))
		}
	}
}

// TestReplayQemuExt4 records copying a real ext4 image through blklogwrites,
// replays the journal and checks the result with e2fsck.
func TestReplayQemuExt4(t *testing.T) {
	prereq.Tool(t, "qemu-img", "qemu-utils")
	prereq.Tool(t, "mkfs.ext4", "e2fsprogs")
	prereq.Tool(t, "e2fsck", "e2fsprogs")
	dir := t.TempDir()
	src := filepath.Join(dir, "ext4.img")
	sparseFile(t, src, 32<<20)
	if out, err := exec.Command("mkfs.ext4", "-F", "-q", src).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 (Debian package e2fsprogs): %v: %s", err, out)
	}
	qj, err := fixtures.QemuJournalFromImage(context.Background(), dir, src, 4096)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target")
	sparseFile(t, target, 32<<20)
	if res := logship(t, "replay", "-q", "--check", "flush", "--fsck", "true", qj.Journal, target); res.code != 0 {
		t.Fatalf("replay: %s", res.stderr)
	}
	if out, err := exec.Command("e2fsck", "-fn", target).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck on the replayed image: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(target)
	want, _ := os.ReadFile(src)
	if !bytes.Equal(got, want) {
		t.Fatalf("replayed ext4 image differs from the source at byte %d", firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
