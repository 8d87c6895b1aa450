package snapdiff_test

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/snapdiff"
)

// TestDiff: replaying the delta onto OLD gives NEW byte for byte; the
// delta touches only sectors that differ, as writes where NEW has data and
// discards where it became zero, coalesced into one entry per run (within
// a chunk); Stats counts exactly the differing sectors.
func TestDiff(t *testing.T) {
	t.Parallel()
	const size = 1 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	old := make([]byte, size)
	for i := range old {
		old[i] = byte(rng.Uint32())
	}
	scattered := bytes.Clone(old)
	for range 50 { // changes of 1 byte to 16 KiB
		off := rng.IntN(size - 16384)
		for i := off; i < off+1+rng.IntN(16384); i++ {
			scattered[i] = byte(rng.Uint32())
		}
	}
	clear(scattered[200<<10 : 300<<10])
	tail := bytes.Clone(old)
	tail[size-1] ^= 1
	zeroed := make([]byte, size)
	for _, tc := range []struct {
		name     string
		old, new []byte
		chunk    int64
	}{
		{"unchanged", old, old, 64 << 10},
		{"scattered", old, scattered, 64 << 10},
		{"scattered/small chunks", old, scattered, 8 << 10},
		{"last byte", old, tail, 64 << 10},
		{"all zeroed", old, zeroed, 64 << 10},
		{"from zeros", zeroed, scattered, 64 << 10},
	} {
		for _, ss := range []int{512, 4096} {
			t.Run(tc.name+"/"+strconv.Itoa(ss), func(t *testing.T) {
				var buf fixtures.WriterAtBuffer
				w, err := journal.NewWriter(&buf, ss)
				if err != nil {
					t.Fatal(err)
				}
				st, err := snapdiff.Diff(t.Context(), w, bytes.NewReader(tc.old), bytes.NewReader(tc.new), size, tc.chunk)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				j := buf.Bytes()

				img := bytes.Clone(tc.old)
				if err := fixtures.ReplaySequential(j, img, -1); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(img, tc.new) {
					t.Fatal("OLD + delta differs from NEW")
				}

				var wantWritten, wantDiscarded int64
				for s := 0; s < size; s += ss {
					x, y := tc.old[s:s+ss], tc.new[s:s+ss]
					switch {
					case bytes.Equal(x, y):
					case bytes.Count(y, []byte{0}) == ss:
						wantDiscarded += int64(ss)
					default:
						wantWritten += int64(ss)
					}
				}
				if st.Written != wantWritten || st.Discarded != wantDiscarded {
					t.Fatalf("stats %+v, want %d written, %d discarded", st, wantWritten, wantDiscarded)
				}

				r, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
				if err != nil {
					t.Fatal(err)
				}
				prevEnd, prevDiscard := int64(-1), false
				for e, err := range r.All() {
					if err != nil {
						t.Fatal(err)
					}
					for s := e.Start(); s < e.End(); s += int64(ss) {
						if bytes.Equal(tc.old[s:s+int64(ss)], tc.new[s:s+int64(ss)]) {
							t.Fatalf("entry %d covers the unchanged sector at %d", e.Index, s)
						}
					}
					if e.IsDiscard() != (bytes.Count(tc.new[e.Start():e.End()], []byte{0}) == int(e.End()-e.Start())) {
						t.Fatalf("entry %d (%s) over %d+%d: a discard must be exactly a range that became zero", e.Index, e.Flags, e.Start(), e.End()-e.Start())
					}
					if e.Start() == prevEnd && e.IsDiscard() == prevDiscard && e.Start()%tc.chunk != 0 {
						t.Fatalf("entry %d continues entry %d within a chunk: not coalesced", e.Index, e.Index-1)
					}
					prevEnd, prevDiscard = e.End(), e.IsDiscard()
				}
			})
		}
	}
}

// TestDiffErrors: a size or chunk that is not a multiple of the sector.
func TestDiffErrors(t *testing.T) {
	t.Parallel()
	img := make([]byte, 8192)
	for _, tc := range []struct {
		name        string
		size, chunk int64
	}{
		{"size", 8000, 4096},
		{"chunk", 8192, 1000},
		{"zero chunk", 8192, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf fixtures.WriterAtBuffer
			w, err := journal.NewWriter(&buf, 512)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := snapdiff.Diff(t.Context(), w, bytes.NewReader(img), bytes.NewReader(img), tc.size, tc.chunk); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
