package source

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/logship/logship/blocksync"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures/replicatest"
	"github.com/logship/logship/journal"
)

// liveVolume is a device file and the log of every write to it, a
// journal file that a ship follows, as a log-writes target keeps them.
type liveVolume struct {
	t   *testing.T
	mu  sync.Mutex
	dev *os.File
	log *os.File
	w   *journal.Writer
	rng *rand.Rand
}

func newLiveVolume(t *testing.T, dir string, size int64) *liveVolume {
	t.Helper()
	v := &liveVolume{t: t, rng: rand.New(rand.NewPCG(5, 5))}
	var err error
	if v.dev, err = os.Create(filepath.Join(dir, "dev")); err == nil {
		err = v.dev.Truncate(size)
	}
	if err == nil {
		v.log, err = os.Create(filepath.Join(dir, "log"))
	}
	if err == nil {
		v.w, err = journal.NewWriter(v.log, 512)
	}
	if err == nil {
		err = v.w.WriteSuper()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.dev.Close(); v.log.Close() })
	return v
}

// write puts n random 4 KiB writes on the device and in the log (logged
// only when logged is true: a write the target did not see).
func (v *liveVolume) write(n int, logged bool) []int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	fi, _ := v.dev.Stat()
	var offs []int64
	page := make([]byte, 4096)
	for range n {
		off := v.rng.Int64N(fi.Size()/4096) * 4096
		for i := range page {
			page[i] = byte(v.rng.Uint32())
		}
		if _, err := v.dev.WriteAt(page, off); err != nil {
			v.t.Fatal(err)
		}
		if logged {
			if err := v.w.Write(uint64(off/512), page, 0); err != nil {
				v.t.Fatal(err)
			}
		}
		offs = append(offs, off)
	}
	if err := v.w.WriteSuper(); err != nil {
		v.t.Fatal(err)
	}
	return offs
}

// mark logs a mark, as the target does for a dm message.
func (v *liveVolume) mark(label string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.w.Mark(label); err != nil {
		return err
	}
	return v.w.WriteSuper()
}

// TestVerifyAtMark: verify --at-mark against a real server while a ship
// follows the log: equal after the workload, equal again right after more
// writes (the server waits for the mark); a write the log did not see is
// reported as exactly its range; a mark that never comes times out; a
// plain verify finds the task busy; with no ship running verify waits,
// and a ship that starts after the mark lets it finish.
func TestVerifyAtMark(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const size = 4 << 20
	v := newLiveVolume(t, dir, size)
	srv := replicatest.Start(t, filepath.Join(dir, "srv"), "127.0.0.1:0")
	cfg := config(t, filepath.Join(dir, "log"), srv.Addr, 3, size)
	cfg.Client.Task = "v"
	cfg.Follow = true
	cfg.Tail = journal.TailOptions{Poll: 5 * time.Millisecond, Settle: 4 * time.Millisecond}
	shipper, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	shipDone := make(chan error, 1)
	go func() { _, err := shipper.Run(ctx); shipDone <- err }()
	defer func() { cancel(); <-shipDone }()

	// The ship's session holds the task once it has shipped something
	// (and it identifies a live log by its first IDPrefix bytes).
	v.write(IDPrefix/4096+1, true)
	for shipper.Stats().Durable.NextEntry < 1 {
		select {
		case err := <-shipDone:
			t.Fatalf("ship ended: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	vcfg := blocksync.VerifyConfig{Source: filepath.Join(dir, "dev"), Addr: srv.Addr, Client: replicatest.Client("v"), AtMark: v.mark, MarkWait: time.Minute}
	for round := range 3 {
		v.write(200, true)
		res, err := blocksync.Verify(t.Context(), vcfg)
		if err != nil {
			t.Fatalf("round %d: verify at a mark: %v", round, err)
		}
		if !res.Equal() || res.Mark == "" {
			t.Fatalf("round %d: verify at mark %q: %d ranges differ (%v)", round, res.Mark, len(res.Ranges), res.Ranges)
		}
	}
	// A write the target did not log: exactly its range differs.
	offs := v.write(1, false)
	res, err := blocksync.Verify(t.Context(), vcfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []blocksync.Range{{Offset: offs[0], Length: 4096}}; !slices.Equal(res.Ranges, want) {
		t.Fatalf("an unlogged write at %d: ranges %v, want %v", offs[0], res.Ranges, want)
	}
	// A mark that never reaches the log.
	lost := vcfg
	lost.AtMark = func(string) error { return nil }
	lost.MarkWait = 300 * time.Millisecond
	if _, err := blocksync.Verify(t.Context(), lost); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("verify at a mark that is not logged: %v, want a deadline", err)
	}
	// Without --at-mark the task is the ship's.
	plain := vcfg
	plain.AtMark = nil
	if _, err := blocksync.Verify(t.Context(), plain); !isCode(err, control.CodeTaskBusy) {
		t.Fatalf("verify while a ship holds the task: %v, want TASK_BUSY", err)
	}
	// No ship: nobody applies the mark; verify gives up after MarkWait.
	cancel()
	if err := <-shipDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("ship: %v", err)
	}
	shipDone <- nil
	if _, err := blocksync.Verify(t.Context(), lost); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("verify at a mark with no ship running: %v, want a deadline", err)
	}
	// A ship that comes back applies it: verify waits for it, and the
	// open did not keep the ship out.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	shipper2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ship2 := make(chan error, 1)
	later := vcfg
	later.AtMark = func(label string) error {
		if err := v.mark(label); err != nil {
			return err
		}
		// The ship starts a while after the mark (the sleep is the thing
		// under test: verify must wait for a ship that is late).
		go func() { time.Sleep(200 * time.Millisecond); _, err := shipper2.Run(ctx2); ship2 <- err }()
		return nil
	}
	res, err = blocksync.Verify(t.Context(), later)
	if err != nil {
		t.Fatalf("verify at a mark, the ship starting after it: %v", err)
	}
	if want := []blocksync.Range{{Offset: offs[0], Length: 4096}}; !slices.Equal(res.Ranges, want) {
		t.Fatalf("ranges %v, want %v", res.Ranges, want)
	}
	cancel2()
	if err := <-ship2; !errors.Is(err, context.Canceled) {
		t.Fatalf("second ship: %v", err)
	}
}
