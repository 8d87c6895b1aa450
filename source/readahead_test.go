package source

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

func TestPoolClass(t *testing.T) {
	if 1<<maxPooledShift != parallel.MaxPayload {
		t.Fatalf("maxPooledShift %d, MaxPayload is %d", maxPooledShift, parallel.MaxPayload)
	}
	for _, tc := range []struct{ n, index, size int }{
		{minPooled + 1, 0, minPooled * 5 / 4},
		{minPooled * 5 / 4, 0, minPooled * 5 / 4},
		{minPooled*5/4 + 1, 1, minPooled * 6 / 4},
		{2 * minPooled, 3, 2 * minPooled},
		{1<<20 + 32, (20-minPooledShift)*4 + 0, 1<<20 + 1<<18},
		{parallel.MaxPayload, len(payloadPools) - 1, parallel.MaxPayload},
	} {
		if i, size := poolClass(tc.n); i != tc.index || size != tc.size {
			t.Errorf("poolClass(%d) = %d, %d; want %d, %d", tc.n, i, size, tc.index, tc.size)
		}
	}
	// Every size: a class that holds it, wastes less than a quarter of
	// itself, and maps its own size to itself.
	last := -1
	for n := minPooled + 1; n <= parallel.MaxPayload; n += 509 {
		i, size := poolClass(n)
		if i < 0 || i >= len(payloadPools) || size < n || 4*(size-n) >= size || i < last {
			t.Fatalf("poolClass(%d) = %d, %d", n, i, size)
		}
		if j, s := poolClass(size); j != i || s != size {
			t.Fatalf("poolClass(%d) = %d, %d; the class of %d is %d", size, j, s, n, i)
		}
		last = i
	}
}

func TestPayloadPool(t *testing.T) {
	for _, n := range []int{0, 100, minPooled, minPooled + 1, 1<<20 + 32, parallel.MaxPayload, parallel.MaxPayload + 1} {
		b := getPayload(n)
		if len(b) != n {
			t.Fatalf("getPayload(%d): %d bytes", n, len(b))
		}
		if n > minPooled && n <= parallel.MaxPayload {
			if _, size := poolClass(n); cap(b) != size {
				t.Fatalf("getPayload(%d): capacity %d, its class is %d", n, cap(b), size)
			}
		}
		putPayload(b)
	}
	// A buffer of another capacity is not taken in: what comes out of a
	// pool always has its class's capacity.
	const n = 1<<20 + 32
	_, size := poolClass(n)
	for range 10 {
		putPayload(make([]byte, n, size+1))
		putPayload(make([]byte, n, size-1))
	}
	for range 20 {
		if b := getPayload(n); cap(b) != size {
			t.Fatalf("getPayload(%d): capacity %d, want %d", n, cap(b), size)
		}
	}
}

// mixedWrites is a journal whose writes alternate between large (from
// the size at which restSource reads headers alone, and across hashChunk)
// and small ones, with marks and flushes between.
func mixedWrites(t testing.TB, ss int) ([]byte, int64) {
	t.Helper()
	var b fixtures.WriterAtBuffer
	w, err := journal.NewWriter(&b, ss)
	if err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	data := make([]byte, 2<<20+64<<10)
	for i := range data {
		data[i] = byte(i*13 + i>>12)
	}
	sector := func(off int) uint64 { return uint64(off / ss) }
	for i, n := range []int{1 << 20, 4 << 10, largePayload, largePayload - ss, 2 << 20, 3 * ss, hashChunk + ss, 1 << 20, ss, 700 << 10} {
		n = n / ss * ss
		off := (i * 797 << 10) % (size - n) / ss * ss
		if err := w.Write(sector(off), data[i*ss:i*ss+n], 0); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 1:
			err = w.Flush()
		case 2:
			err = w.Mark("m")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), size
}

// TestRestSource: reading headers alone after large entries yields the
// entries and payloads of a plain walk.
func TestRestSource(t *testing.T) {
	j, _ := mixedWrites(t, 512)
	plain, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if err != nil {
		t.Fatal(err)
	}
	src := &restSource{r: r}
	ctx := context.Background()
	headerOnly := 0
	for {
		if src.large {
			headerOnly++
		}
		got, err := src.Next(ctx)
		want, werr := plain.Next()
		if err != werr {
			t.Fatalf("entry %d: error %v, a plain walk says %v", plain.Index(), err, werr)
		}
		if err == io.EOF {
			break
		}
		if got != want {
			t.Fatalf("entry %+v, a plain walk reads %+v", got, want)
		}
		gp, wp := make([]byte, got.PayloadLen()), make([]byte, want.PayloadLen())
		if err := src.ReadPayload(got, gp); err != nil {
			t.Fatal(err)
		}
		if err := plain.ReadPayload(want, wp); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gp, wp) {
			t.Fatalf("entry %d: payload differs", got.Index)
		}
	}
	if headerOnly == 0 {
		t.Fatal("no header was read alone")
	}
}
