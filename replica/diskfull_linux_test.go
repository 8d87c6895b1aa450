package replica

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/fixtures/prereq"
)

// smallFS mounts a fresh ext4 file system of size bytes, on a loop device
// over a sparse file, and returns its mount point. It skips under -short
// and fails without root or mkfs.ext4 otherwise.
func smallFS(t *testing.T, size int64) string {
	t.Helper()
	prereq.Root(t)
	mkfs := prereq.Tool(t, "mkfs.ext4", "e2fsprogs")
	loop, _ := fixtures.Loop(t, "fs.img", nil, size, devio.LoopOptions{})
	if out, err := exec.Command(mkfs, "-q", "-F", loop.Path()).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if err := unix.Mount(loop.Path(), mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", loop.Path(), mnt, err)
	}
	t.Cleanup(func() {
		for i := 0; ; i++ {
			err := unix.Unmount(mnt, 0)
			if err == nil || i == 50 {
				if err != nil {
					t.Errorf("unmount %s: %v", mnt, err)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return mnt
}

// TestDiskFull runs the server on a 16 MiB file system that fills up: the
// client gets NO_SPACE, nothing was acked that is not durable (a new
// server on the directory, once space is freed, recovers at least to the
// last ack), and the image is the state at that window boundary.
func TestDiskFull(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			mnt := smallFS(t, 16<<20)
			ballast := filepath.Join(mnt, "ballast")
			if err := os.WriteFile(ballast, make([]byte, 4<<20), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := m.cfg
			cfg.Dir = filepath.Join(mnt, "srv")
			ts := startServer(t, cfg)
			wl := fixtures.Workload{Seed: 77, SectorSize: 512, DeviceSize: 64 << 20, Entries: 1200, MaxWriteSectors: 128, Flush: 0.08, FUA: 0.05}
			j := newJournal(t, wl)
			ctx := t.Context()
			s := ts.dial(t, "full", 4)
			task, err := openCall(ctx, s, j.open(j.size))
			if err != nil {
				t.Fatal(err)
			}
			sent, err := shipJournal(ctx, s, j, task.Durable, shipOpts{limits: barrier.Limits{MaxEntries: 16}})
			if err == nil {
				err = s.WaitAck(ctx, sent[len(sent)-1].seq)
			}
			if codeOfErr(err) != control.CodeNoSpace {
				t.Fatalf("shipping 40 MiB to a 16 MiB file system: %v, want code NO_SPACE", err)
			}
			t.Log(err)
			acked, ok := s.Acked()
			s.Close()
			ts.crash()
			// Free space; a new server recovers what was acked.
			if err := os.Remove(ballast); err != nil {
				t.Fatal(err)
			}
			ts2 := startServer(t, cfg)
			s2 := ts2.dial(t, "full", 1)
			task, err = openCall(ctx, s2, j.open(0))
			if err != nil {
				t.Fatal(err)
			}
			var ackedWin sentWindow
			for _, w := range sent {
				if ok && w.seq == acked {
					ackedWin = w
				}
			}
			if ok && (task.Durable.NextWindow <= acked || task.Durable.NextEntry <= ackedWin.last) {
				t.Fatalf("durable after the disk filled: %+v; window %d (entries to %d) was acked", task.Durable, acked, ackedWin.last)
			}
			t.Logf("acked window %d (%v), durable now %+v", acked, ok, task.Durable)
			// With sync per window the window that hit the full disk may be
			// half written (a state inside it, not at its end); resending
			// it from the durable position brings the image to the end of
			// the windows sent.
			sent, err = shipJournal(ctx, s2, j, task.Durable, shipOpts{limits: barrier.Limits{MaxEntries: 16}, stopAt: task.Durable.NextEntry + 20})
			if err != nil {
				t.Fatal(err)
			}
			last := sent[len(sent)-1]
			if err := s2.WaitAck(ctx, last.seq); err != nil {
				t.Fatal(err)
			}
			s2.Close()
			ts2.waitIdle(t)
			sameBytes(t, "image", readImage(t, cfg.Dir, "full"), j.replayTo(t, last.last+1))
		})
	}
}
