package parallel

import (
	"math/bits"
	"sync"
)

// Received payloads of minPooled bytes or more come from pools of
// buffers, one per power of two up to MaxPayload, and go back to them
// when the server releases their window (Window.Release): a server that
// receives hundreds of megabytes a second would otherwise allocate, and
// the runtime zero, every byte of them, only to read over the zeros. A
// pool holds only buffers that are not in use; what is in use is bounded
// by the credit.
const (
	minPooledShift = 12 // 4 KiB
	minPooled      = 1 << minPooledShift
	maxPooledShift = 23 // MaxPayload (TestPool checks it)
)

var payloadPools [maxPooledShift - minPooledShift + 1]sync.Pool

// poolClass is the pool index for a payload of n bytes (n ≥ minPooled,
// n ≤ MaxPayload): the smallest power of two that holds it.
func poolClass(n int) int { return bits.Len(uint(n-1)) - minPooledShift }

// getPayload returns a buffer of n bytes whose contents are undefined.
func getPayload(n int) []byte {
	if n < minPooled || n > MaxPayload {
		return make([]byte, n)
	}
	c := poolClass(n)
	if b, ok := payloadPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<(c+minPooledShift))
}

// putPayload gives b back to its pool; b must not be used afterwards.
// Buffers that getPayload did not make (their capacity is not a pool's)
// are left to the garbage collector.
func putPayload(b []byte) {
	n := cap(b)
	if n < minPooled || n > MaxPayload || n&(n-1) != 0 {
		return
	}
	b = b[:0]
	payloadPools[poolClass(n)].Put(&b)
}
