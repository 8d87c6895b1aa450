package parallel

import (
	"testing"
	"unsafe"
)

func TestPoolClasses(t *testing.T) {
	if 1<<maxPooledShift != MaxPayload {
		t.Fatalf("maxPooledShift %d, MaxPayload %d", maxPooledShift, MaxPayload)
	}
	if got := classSize(poolClasses - 1); got != MaxPayload {
		t.Fatalf("the last class holds %d bytes, want MaxPayload %d", got, MaxPayload)
	}
	for _, tc := range []struct {
		n, size int
	}{
		{minPooled, minPooled}, {minPooled + 1, minPooled + minPooled/16},
		{1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1<<16}, {1<<20 + 1<<16, 1<<20 + 1<<16},
		{1<<20 + 1<<16 + 1, 1<<20 + 1<<17}, {3 << 20, 3 << 20}, {3<<20 + 1, 3<<20 + 1<<17},
		{MaxPayload - 1, MaxPayload}, {MaxPayload, MaxPayload},
	} {
		if got := classSize(poolClass(tc.n)); got != tc.size {
			t.Errorf("a payload of %d bytes gets a buffer of %d, want %d", tc.n, got, tc.size)
		}
	}
	// Every class is the smallest that holds its sizes, and the classes
	// grow.
	for c := 1; c < poolClasses; c++ {
		lo, hi := classSize(c-1), classSize(c)
		if hi <= lo || poolClass(lo+1) != c || poolClass(hi) != c {
			t.Fatalf("class %d: %d..%d bytes; poolClass(%d) = %d, poolClass(%d) = %d", c, lo+1, hi, lo+1, poolClass(lo+1), hi, poolClass(hi))
		}
	}
}

func TestPool(t *testing.T) {
	for _, tc := range []struct {
		n       int
		wantCap int
	}{
		{0, 0}, {100, 100}, {minPooled - 1, minPooled - 1},
		{minPooled, minPooled}, {minPooled + 1, minPooled + minPooled/16},
		{1 << 20, 1 << 20}, {1<<20 + 4096, 1<<20 + 1<<16}, {MaxPayload, MaxPayload},
	} {
		p := &payloadPool{limit: 64 << 20}
		b := p.get(tc.n)
		if len(b) != tc.n || cap(b) != tc.wantCap {
			t.Errorf("get(%d): len %d cap %d, want cap %d", tc.n, len(b), cap(b), tc.wantCap)
		}
		for i := range b {
			b[i] = 0xAA
		}
		p.put(b)
		// What comes back out of the pool is the same buffer, with the
		// length asked for.
		c := p.get(tc.n)
		if len(c) != tc.n || cap(c) != tc.wantCap {
			t.Errorf("get(%d) after a put: len %d cap %d", tc.n, len(c), cap(c))
		}
		if tc.n >= minPooled && &c[0] != &b[0] {
			t.Errorf("get(%d) after a put: a new buffer, not the one put", tc.n)
		}
		if p.idle != 0 {
			t.Errorf("get(%d): %d bytes idle after the buffer was taken back", tc.n, p.idle)
		}
	}
	p := &payloadPool{limit: 64 << 20}
	// A buffer of another capacity is not pooled (it would be handed
	// out for a class it does not fill).
	p.put(make([]byte, 3*minPooled+1))
	if p.idle != 0 {
		t.Errorf("a buffer of capacity %d was pooled", 3*minPooled+1)
	}
	// A buffer one class up serves a smaller payload.
	big := p.get(1<<20 + 1)
	p.put(big)
	if b := p.get(1 << 20); &b[0] != &big[0] || len(b) != 1<<20 {
		t.Errorf("get(%d) did not reuse the idle buffer of capacity %d", 1<<20, cap(big))
	}
	// Beyond the limit, buffers are dropped.
	p = &payloadPool{limit: 3 << 20}
	bufs := [][]byte{p.get(1 << 20), p.get(1 << 20), p.get(1 << 20), p.get(1 << 20)}
	for _, b := range bufs {
		p.put(b)
	}
	if p.idle != 3<<20 {
		t.Errorf("%d bytes idle with a limit of %d after four 1 MiB buffers were put", p.idle, 3<<20)
	}
	// Large buffers are carved one after the other out of a slab that
	// starts on a huge page.
	p = &payloadPool{limit: 64 << 20}
	a, b := p.get(1<<20), p.get(1<<20)
	if pa, pb := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0])); pa&(hugePage-1) != 0 || pb != pa+1<<20 {
		t.Errorf("two fresh 1 MiB buffers at 0x%x and 0x%x: want the first on a huge page, the second right after it", pa, pb)
	}
	// A session carves at most twice its credit out of slabs; then
	// buffers are ordinary allocations (a slab lives as long as any of
	// its buffers: a few kept alive must not pin slabs without bound).
	p = &payloadPool{limit: 4 << 20}
	var carved []uintptr
	for range 12 {
		b := p.get(1 << 20)
		carved = append(carved, uintptr(unsafe.Pointer(&b[0])))
	}
	if p.carved != 8<<20 {
		t.Errorf("carved %d bytes out of slabs with a limit of %d, want %d", p.carved, 4<<20, 8<<20)
	}
	for i := 1; i < 8; i++ {
		if carved[i] != carved[0]+uintptr(i)<<20 {
			t.Errorf("buffer %d at 0x%x, want it carved right after the first (0x%x)", i, carved[i], carved[0])
		}
	}
	// A nil pool keeps nothing.
	var none *payloadPool
	n := none.get(1 << 20)
	none.put(n)
	if len(n) != 1<<20 {
		t.Errorf("nil pool: get(%d) gave %d bytes", 1<<20, len(n))
	}
}
