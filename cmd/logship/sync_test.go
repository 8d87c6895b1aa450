package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/fixtures/prereq"
)

// The acceptance tests of sync, verify and recover (issue 5) run the real
// binary against a real `logship serve` on loopback, on loop devices.

func requireRootCmd(t *testing.T, cmds ...string) {
	t.Helper()
	prereq.Root(t)
	for _, c := range cmds {
		pkg := "e2fsprogs"
		if c == "mount" || c == "umount" {
			pkg = "mount"
		}
		prereq.Tool(t, c, pkg)
	}
}

// blkLoop makes a file of size bytes, binds it to a loop device and
// returns the device, detached at the end of the test.
func blkLoop(t *testing.T, size int64) *devio.Loop {
	t.Helper()
	prereq.Root(t)
	p := filepath.Join(t.TempDir(), "source.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	l, err := devio.AttachLoop(p, devio.LoopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Detach() })
	return l
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}

// mountDev mounts dev on a new directory and returns it; unmounted at the
// end of the test if still mounted.
func mountDev(t *testing.T, dev string) string {
	t.Helper()
	mnt := t.TempDir()
	runTool(t, "mount", dev, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

// makeExt4 puts an ext4 file system on dev and fills it with files of
// random data, about fill bytes.
func makeExt4(t *testing.T, dev string, fill int64, seed uint64) {
	t.Helper()
	runTool(t, "mkfs.ext4", "-q", "-F", dev)
	mnt := mountDev(t, dev)
	rng := rand.New(rand.NewPCG(seed, 3))
	buf := make([]byte, 1<<20)
	for i := 0; int64(i)*(4<<20) < fill; i++ {
		f, err := os.Create(filepath.Join(mnt, fmt.Sprintf("file%03d", i)))
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			for j := 0; j < len(buf); j += 8 {
				v := rng.Uint64()
				for k := range 8 {
					buf[j+k] = byte(v >> (8 * k))
				}
			}
			if _, err := f.Write(buf); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	runTool(t, "umount", mnt)
}

// writeDev writes p at off on the device and syncs it.
func writeDev(t *testing.T, dev string, p []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readDev(t *testing.T, dev string) []byte {
	t.Helper()
	b, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// syncJSON runs logship sync with --json and decodes its summary.
func syncJSON(t *testing.T, args ...string) syncSummary {
	t.Helper()
	r := logship(t, append([]string{"sync", "--json", "--insecure"}, args...)...)
	if r.code != 0 {
		t.Fatalf("logship sync %q: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	var s syncSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("sync summary %q: %v", r.stdout, err)
	}
	return s
}

// TestSyncRoundTrip is issue 5's round trip on loop devices: an ext4
// device, full sync; 1% of its 4 KiB blocks changed at random plus a
// zeroed range, diff sync, verify equal; 3 bytes of the image corrupted,
// verify reports exactly those 512-byte ranges (exit 1); the source
// wiped, recover, the source equals the image; recover refuses a mounted
// device (exit 3). It logs the bytes on the wire of diff syncs of the
// unchanged device and of the changed one.
func TestSyncRoundTrip(t *testing.T) {
	requireRootCmd(t, "mkfs.ext4", "mount", "umount")
	const size = 256 << 20
	loop := blkLoop(t, size)
	dev := loop.Path()
	makeExt4(t, dev, 96<<20, 1)
	srv := startServe(t, t.TempDir())
	img := filepath.Join(srv.dir, "rt", "image")

	full := syncJSON(t, dev, "--to", srv.addr, "--task", "rt", "--mode", "full")
	if full.Mode != "full" || full.BlocksSent != size>>20 || full.State != "done" {
		t.Fatalf("full sync: %+v", full)
	}
	t.Logf("full sync of %d MiB: %d bytes written, %d discarded, %d bytes on the wire, %.2fs",
		size>>20, full.WriteBytes, full.DiscardBytes, full.WireBytes, full.Seconds)

	// Unchanged: a diff sync costs a tiny fraction of the device.
	same := syncJSON(t, dev, "--to", srv.addr, "--task", "rt", "--mode", "diff")
	t.Logf("diff sync, unchanged %d MiB device: %d bytes on the wire (%d calls, %d bytes of call payloads), %.3fs",
		size>>20, same.WireBytes, same.Calls, same.CallBytes, same.Seconds)
	if same.BlocksSent != 0 || same.WireBytes > size/10000 {
		t.Fatalf("diff sync of an unchanged device: %+v", same)
	}

	// 1% of the 4 KiB blocks at random, and a zeroed range of 3 MiB.
	rng := rand.New(rand.NewPCG(2, 2))
	page := make([]byte, 4096)
	changed := map[int64]bool{}
	for len(changed) < size/4096/100 {
		off := rng.Int64N(size/4096) * 4096
		if changed[off] {
			continue
		}
		changed[off] = true
		for i := range page {
			page[i] = byte(rng.Uint32())
		}
		writeDev(t, dev, page, off)
	}
	const zoff, zlen = 100 << 20, 3 << 20
	writeDev(t, dev, make([]byte, zlen), zoff)
	changedBytes := int64(len(changed))*4096 + zlen
	diff := syncJSON(t, dev, "--to", srv.addr, "--task", "rt", "--mode", "diff", "--streams", "4")
	t.Logf("diff sync, %d random 4 KiB blocks (1%%) and %d zeroed bytes changed: %d bytes written, %d discarded, %d bytes on the wire (%d of call payloads), %.3fs",
		len(changed), zlen, diff.WriteBytes, diff.DiscardBytes, diff.WireBytes, diff.CallBytes, diff.Seconds)
	if moved := diff.WriteBytes + diff.DiscardBytes; moved > changedBytes || moved < changedBytes-zlen {
		t.Fatalf("diff sync moved %d bytes for %d changed", moved, changedBytes)
	}
	// The aim: under 1.1 times the changed data plus 0.1% of the
	// device (the zeroed range travels as discards, not data).
	if limit := (changedBytes-zlen)*11/10 + size/1000; diff.WireBytes > limit {
		t.Fatalf("diff sync: %d bytes on the wire, more than %d", diff.WireBytes, limit)
	}
	r := logship(t, "verify", dev, "--to", srv.addr, "--task", "rt", "--insecure")
	if r.code != 0 || r.stdout != "equal\n" {
		t.Fatalf("verify after the diff sync: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !bytes.Equal(readDev(t, dev), readDev(t, img)) {
		t.Fatal("the image differs from the device")
	}

	// Corrupt 3 bytes of the image.
	offs := []int64{4096*5 + 17, 77<<20 + 1000, size - 3}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range offs {
		var b [1]byte
		f.ReadAt(b[:], off)
		b[0] ^= 0x5a
		if _, err := f.WriteAt(b[:], off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	r = logship(t, "verify", dev, "--to", srv.addr, "--task", "rt", "--insecure")
	var want strings.Builder
	for _, off := range offs {
		fmt.Fprintf(&want, "offset %d length 512\n", off/512*512)
	}
	if r.code != 1 || r.stdout != want.String() {
		t.Fatalf("verify of a corrupted image: exit %d, stdout\n%swant\n%s%s", r.code, r.stdout, want.String(), r.stderr)
	}
	r = logship(t, "verify", dev, "--to", srv.addr, "--task", "rt", "--insecure", "--json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 1 || len(lines) != 4 || !strings.Contains(lines[3], `"equal":false`) || lines[0] != fmt.Sprintf(`{"offset":%d,"length":512}`, offs[0]/512*512) {
		t.Fatalf("verify --json: exit %d\n%s", r.code, r.stdout)
	}

	// Wipe the source (garbage at the start, zeros after), recover.
	garbage := make([]byte, 8<<20)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	writeDev(t, dev, garbage, 0)
	writeDev(t, dev, make([]byte, size-len(garbage)), int64(len(garbage)))
	r = logship(t, "recover", "--from", srv.addr, "--task", "rt", "--insecure", dev)
	if r.code != 0 {
		t.Fatalf("recover: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("recover: %s", strings.TrimSpace(r.stdout))
	if !bytes.Equal(readDev(t, dev), readDev(t, img)) {
		t.Fatal("the device differs from the image after recover")
	}

	// A mounted device is refused, and left alone.
	mountDev(t, dev)
	r = logship(t, "recover", "--from", srv.addr, "--task", "rt", "--insecure", dev)
	if r.code != 3 || !strings.Contains(r.stderr, "mounted or in use") {
		t.Fatalf("recover onto a mounted device: exit %d\n%s", r.code, r.stderr)
	}
}

// TestSyncKilled: the server and the client are killed during a sync; the
// rerun resumes after the last durable block and sends nothing before it.
func TestSyncKilled(t *testing.T) {
	requireRootCmd(t)
	const size = 128 << 20
	loop := blkLoop(t, size)
	dev := loop.Path()
	rng := rand.New(rand.NewPCG(5, 5))
	data := make([]byte, size)
	for i := range data {
		if (i>>16)%4 != 3 {
			data[i] = byte(rng.Uint32())
		}
	}
	writeDev(t, dev, data, 0)
	dir := t.TempDir()
	srv := startServe(t, dir, "--credit", "4MiB")
	cmd := exec.Command(logshipBin, "sync", dev, "--to", srv.addr, "--task", "k", "--insecure", "--mode", "full", "--json")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Kill the server once it holds a good part of the sync in its
	// staging log, then the client.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ms, _ := filepath.Glob(filepath.Join(dir, "k", "staging-*.log"))
		var n int64
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil {
				n += fi.Size()
			}
		}
		if n > 24<<20 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the sync ended before it could be killed: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the sync made no progress")
		}
		time.Sleep(time.Millisecond)
	}
	srv.stop(t, syscall.SIGKILL)
	cmd.Process.Kill()
	<-done

	srv2 := startServe(t, dir)
	st := serveState(t, dir, "k")
	s := syncJSON(t, dev, "--to", srv2.addr, "--task", "k", "--mode", "full")
	t.Logf("durable after the kill: block %d; the rerun: %+v", st.Durable.NextEntry, s)
	if !s.Resumed || s.StartBlock < st.Durable.NextEntry || s.StartBlock == 0 {
		t.Fatalf("the rerun did not resume at the durable block %d: %+v", st.Durable.NextEntry, s)
	}
	if s.BlocksSent != size>>20-s.StartBlock {
		t.Fatalf("the rerun sent %d blocks from block %d of %d", s.BlocksSent, s.StartBlock, size>>20)
	}
	var rest int64 // data bytes from the resume point on
	for off := s.StartBlock << 20; off < size; off += 4096 {
		if !digest.IsZero(data[off : off+4096]) {
			rest += 4096
		}
	}
	if s.WriteBytes != rest {
		t.Fatalf("the rerun wrote %d bytes, the device holds %d from block %d", s.WriteBytes, rest, s.StartBlock)
	}
	r := logship(t, "verify", dev, "--to", srv2.addr, "--task", "k", "--insecure")
	if r.code != 0 {
		t.Fatalf("verify after the resumed sync: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestSyncUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sync", "--help"}, 0, "HEAD = {task, block number}"},
		{[]string{"sync", "x", "--task", "t", "--insecure"}, 2, "--to and --task are required"},
		{[]string{"sync", "x", "--to", "127.0.0.1:1", "--task", "t", "--insecure", "--mode", "half"}, 2, `--mode "half"`},
		{[]string{"sync", "x", "--to", "127.0.0.1:1", "--task", "t", "--insecure", "--block-size", "3MiB"}, 2, "--block-size"},
		{[]string{"sync", "x", "--to", "127.0.0.1:1", "--task", "t", "--insecure", "--granularity", "256"}, 2, "--granularity"},
		{[]string{"sync", "x", "--to", "127.0.0.1:1", "--task", "t", "--insecure", "--mark-first"}, 2, "--mark-first needs --dm-name"},
		{[]string{"sync", "x", "--to", "127.0.0.1:1", "--task", "t"}, 2, "choose one authentication"},
		{[]string{"verify", "--help"}, 0, "--freeze"},
		{[]string{"verify", "x", "--to", "127.0.0.1:1", "--task", "t", "--insecure", "--at-mark"}, 2, "--at-mark and --dm-name go together"},
		{[]string{"verify", "x", "--to", "127.0.0.1:1", "--task", "t", "--insecure", "--dm-name", "lw"}, 2, "--at-mark and --dm-name go together"},
		{[]string{"verify", "x", "y", "--to", "127.0.0.1:1", "--task", "t", "--insecure"}, 2, "want one SOURCE"},
		{[]string{"recover", "--help"}, 0, "O_EXCL"},
		{[]string{"recover", "x", "--task", "t", "--insecure"}, 2, "--to and --task are required"},
		{[]string{"recover", "--from", "127.0.0.1:1", "--task", "t", "--insecure", "--progress", "sometimes", "x"}, 2, "--progress"},
	} {
		r := logship(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("logship %q: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	// recover --at of a task that is not there: refused before TARGET is
	// touched.
	srv := startServe(t, t.TempDir())
	target := filepath.Join(t.TempDir(), "t")
	r := logship(t, "recover", "--from", srv.addr, "--task", "t", "--insecure", "--at", "m", target)
	if r.code != 3 || !strings.Contains(r.stderr, "no such task") {
		t.Fatalf("recover --at: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("recover --at created the target")
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		done, total int64
		u           unit
		extra, want string
	}{
		{1 << 30, 4 << 30, bytesUnit, "10 MiB sent", "sync: 1.0 GiB of 4.0 GiB (25.0%), 102 MiB/s, ETA 30s, 10 MiB sent"},
		{100, 400, countUnit("points"), "", "sync: 100 points of 400 points (25.0%), 10 points/s, ETA 30s"},
		{1 << 30, 0, bytesUnit, "", "sync: 1.0 GiB, 102 MiB/s"},
	} {
		if got := progressLine("sync", tc.done, tc.total, tc.u, 10*time.Second, tc.extra); got != tc.want {
			t.Errorf("%q\nwant %q", got, tc.want)
		}
	}
}

// TestFreeze: sync and verify of a mounted ext4 with --freeze: the file
// system is frozen while it is read (the copy is consistent, so verify,
// frozen again, finds it equal) and thawed after, even when verify fails.
func TestFreeze(t *testing.T) {
	requireRootCmd(t, "mkfs.ext4", "mount", "umount")
	const size = 64 << 20
	dev := blkLoop(t, size).Path()
	// No lazy initialization: nothing writes the device behind our back.
	runTool(t, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev)
	mnt := mountDev(t, dev)
	if err := os.WriteFile(filepath.Join(mnt, "a"), bytes.Repeat([]byte("logship"), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, t.TempDir())
	s := syncJSON(t, dev, "--to", srv.addr, "--task", "fz", "--freeze", mnt)
	if s.State != "done" {
		t.Fatalf("sync --freeze: %+v", s)
	}
	r := logship(t, "verify", dev, "--to", srv.addr, "--task", "fz", "--insecure", "--freeze", mnt)
	t.Logf("verify --freeze of a mounted file system: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 0 && r.code != 1 {
		t.Fatalf("verify --freeze: exit %d", r.code)
	}
	// Thawed: a write goes through at once.
	written := make(chan error, 1)
	go func() { written <- os.WriteFile(filepath.Join(mnt, "b"), []byte("after"), 0o644) }()
	select {
	case err := <-written:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		exec.Command("fsfreeze", "--unfreeze", mnt).Run()
		t.Fatal("the file system is still frozen after verify")
	}
	// A verify that fails (no such task) thaws too.
	r = logship(t, "verify", dev, "--to", srv.addr, "--task", "nosuch", "--insecure", "--freeze", mnt)
	if r.code != 3 {
		t.Fatalf("verify of a missing task: exit %d\n%s", r.code, r.stderr)
	}
	if err := os.WriteFile(filepath.Join(mnt, "c"), []byte("after"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Not a mount point that can be frozen: a clear error.
	r = logship(t, "verify", dev, "--to", srv.addr, "--task", "fz", "--insecure", "--freeze", "/nonexistent")
	if r.code != 3 || !strings.Contains(r.stderr, "/nonexistent") {
		t.Fatalf("--freeze /nonexistent: exit %d\n%s", r.code, r.stderr)
	}
}
