package devio

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// strictReader is a device that refuses reads not aligned to bs in
// offset, length and buffer address, as O_DIRECT does.
type strictReader struct {
	b     []byte
	bs    int
	reads int
}

func (r *strictReader) ReadAt(p []byte, off int64) (int, error) {
	r.reads++
	if off%int64(r.bs) != 0 || len(p)%r.bs != 0 || len(p) > 0 && uintptr(unsafe.Pointer(&p[0]))%uintptr(r.bs) != 0 {
		return 0, fmt.Errorf("unaligned read of %d bytes at %d", len(p), off)
	}
	return bytes.NewReader(r.b).ReadAt(p, off)
}

func TestAlignedReader(t *testing.T) {
	t.Parallel()
	for _, bs := range []int{512, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			data := make([]byte, 3*maxBounce+5*bs)
			rng := rand.New(rand.NewPCG(uint64(bs), 1))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			sr := &strictReader{b: data, bs: bs}
			ar, err := newAlignedReader(sr, bs)
			if err != nil {
				t.Fatal(err)
			}
			ref := bytes.NewReader(data)
			size := int64(len(data))
			cases := [][2]int64{
				{0, 0}, {0, 1}, {0, 28}, {1, 1}, {int64(bs) - 1, 2}, {int64(bs), int64(bs)},
				{100, 3 * maxBounce}, {0, size}, {size - 1, 1}, {size - 10, 20}, {size, 1}, {size + 5, 3},
				{7, maxBounce - 3}, {maxBounce - 1, 2},
			}
			for range 200 {
				off := rng.Int64N(size)
				cases = append(cases, [2]int64{off, rng.Int64N(2 * maxBounce)})
			}
			for _, c := range cases {
				off, n := c[0], c[1]
				got := make([]byte, n)
				wantB := make([]byte, n)
				gn, gerr := ar.ReadAt(got, off)
				wn, werr := ref.ReadAt(wantB, off)
				if gn != wn || (gerr == nil) != (werr == nil) || !bytes.Equal(got[:gn], wantB[:wn]) {
					t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", n, off, gn, gerr, wn, werr)
				}
				if werr != nil && gerr != io.EOF {
					t.Fatalf("ReadAt(%d bytes at %d): %v, want io.EOF", n, off, gerr)
				}
			}
			if _, err := ar.ReadAt(make([]byte, 1), -1); err == nil {
				t.Fatal("negative offset accepted")
			}
		})
	}
	if _, err := newAlignedReader(&strictReader{}, 1000); err == nil {
		t.Fatal("block size 1000 accepted")
	}
}
