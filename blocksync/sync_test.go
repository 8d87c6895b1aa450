package blocksync

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/fixtures/replicatest"
)

// blkDevice writes a file of size bytes: random 4 KiB pages, a third of
// them zeros, and returns its path and content.
func blkDevice(t testing.TB, seed uint64, size int) (string, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		if rng.IntN(3) > 0 {
			for j := i; j < min(i+4096, size); j += 8 {
				v := rng.Uint64()
				for k := 0; k < 8 && j+k < size; k++ {
					b[j+k] = byte(v >> (8 * k))
				}
			}
		}
	}
	p := filepath.Join(t.TempDir(), "dev")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// change rewrites n random 4 KiB pages of the file at p (and b), and
// zeroes [zeroOff, zeroOff+zeroLen).
func change(t testing.TB, p string, b []byte, seed uint64, n int, zeroOff, zeroLen int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 9))
	for range n {
		off := rng.IntN(len(b)/4096) * 4096
		for j := off; j < off+4096; j++ {
			b[j] = byte(rng.Uint32())
		}
	}
	clear(b[zeroOff : zeroOff+zeroLen])
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func syncCfg(t testing.TB, src, addr, task string, mode SyncMode) SyncConfig {
	return SyncConfig{Source: src, Addr: addr, Client: replicatest.Client(task), Mode: mode, Log: replicatest.Logger(t), Progress: &Progress{}}
}

func runSync(t testing.TB, cfg SyncConfig) SyncStats {
	t.Helper()
	st, err := Sync(t.Context(), cfg)
	if err != nil {
		t.Fatalf("sync: %v (%+v)", err, st)
	}
	if !st.Complete {
		t.Fatalf("sync not complete: %+v", st)
	}
	return st
}

func runVerify(t testing.TB, src, addr, task string) VerifyResult {
	t.Helper()
	res, err := Verify(t.Context(), VerifyConfig{Source: src, Addr: addr, Client: replicatest.Client(task)})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return res
}

// TestSyncVerifyRecover is the round trip on files: a first sync (full,
// the task is new), a diff sync after changes costs about the changed
// bytes, verify finds exactly the corrupted pieces, recover restores.
func TestSyncVerifyRecover(t *testing.T) {
	t.Parallel()
	const size = 24 << 20
	srv := replicatest.Start(t, t.TempDir(), "127.0.0.1:0")
	src, data := blkDevice(t, 1, size)

	st := runSync(t, syncCfg(t, src, srv.Addr, "rt", SyncDiff))
	if st.Mode != SyncFull || st.BlocksSent != size>>20 {
		t.Fatalf("first sync of a new task: %+v", st)
	}
	if !bytes.Equal(srv.Image(t, "rt"), data) {
		t.Fatal("image differs after the full sync")
	}
	if res := runVerify(t, src, srv.Addr, "rt"); !res.Equal() {
		t.Fatalf("verify after the full sync: %+v", res.Ranges)
	}

	// Unchanged: a few hundred bytes on the wire.
	st = runSync(t, syncCfg(t, src, srv.Addr, "rt", SyncDiff))
	if st.BlocksSent != 0 || st.WireOut+st.WireIn > 8<<10 {
		t.Fatalf("diff sync of an unchanged device: %+v", st)
	}

	// 60 pages changed and 100 KiB zeroed.
	change(t, src, data, 2, 60, 5<<20+4096, 100<<10)
	st = runSync(t, syncCfg(t, src, srv.Addr, "rt", SyncDiff))
	changed := int64(60*4096 + 100<<10)
	if st.WriteBytes+st.DiscardBytes > changed || st.WriteBytes+st.DiscardBytes < changed-8*4096 {
		t.Fatalf("diff sync moved %d+%d bytes for about %d changed", st.WriteBytes, st.DiscardBytes, changed)
	}
	if wire := st.WireOut + st.WireIn; wire > st.WriteBytes+st.WriteBytes/10+size/1000 {
		t.Fatalf("diff sync: %d bytes on the wire for %d bytes of data", wire, st.WriteBytes)
	}
	if !bytes.Equal(srv.Image(t, "rt"), data) {
		t.Fatal("image differs after the diff sync")
	}

	// Corrupt the image: verify reports exactly those 512-byte pieces.
	img := filepath.Join(srv.Dir, "rt", "image")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	offs := []int64{1000, 7<<20 + 513, size - 1}
	for _, off := range offs {
		if _, err := f.WriteAt([]byte{^data[off]}, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	res := runVerify(t, src, srv.Addr, "rt")
	var want []Range
	for _, off := range offs {
		want = append(want, Range{off / 512 * 512, 512})
	}
	if len(res.Ranges) != len(want) {
		t.Fatalf("verify found %v, want %v", res.Ranges, want)
	}
	for i := range want {
		if res.Ranges[i] != want[i] {
			t.Fatalf("verify found %v, want %v", res.Ranges, want)
		}
	}

	// Recover the (corrupted) image into a copy of the source: only the
	// three pieces travel.
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rst, err := Recover(t.Context(), RecoverConfig{Target: target, Addr: srv.Addr, Client: replicatest.Client("rt")})
	if err != nil {
		t.Fatal(err)
	}
	if rst.Full || rst.DataBytes > 3*4096 || rst.Ranges != 3 {
		t.Fatalf("recover: %+v", rst)
	}
	got, _ := os.ReadFile(target)
	if !bytes.Equal(got, srv.Image(t, "rt")) {
		t.Fatal("the target differs from the image after recover")
	}
	// Into a new file: everything, zeros not sent.
	target2 := filepath.Join(t.TempDir(), "new")
	rst, err = Recover(t.Context(), RecoverConfig{Target: target2, Addr: srv.Addr, Client: replicatest.Client("rt")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(target2)
	if !rst.Full || !bytes.Equal(got, srv.Image(t, "rt")) || rst.DataBytes >= size*3/4 {
		t.Fatalf("recover into a new file: %+v, equal %v", rst, bytes.Equal(got, srv.Image(t, "rt")))
	}
}

// TestSyncResume: a sync stopped half way resumes at the first block that
// is not durable, and sends nothing before it.
func TestSyncResume(t *testing.T) {
	t.Parallel()
	const size = 32 << 20
	srv := replicatest.Start(t, t.TempDir(), "127.0.0.1:0")
	src, data := blkDevice(t, 3, size)
	cfg := syncCfg(t, src, srv.Addr, "res", SyncFull)
	cfg.MaxInFlight = 2 << 20
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for cfg.Progress.Moved() < 10<<20 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	st, err := Sync(ctx, cfg)
	cancel()
	if err == nil || st.Complete {
		t.Fatalf("the stopped sync: %v, %+v", err, st)
	}
	t.Logf("stopped after %d blocks sent", st.BlocksSent)

	cfg.Progress = &Progress{}
	st2 := runSync(t, cfg)
	if !st2.Resumed || st2.StartBlock == 0 || st2.Journal != st.Journal {
		t.Fatalf("the second sync did not resume the first: %+v", st2)
	}
	if sent := st2.StartBlock + st2.BlocksSent; sent != size>>20 {
		t.Fatalf("resumed at block %d and sent %d blocks of %d", st2.StartBlock, st2.BlocksSent, size>>20)
	}
	if !bytes.Equal(srv.Image(t, "res"), data) {
		t.Fatal("image differs after the resumed sync")
	}
	// A third sync starts a new run (the second completed).
	st3 := runSync(t, cfg)
	if st3.Resumed || st3.Journal == st2.Journal || st3.BlocksSent != size>>20 {
		t.Fatalf("a sync after a complete one: %+v", st3)
	}
}

// TestSyncServerRestart: the server goes away during a sync and comes
// back; the sync reconnects and finishes, resending at most what was not
// durable.
func TestSyncServerRestart(t *testing.T) {
	t.Parallel()
	const size = 32 << 20
	dir := t.TempDir()
	srv := replicatest.Start(t, dir, "127.0.0.1:0")
	src, data := blkDevice(t, 4, size)
	cfg := syncCfg(t, src, srv.Addr, "rs", SyncFull)
	cfg.MaxInFlight = 2 << 20
	cfg.RetryFor = 30 * time.Second
	log := replicatest.NewLog(t)
	cfg.Log = log.Logger
	done := make(chan struct{})
	var srv2 *replicatest.Server
	go func() {
		defer close(done)
		for cfg.Progress.Moved() < 8<<20 {
			time.Sleep(time.Millisecond)
		}
		srv.Stop()
		// The sync fails to reconnect to the dead server before it comes back.
		log.WaitFor(t, "cannot connect to", log.Count("cannot connect to")+1)
		srv2 = replicatest.Start(t, dir, srv.Addr)
	}()
	st := runSync(t, cfg)
	<-done
	if st.Sessions < 2 {
		t.Fatalf("one session only: %+v", st)
	}
	// What was durable is not sent again: at most what was in flight (the
	// credit) and the window being filled go twice.
	var nonzero int64
	for i := 0; i < size; i += 4096 {
		if !digest.IsZero(data[i : i+4096]) {
			nonzero += 4096
		}
	}
	if st.WriteBytes > nonzero+replicatest.Credit+1<<20 {
		t.Fatalf("%d bytes of data sent for %d bytes of data on the device", st.WriteBytes, nonzero)
	}
	if !bytes.Equal(srv2.Image(t, "rs"), data) {
		t.Fatal("image differs after the sync across a restart")
	}
}

// TestSyncMarkFirst: the mark is put before anything is read, named in
// the journal identity, and kept when the sync resumes.
func TestSyncMarkFirst(t *testing.T) {
	t.Parallel()
	srv := replicatest.Start(t, t.TempDir(), "127.0.0.1:0")
	src, _ := blkDevice(t, 5, 4<<20)
	var marks []string
	cfg := syncCfg(t, src, srv.Addr, "mk", SyncDiff)
	cfg.MarkFirst, cfg.DMName = true, "lw"
	cfg.mark = func(name, label string) error {
		if name != "lw" {
			t.Errorf("mark sent to %q", name)
		}
		marks = append(marks, label)
		return nil
	}
	st := runSync(t, cfg)
	if len(marks) != 1 || st.Mark != marks[0] {
		t.Fatalf("marks %q, stats %+v", marks, st)
	}
	id, ok := parseSyncID(st.Journal)
	if !ok || id.mark != st.Mark || id.size != 4<<20 || id.blockSize != DefaultBlockSize {
		t.Fatalf("journal %q", st.Journal)
	}
	cfg.mark = func(name, label string) error { return errors.New("no device-mapper here") }
	if _, err := Sync(t.Context(), cfg); err == nil || !errors.As(err, new(*LocalError)) {
		t.Fatalf("a failing mark: %v", err)
	}
}

func TestSyncIDRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range []syncID{{1 << 20, 1 << 30, 0xabc, ""}, {4096, 512, 1, "logship-sync-0000000000000001"}} {
		got, ok := parseSyncID(id.String())
		if !ok || got != id {
			t.Fatalf("%q parsed as %+v, %v", id.String(), got, ok)
		}
		if !control.IsSyncJournal(id.String()) {
			t.Fatalf("%q is not a sync journal", id.String())
		}
	}
	for _, s := range []string{"logship-sync v2 bs=1", "xxh64:0123456789abcdef", "logship-sync v1 bs=x size=1 run=0", "logship-sync v1 bs=1 size=1 run=0 color=red"} {
		if _, ok := parseSyncID(s); ok {
			t.Fatalf("%q parsed", s)
		}
	}
}

// TestVerifySizes: a source longer than the image differs by its tail.
func TestVerifySizes(t *testing.T) {
	t.Parallel()
	srv := replicatest.Start(t, t.TempDir(), "127.0.0.1:0")
	src, data := blkDevice(t, 6, 2<<20)
	runSync(t, syncCfg(t, src, srv.Addr, "sz", SyncFull))
	if err := os.WriteFile(src, append(data, make([]byte, 4096)...), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runVerify(t, src, srv.Addr, "sz")
	if len(res.Ranges) != 1 || res.Ranges[0] != (Range{2 << 20, 4096}) {
		t.Fatalf("ranges %v", res.Ranges)
	}
	// A task that does not exist.
	if _, err := Verify(t.Context(), VerifyConfig{Source: src, Addr: srv.Addr, Client: replicatest.Client("none")}); !errors.As(err, new(*control.TaskError)) {
		t.Fatalf("verify of a missing task: %v", err)
	}
}

// TestRecoverRefused: a locked target, and --at on a server that did not
// retain the task's history, are refused before anything is written.
func TestRecoverRefused(t *testing.T) {
	t.Parallel()
	srv := replicatest.Start(t, t.TempDir(), "127.0.0.1:0")
	src, _ := blkDevice(t, 7, 1<<20)
	runSync(t, syncCfg(t, src, srv.Addr, "lk", SyncFull))
	target := filepath.Join(t.TempDir(), "t")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := devio.Open(target, devio.Options{Write: true, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Recover(t.Context(), RecoverConfig{Target: target, Addr: srv.Addr, Client: replicatest.Client("lk")})
	held.Close()
	if !errors.Is(err, devio.ErrBusy) {
		t.Fatalf("recover into a locked file: %v", err)
	}
	_, err = Recover(t.Context(), RecoverConfig{Target: target, Addr: srv.Addr, Client: replicatest.Client("lk"), At: "m"})
	if c, _ := control.CodeOf(err); !errors.As(err, new(*control.TaskError)) || c != control.CodeNoHistory {
		t.Fatalf("recover --at without a retained history: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Fatalf("the target was written: %q", b)
	}
}

func TestLeafRuns(t *testing.T) {
	t.Parallel()
	tr := digest.Tree{Size: 3 << 20, Granularity: 4096, BlockSize: 1 << 20}
	got := leafRuns(tr, []int64{0, 1, 2, 5, 255, 256, 257, 767})
	want := []Range{{0, 3 * 4096}, {5 * 4096, 4096}, {255 * 4096, 4096}, {1 << 20, 2 * 4096}, {767 * 4096, 4096}}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
}

// TestRecoverNoTask: a recover that fails before writing anything leaves
// no file it created.
func TestRecoverNoTask(t *testing.T) {
	t.Parallel()
	srv := replicatest.Start(t, t.TempDir(), "127.0.0.1:0")
	target := filepath.Join(t.TempDir(), "new")
	_, err := Recover(t.Context(), RecoverConfig{Target: target, Addr: srv.Addr, Client: replicatest.Client("none")})
	if !errors.As(err, new(*control.TaskError)) {
		t.Fatalf("recover of a missing task: %v", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the target was left behind: %v", err)
	}
}
