package replay

import (
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/logship/logship/devio"
)

// TestWritebackHandover: the writer hands the hull of what it wrote to
// the flusher once writebackBytes have piled up, never blocks when the
// flusher is busy (the span grows instead), and keeps nothing it handed
// over.
func TestWritebackHandover(t *testing.T) {
	const mib = 1 << 20
	w := &writeback{spans: make(chan span, 1)}
	steps := []struct {
		add  span
		n    int64
		want []span // handed over by this add
	}{
		{span{0, 4 * mib}, 4 * mib, nil},
		{span{}, 0, nil}, // an empty window
		{span{4 * mib, 8 * mib}, 4 * mib, []span{{0, 8 * mib}}},
		{span{20 * mib, 21 * mib}, 1 * mib, nil},
		{span{10 * mib, 17 * mib}, 7 * mib, []span{{10 * mib, 21 * mib}}},
		// The flusher has not taken the last one: the span waits and grows.
		{span{30 * mib, 39 * mib}, 9 * mib, nil},
		{span{2 * mib, 3 * mib}, 1 * mib, nil},
	}
	var queued []span
	for i, s := range steps {
		w.add(s.add, s.n)
		for len(w.spans) > 0 && len(queued) < len(s.want) {
			queued = append(queued, <-w.spans)
		}
		if len(queued) != len(s.want) || (len(queued) > 0 && queued[0] != s.want[0]) {
			t.Fatalf("step %d: handed over %v, want %v", i, queued, s.want)
		}
		if i == 4 {
			w.spans <- span{-1, -1} // the flusher is busy from here on
		}
		queued = nil
	}
	if want := (span{2 * mib, 39 * mib}); w.pending != want || w.bytes != 10*mib {
		t.Fatalf("pending %v (%d bytes), want %v (%d bytes)", w.pending, w.bytes, want, 10*mib)
	}
	var nilw *writeback
	nilw.add(span{0, 1}, 1) // a nil writeback does nothing
	nilw.close()
}

// TestNewWriteback: writeback applies to a devio file opened for buffered
// writes, not to one opened with O_DIRECT nor to other targets.
func TestNewWriteback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	for _, tc := range []struct {
		direct bool
		want   bool
	}{{false, true}, {true, false}} {
		d, err := devio.Open(path, devio.Options{Create: true, Size: 1 << 20, Direct: tc.direct})
		if err != nil {
			t.Fatal(err)
		}
		w := newWriteback(d)
		if (w != nil) != tc.want {
			t.Errorf("direct=%v: writeback %v, want one: %v", tc.direct, w, tc.want)
		}
		if w != nil {
			go w.close()
			if err := w.run(); err != nil {
				t.Error(err)
			}
		}
		d.Close()
	}
	if w := newWriteback(nopTarget{}); w != nil {
		t.Errorf("writeback for a target that is no devio.Device")
	}
}

type nopTarget struct{}

func (nopTarget) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }
func (nopTarget) Discard(off, n int64) error               { return nil }
func (nopTarget) Sync() error                              { return nil }

// TestBuffers: n buffers of the size asked, aligned, disjoint, writable.
func TestBuffers(t *testing.T) {
	for _, tc := range []struct{ n, size int }{{1, chunkSize}, {3, chunkSize}, {8, chunkSize}, {3, 5000}} {
		n, size := tc.n, tc.size
		bs, free := buffers(n, size)
		if len(bs) != n {
			t.Fatalf("%d buffers, want %d", len(bs), n)
		}
		for i, b := range bs {
			if len(b) != size || cap(b) != size {
				t.Fatalf("buffer %d: len %d cap %d, want %d", i, len(b), cap(b), size)
			}
			if a := uintptr(unsafe.Pointer(&b[0])); a%bufAlign != 0 {
				t.Fatalf("buffer %d at %#x: not aligned to %d", i, a, bufAlign)
			}
			for j := range b {
				b[j] = byte(i + 1)
			}
		}
		for i, b := range bs {
			for j, c := range b {
				if c != byte(i+1) {
					t.Fatalf("buffer %d byte %d is %d: buffers overlap", i, j, c)
				}
			}
		}
		free()
	}
}
