package parallel

import "testing"

func TestPool(t *testing.T) {
	if 1<<maxPooledShift != MaxPayload {
		t.Fatalf("maxPooledShift %d, MaxPayload %d", maxPooledShift, MaxPayload)
	}
	for _, tc := range []struct {
		n       int
		wantCap int
	}{
		{0, 0}, {100, 100}, {minPooled - 1, minPooled - 1},
		{minPooled, minPooled}, {minPooled + 1, 2 * minPooled},
		{1 << 20, 1 << 20}, {1<<20 + 4096, 2 << 20}, {MaxPayload, MaxPayload},
	} {
		b := getPayload(tc.n)
		if len(b) != tc.n || cap(b) != tc.wantCap {
			t.Errorf("getPayload(%d): len %d cap %d, want cap %d", tc.n, len(b), cap(b), tc.wantCap)
		}
		for i := range b {
			b[i] = 0xAA
		}
		putPayload(b)
		// What comes back out of a pool has the length asked for.
		if c := getPayload(tc.n); len(c) != tc.n || cap(c) < tc.n {
			t.Errorf("getPayload(%d) after a put: len %d cap %d", tc.n, len(c), cap(c))
		}
	}
	// A buffer of another capacity is not pooled (it would be handed
	// out for a class it does not fill).
	putPayload(make([]byte, 3*minPooled))
	if b := getPayload(3 * minPooled); cap(b) != 4*minPooled {
		t.Errorf("getPayload(%d) after putting a buffer of capacity %d: cap %d", 3*minPooled, 3*minPooled, cap(b))
	}
}
