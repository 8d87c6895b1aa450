package main

// A power-loss test of the server: `logship serve` runs in the kernel VM
// with its directory on ext4 over a dm-log-writes target, so the journal
// of the server's own disk records every write it made. Two ships send a
// journal to it; when one ends (all its windows acked), the guest puts a
// mark in that journal. The host then replays the server's disk to every
// FLUSH, FUA and MARK, and to random subsets of the window after each (the
// writes a power loss may have dropped), mounts each state, recovers the
// server directory as `logship serve` would on its next start, and checks
// that every task's image is the shipped journal replayed to the task's
// durable position, that a task never goes back, and that from a task's
// "acked" mark on, the task is complete. With --retain, the directory as
// it stands at each acked mark is served again on the host, and recover
// --at must rebuild the task at marks of the shipped journal from the
// history that survived.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/bench/crashtest"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/fixtures/vm"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replica"
)

// powerLossScript runs in the guest: ext4 on the logged device, a server
// on it, two ships of /in/src.log at once, a mark "acked-TASK" after each
// ship has ended well.
const powerLossScript = `
mkfs.ext4 -q $DEV >&2 || exit 1
mount -o noinit_itable $DEV $MNT || exit 1
sync
mark serve-start
logship serve --listen 127.0.0.1:7070 --dir $MNT/srv --insecure $SERVE_FLAGS --log-level warn 2>/tmp/serve.log &
SERVE=$!
ship() {
	logship ship /in/src.log --to 127.0.0.1:7070 --task "$1" --insecure --size 4MiB --streams 2 --window-entries $WINDOW_ENTRIES --retry-for 1m --progress never >/tmp/ship-$1.log 2>&1
	rc=$?
	[ $rc = 0 ] && mark "acked-$1"
	echo "SHIP $1 $rc"
	sed "s/^/SHIP-$1 /" /tmp/ship-$1.log
}
ship a &
A=$!
ship b &
B=$!
wait $A
wait $B
kill -TERM $SERVE
wait $SERVE
echo "SERVE $?"
sed 's/^/SERVE-ERR /' /tmp/serve.log
`

func TestServePowerLoss(t *testing.T) {
	for _, tc := range []struct {
		name, flags string
		partial     bool // images may hold part of the next window
		history     bool // the tasks keep their history: recover --at works
	}{
		// Checkpoints and staging rotations often, so that crash states
		// fall between every step of the group commit. Its recovery
		// brings the image exactly to the durable position.
		{"group-commit", "--checkpoint-every 20ms --staging-rotate 512KiB", false, false},
		// The same with the staging logs retained: at each acked mark the
		// server directory is also kept, and afterwards a real serve on
		// it must give the state at three of the journal's marks through
		// recover --at.
		{"group-commit-retain", "--retain --checkpoint-every 20ms --staging-rotate 512KiB", false, true},
		// A crash inside a window leaves the image at the durable
		// position plus part of the next window (docs/architecture.md,
		// "Durability"): every sector holds what it holds before that
		// window or after it.
		{"sync-per-window", "--sync-per-window", true, false},
		// Windows of 64 KiB or more written straight to the image and
		// synced before the ack (--write-through), smaller ones through
		// the staging log: a crash inside a window written through
		// leaves part of it in the image, as with --sync-per-window.
		{"write-through", "--write-through 64KiB --checkpoint-every 20ms --staging-rotate 512KiB", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) { servePowerLoss(t, tc.flags, tc.partial, tc.history) })
	}
}

// windowEnds maps the first entry of every window of journal j, cut as
// ship cuts it with --window-entries n, to the entry after its last.
func windowEnds(t *testing.T, j []byte, n int) map[int64]int64 {
	t.Helper()
	r, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int64]int64{}
	sp := barrier.NewSplitter(barrier.Limits{MaxEntries: n})
	add := func(ws ...*barrier.Window) {
		for _, w := range ws {
			if w != nil {
				ends[w.First()] = w.Last() + 1
			}
		}
	}
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		add(sp.Add(e)...)
	}
	add(sp.Close())
	return ends
}

// sameOrNext says whether every sector of img equals that of before or
// that of after.
func sameOrNext(img, before, after []byte) bool {
	const sector = 512
	for off := 0; off < len(img); off += sector {
		s := img[off : off+sector]
		if !bytes.Equal(s, before[off:off+sector]) && !bytes.Equal(s, after[off:off+sector]) {
			return false
		}
	}
	return true
}

// shipWindowEntries is the ships' --window-entries: small windows, many
// crash states between them.
const shipWindowEntries = 64

func servePowerLoss(t *testing.T, serveFlags string, partial, history bool) {
	h := shipHarness(t)
	wl := fixtures.DefaultWorkload(11, 512)
	wl.Entries, wl.DeviceSize, wl.MaxWriteSectors = 500, 4<<20, 32
	src, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Capture(t.Context(), vm.Run{
		Scenario: "shell-cmd", DataSize: 128 << 20, LogSize: 384 << 20, Dir: t.TempDir(),
		Files: map[string][]byte{"src.log": src},
		Env: map[string]string{"LOGSHIP_CMD": powerLossScript, "SERVE_FLAGS": serveFlags,
			"WINDOW_ENTRIES": fmt.Sprint(shipWindowEntries)},
	})
	if err != nil {
		t.Fatalf("guest: %v", err)
	}
	if res.Retried != nil {
		t.Logf("the first boot hung in its teardown and was booted again: %v", res.Retried)
	}
	out := strings.Join(res.Output, "\n")
	for _, want := range []string{"SHIP a 0", "SHIP b 0", "SERVE 0"} {
		if !strings.Contains(out, want) {
			t.Fatalf("guest output lacks %q:\n%s", want, out)
		}
	}

	// The "acked" marks: the kernel logs a mark before the writes that
	// had completed but were not flushed when it came (docs/journal-format.md
	// §3), so the state at a mark is what was durable when it was
	// sent, and from there on a task whose ship had ended must be complete.
	complete := map[string]int64{} // task → the index of its acked mark
	for e, err := range readJournal(t, res.Journal).All() {
		if err != nil {
			t.Fatal(err)
		}
		if task, ok := strings.CutPrefix(e.Label, "acked-"); ok && e.IsMark() {
			complete[task] = e.Index
		}
	}
	if len(complete) != 2 {
		t.Fatalf("acked marks: %v", complete)
	}

	sr, err := journal.NewReader(bytes.NewReader(src), int64(len(src)))
	if err != nil {
		t.Fatal(err)
	}
	entries := sr.Len()
	// reference is src replayed onto zeros up to entry next (excluded).
	// The checks run on the crash test's goroutine, so it returns its
	// error instead of failing the test.
	refs := map[int64][]byte{}
	reference := func(next int64) ([]byte, error) {
		if b, ok := refs[next]; ok {
			return b, nil
		}
		b := make([]byte, wl.DeviceSize)
		if next > 0 {
			if err := fixtures.ReplaySequential(src, b, next-1); err != nil {
				return nil, fmt.Errorf("replaying the shipped journal to entry %d: %w", next, err)
			}
		}
		refs[next] = b
		return b, nil
	}

	var (
		mu       sync.Mutex
		last     = map[string]int64{} // task → durable NextEntry at the last point
		seen     = map[string]int{}
		ends     = windowEnds(t, src, shipWindowEntries)
		partials int
		kept     = t.TempDir()
		keeps    []string // server directories kept at the acked marks
	)
	mnt := t.TempDir()
	check := func(ctx context.Context, s *crashtest.State) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if out, err := exec.CommandContext(ctx, "mount", "-t", "ext4", s.Device, mnt).CombinedOutput(); err != nil {
			return out, fmt.Errorf("mount: %v", err)
		}
		defer exec.Command("umount", mnt).Run()
		dir := filepath.Join(mnt, "srv")
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return nil, nil // before the server made its directory
		}
		var logs bytes.Buffer
		srv, err := replica.Open(ctx, replica.Config{Dir: dir, Retain: history, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			return logs.Bytes(), fmt.Errorf("recovering %s: %w", dir, err)
		}
		st, err := srv.Status()
		srv.Close()
		if err != nil {
			return logs.Bytes(), err
		}
		var report strings.Builder
		for _, ts := range st.Tasks {
			fmt.Fprintf(&report, "task %s: durable %+v\n", ts.Name, ts.Durable)
			if ts.LastError != "" {
				return logs.Bytes(), fmt.Errorf("task %s not recovered: %s", ts.Name, ts.LastError)
			}
			next := ts.Durable.NextEntry
			if next < 0 || next > entries || ts.ImageSize != wl.DeviceSize {
				return nil, fmt.Errorf("task %s: %+v", ts.Name, ts)
			}
			img, err := os.ReadFile(filepath.Join(dir, ts.Name, "image"))
			if err != nil {
				return nil, err
			}
			want, err := reference(next)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(img, want) {
				end, ok := ends[next]
				var after []byte
				if partial && ok {
					if after, err = reference(end); err != nil {
						return nil, err
					}
				}
				if after == nil || !sameOrNext(img, want, after) {
					return []byte(report.String()), fmt.Errorf("task %s: the image differs at byte %d from the journal replayed to entry %d",
						ts.Name, firstDiff(img, want), next)
				}
				partials++
			}
			if at, ok := complete[ts.Name]; ok && s.Entry.Index >= at && next != entries {
				return []byte(report.String()), fmt.Errorf("task %s: durable to entry %d of %d at or after its acked mark (entry %d)",
					ts.Name, next, entries, at)
			}
			if s.Explore == 0 {
				if next < last[ts.Name] {
					return []byte(report.String()), fmt.Errorf("task %s went back from entry %d to %d", ts.Name, last[ts.Name], next)
				}
				last[ts.Name] = next
			}
			seen[ts.Name]++
		}
		if label, ok := strings.CutPrefix(s.Entry.Label, "acked-"); ok && history && s.Entry.IsMark() && s.Explore == 0 {
			keep := filepath.Join(kept, label)
			if out, err := exec.CommandContext(ctx, "cp", "-a", dir, keep).CombinedOutput(); err != nil {
				return out, fmt.Errorf("keeping %s: %v", dir, err)
			}
			keeps = append(keeps, keep)
		}
		for task, at := range complete {
			if s.Entry.Index >= at && !slices.ContainsFunc(st.Tasks, func(ts control.TaskStatus) bool { return ts.Name == task }) {
				return []byte(report.String()), fmt.Errorf("task %s missing at or after its acked mark (entry %d)", task, at)
			}
		}
		return []byte(report.String()), nil
	}
	sum, err := crashtest.Crashtest(t.Context(), res.Journal, crashtest.Options{
		Check: crashtest.CheckFunc(check), FromMark: "serve-start", Explore: 2, Seed: 5,
		WorkDir: ramDir(t), Device: crashtest.DeviceLoop,
	})
	if err != nil {
		t.Fatalf("%v (%d points, %d explored states checked)", err, sum.Points, sum.Explored)
	}
	for _, task := range []string{"a", "b"} {
		if seen[task] == 0 {
			t.Errorf("no crash state held task %s", task)
		}
	}
	if history {
		recoverAtMarks(t, keeps, src, wl.DeviceSize)
	}
	t.Logf("server disk journal: %d entries; %d points and %d explored states checked in %v (materializing %v, checks %v); states with a: %d, b: %d; images with part of the next window: %d",
		sum.Entries, sum.Points, sum.Explored, sum.Total.Round(1e6), sum.Prepare.Round(1e6), sum.Check.Round(1e6), seen["a"], seen["b"], partials)
}

// ramDir is a temporary directory in /dev/shm when there is one: the
// crash states' images are sparse files there, so the syncs of a recovery
// cost nothing (the test checks what is written, not how fast a disk
// takes it), else one in t.TempDir.
func ramDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "logship-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// recoverAtMarks starts a server on each directory in dirs, the state of
// the server's disk at the mark acked-TASK, and checks that task TASK,
// complete there, recovers with --at at the first, a middle and the last
// mark of the shipped journal src to src replayed up to that mark.
func recoverAtMarks(t *testing.T, dirs []string, src []byte, size int64) {
	t.Helper()
	marks, err := fixtures.Marks(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(marks) < 3 {
		t.Fatalf("the shipped journal has %d marks", len(marks))
	}
	if len(dirs) != 2 {
		t.Fatalf("%d server directories kept at acked marks, want 2", len(dirs))
	}
	for _, dir := range dirs {
		task := filepath.Base(dir)
		p := startServe(t, dir, "--retain") // a server without it ends the history
		for _, m := range []fixtures.Mark{marks[0], marks[len(marks)/2], marks[len(marks)-1]} {
			target := filepath.Join(t.TempDir(), "recovered")
			if r := logship(t, "recover", "--from", p.addr, "--task", task, "--insecure", "--at", m.Label, target); r.code != 0 {
				t.Fatalf("recover --at %s of task %s: exit %d\n%s", m.Label, task, r.code, r.stderr)
			}
			serveSameImage(t, fmt.Sprintf("task %s at mark %s (entry %d)", task, m.Label, m.Index), target, serveReference(t, src, size, m.Index+1))
		}
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("serve on %s: %v", dir, err)
		}
	}
}
