package replay_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replay"
)

// memTarget is an in-memory Target for unit tests. It needs no lock: Apply
// writes disjoint extents, so concurrent writes touch disjoint bytes.
type memTarget struct {
	img []byte
}

func (m *memTarget) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(m.img)) {
		return 0, fmt.Errorf("write past end")
	}
	return copy(m.img[off:], p), nil
}

func (m *memTarget) Discard(off, n int64) error {
	if off+n > int64(len(m.img)) {
		return fmt.Errorf("discard past end")
	}
	clear(m.img[off : off+n])
	return nil
}

func (m *memTarget) Sync() error { return nil }

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func reader(t testing.TB, j []byte) *journal.Reader {
	t.Helper()
	r, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReplayMatchesSequential: the parallel, coalescing replay gives exactly
// the image a one-entry-at-a-time replay gives, on random journals, both
// sector sizes, with small window caps so windows are also cut by size.
func TestReplayMatchesSequential(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		for seed := uint64(1); seed <= 8; seed++ {
			wl := fixtures.DefaultWorkload(seed, ss)
			wl.Overlap = 0.7
			j, err := wl.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, wl.DeviceSize)
			if err := fixtures.ReplaySequential(j, want, -1); err != nil {
				t.Fatal(err)
			}
			for _, caps := range []int{0, 3} {
				got := &memTarget{img: make([]byte, wl.DeviceSize)}
				p := replay.New(reader(t, j), got, replay.Options{Parallel: 8})
				if caps > 0 {
					p = replay.New(reader(t, j), got, replay.Options{Parallel: 8, Limits: barrierLimits(caps)})
				}
				st, err := p.Run(context.Background(), journal.Stop{}, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				if st.Entries != int64(wl.Entries) {
					t.Fatalf("replayed %d entries, want %d", st.Entries, wl.Entries)
				}
				if !bytes.Equal(got.img, want) {
					t.Fatalf("ss=%d seed=%d cap=%d: image differs from sequential replay at byte %d", ss, seed, caps, firstDiff(got.img, want))
				}
			}
		}
	}
}

// TestReplayLargeWrites: writes larger than a Replayer's piece (1 MiB),
// overlapping, so that pieces split parts and extents at every offset.
func TestReplayLargeWrites(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		wl := fixtures.DefaultWorkload(seed, 4096)
		wl.Entries, wl.DeviceSize, wl.MaxWriteSectors, wl.Overlap = 40, 12<<20, 700, 0.6
		j, err := wl.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, wl.DeviceSize)
		if err := fixtures.ReplaySequential(j, want, -1); err != nil {
			t.Fatal(err)
		}
		for _, par := range []int{1, 3} {
			got := &memTarget{img: make([]byte, wl.DeviceSize)}
			st, err := replay.New(reader(t, j), got, replay.Options{Parallel: par}).Run(context.Background(), journal.Stop{}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if st.Written < 4<<20 {
				t.Fatalf("seed %d: only %d bytes written: no large writes", seed, st.Written)
			}
			if !bytes.Equal(got.img, want) {
				t.Fatalf("seed=%d parallel=%d: image differs from sequential replay at byte %d", seed, par, firstDiff(got.img, want))
			}
		}
	}
}

// TestStopAndCut: stopping at an entry, and cutting windows at arbitrary
// entries, gives the sequential state at exactly that entry.
func TestStopAndCut(t *testing.T) {
	wl := fixtures.DefaultWorkload(42, 512)
	wl.Overlap = 0.8
	j, _ := wl.Bytes()
	for _, stopAt := range []int64{0, 1, 57, 200, 399} {
		want := make([]byte, wl.DeviceSize)
		if err := fixtures.ReplaySequential(j, want, stopAt); err != nil {
			t.Fatal(err)
		}
		got := &memTarget{img: make([]byte, wl.DeviceSize)}
		st, err := replay.New(reader(t, j), got, replay.Options{}).Run(context.Background(), journal.Stop{Limit: stopAt + 1}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries != stopAt+1 || !bytes.Equal(got.img, want) {
			t.Fatalf("stop at %d: %d entries, first diff at %d", stopAt, st.Entries, firstDiff(got.img, want))
		}
	}
	// Cut every 13 entries: at each cut the image is the sequential state there.
	got := &memTarget{img: make([]byte, wl.DeviceSize)}
	var checked int
	_, err := replay.New(reader(t, j), got, replay.Options{}).Run(context.Background(), journal.Stop{},
		func(e journal.Entry) bool { return e.Index%13 == 5 },
		func(e journal.Entry) error {
			want := make([]byte, wl.DeviceSize)
			if err := fixtures.ReplaySequential(j, want, e.Index); err != nil {
				return err
			}
			if !bytes.Equal(got.img, want) {
				return fmt.Errorf("at entry %d: image differs at byte %d", e.Index, firstDiff(got.img, want))
			}
			checked++
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if checked != (wl.Entries+7)/13 {
		t.Fatalf("checked %d points, want %d", checked, (wl.Entries+7)/13)
	}
}

// TestReplayOntoFile replays onto a real sparse file through devio, with
// and without writeback started behind the writer, with writes small and
// large (pieces of 1 MiB, and enough bytes for writeback to start).
func TestReplayOntoFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		writeback bool
		large     bool
	}{
		{"small", false, false},
		{"small/writeback", true, false},
		{"large", false, true},
		{"large/writeback", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wl := fixtures.DefaultWorkload(9, 4096)
			wl.Discard = 0.2
			if tc.large {
				wl.Entries, wl.DeviceSize, wl.MaxWriteSectors = 40, 16<<20, 300
			}
			replayOntoFile(t, wl, replay.Options{Writeback: tc.writeback})
		})
	}
}

func replayOntoFile(t *testing.T, wl fixtures.Workload, o replay.Options) {
	j, _ := wl.Bytes()
	path := filepath.Join(t.TempDir(), "img")
	// Start from garbage, not zeros: discards must really zero.
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xee}, int(wl.DeviceSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := devio.Open(path, devio.Options{Write: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Sequential reference from the same garbage.
	ref := bytes.Repeat([]byte{0xee}, int(wl.DeviceSize))
	if err := fixtures.ReplaySequential(j, ref, -1); err != nil {
		t.Fatal(err)
	}
	st, err := replay.New(reader(t, j), d, o).Run(context.Background(), journal.Stop{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Discarded == 0 {
		t.Fatal("no discards replayed")
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, ref) {
		t.Fatalf("file differs from sequential replay at byte %d", firstDiff(got, ref))
	}
}

func BenchmarkReplay(b *testing.B) {
	wl := fixtures.DefaultWorkload(1, 4096)
	wl.Entries, wl.DeviceSize, wl.MaxWriteSectors = 4000, 256<<20, 64
	wl.Flush, wl.FUA, wl.Mark = 0.01, 0.01, 0
	j, err := wl.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	var payload int64
	r := reader(b, j)
	for e, _ := range r.All() {
		payload += e.PayloadLen()
	}
	for _, par := range []int{1, 4} {
		b.Run(fmt.Sprintf("mem/parallel=%d", par), func(b *testing.B) {
			tgt := &memTarget{img: make([]byte, wl.DeviceSize)}
			b.SetBytes(payload)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := replay.New(reader(b, j), tgt, replay.Options{Parallel: par}).Run(context.Background(), journal.Stop{}, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func barrierLimits(n int) barrier.Limits { return barrier.Limits{MaxEntries: n} }
