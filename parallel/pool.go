package parallel

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Received payloads of minPooled bytes or more come from the session's
// pool of buffers and go back to it when the server releases their window
// (Window.Release): a server that receives hundreds of megabytes a second
// would otherwise allocate, and the kernel fault in and the runtime zero,
// every byte of them, only to read over the zeros.
//
// The pool is a free list per size class: 16 classes per power of two, so
// that a buffer wastes at most a sixteenth of its capacity (a 1 MiB write
// and its entry header take 1 MiB + 64 KiB, not 2 MiB). It belongs to one
// session and keeps at most limit bytes of capacity idle (the session's
// credit): what is in use is bounded by the credit, so the buffers a
// session holds, in use or idle, never take much more than twice its
// credit (for the slabs they come from, see below). A sync.Pool would not do: it
// drops its buffers at every garbage collection, and a server receiving at
// full speed collects several times a second.
//
// Large buffers are carved out of slabs of slabSize bytes aligned to huge
// pages and backed by them where the kernel allows (hugepages): every byte
// received is read from memory again at least twice (checksum, staging
// log or image write) after the CPU caches have lost it, and with 4 KiB
// pages such passes miss the TLB on every page, at a high cost under
// virtualization. A slab is ordinary Go memory: it lives as long as any
// buffer carved out of it, so a few buffers kept alive could pin many
// slabs; a session therefore carves at most twice its credit out of slabs
// in its life (then ordinary allocations follow), which bounds its slabs
// to about four times its credit, whatever a peer sends.
const (
	minPooledShift = 12 // 4 KiB
	minPooled      = 1 << minPooledShift
	maxPooledShift = 23 // MaxPayload (TestPool checks it)
	subShift       = 4
	subClasses     = 1 << subShift // classes per power of two
	// Class 0 is minPooled itself, the last class MaxPayload.
	poolClasses = (maxPooledShift-minPooledShift)*subClasses + 1
	// classReach is how many classes above the one that fits a get may
	// take a buffer from: up to about 1.2 times the size asked for.
	classReach = 3

	minSlabbed = 256 << 10 // smallest buffer carved out of a slab
	slabSize   = 16 << 20  // at least MaxPayload
	hugePage   = 2 << 20
)

// poolClass is the class of the smallest pool size that holds n bytes
// (minPooled ≤ n ≤ MaxPayload).
func poolClass(n int) int {
	e := bits.Len(uint(n-1)) - 1 // 2^e < n ≤ 2^(e+1)
	step := 1 << (e - subShift)
	sub := (n - 1<<e + step - 1) / step // 1..subClasses
	return (e-minPooledShift)*subClasses + sub
}

// classSize is the capacity of the buffers of class c.
func classSize(c int) int {
	c += subClasses - 1
	e := c/subClasses + minPooledShift - 1
	return 1<<e + (c%subClasses+1)<<(e-subShift)
}

// payloadPool is a session's free list of payload buffers. The zero
// value, or a nil pointer, keeps nothing: every buffer is a fresh one.
type payloadPool struct {
	mu     sync.Mutex
	free   [poolClasses][][]byte
	idle   int64  // capacity of the buffers in free
	limit  int64  // most capacity kept idle
	slab   []byte // the rest of the current slab
	carved int64  // capacity ever carved out of slabs (at most 2*limit)
}

// get returns a buffer of n bytes whose contents are undefined.
func (p *payloadPool) get(n int) []byte {
	if n < minPooled || n > MaxPayload {
		return make([]byte, n)
	}
	c := poolClass(n)
	size := classSize(c)
	if p == nil {
		return make([]byte, n, size)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := c; k < len(p.free) && k <= c+classReach; k++ {
		if m := len(p.free[k]); m > 0 {
			b := p.free[k][m-1]
			p.free[k][m-1] = nil
			p.free[k] = p.free[k][:m-1]
			p.idle -= int64(cap(b))
			return b[:n]
		}
	}
	if size < minSlabbed || p.carved+int64(size) > 2*p.limit {
		return make([]byte, n, size)
	}
	if len(p.slab) < size {
		p.slab = newSlab()
	}
	b := p.slab[:n:size]
	p.slab = p.slab[size:]
	p.carved += int64(size)
	return b
}

// newSlab returns slabSize bytes aligned to a huge page, backed by huge
// pages if the kernel gives them, and mapped in.
func newSlab() []byte {
	b := make([]byte, slabSize+hugePage)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (hugePage - 1))
	b = b[off : off+slabSize : off+slabSize]
	hugepages(b)
	return b
}

// put gives b back; b must not be used afterwards. Buffers that get did
// not make (their capacity is not a class size), and buffers beyond the
// idle limit, are left to the garbage collector.
func (p *payloadPool) put(b []byte) {
	n := cap(b)
	if p == nil || n < minPooled || n > MaxPayload {
		return
	}
	c := poolClass(n)
	if classSize(c) != n {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle+int64(n) > p.limit {
		return
	}
	p.idle += int64(n)
	p.free[c] = append(p.free[c], b[:0])
}
