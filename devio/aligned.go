package devio

import (
	"fmt"
	"io"
	"sync"
)

// maxBounce bounds the bounce buffer of an alignedReader: a larger read is
// done in pieces of this size.
const maxBounce = 1 << 20

// alignedReader makes any read of an O_DIRECT device legal: it rounds the
// offset down and the end up to the block size, reads into an aligned
// bounce buffer (at most maxBounce bytes at a time) and copies out the
// bytes asked for. Reads are serialized.
type alignedReader struct {
	r  io.ReaderAt
	bs int64 // block size: a power of two

	mu     sync.Mutex // guards bounce
	bounce []byte     // aligned to bs, len a multiple of bs
}

// newAlignedReader wraps r, whose reads must be aligned to blockSize (a
// power of two) in offset, length and buffer address.
func newAlignedReader(r io.ReaderAt, blockSize int) (*alignedReader, error) {
	if blockSize <= 0 || blockSize&(blockSize-1) != 0 {
		return nil, fmt.Errorf("devio: block size %d is not a power of two", blockSize)
	}
	n := max(maxBounce, 2*blockSize)
	return &alignedReader{r: r, bs: int64(blockSize), bounce: AlignedBuffer(n, max(blockSize, 4096))}, nil
}

// ReadAt implements io.ReaderAt: fewer than len(p) bytes come only with an
// error, io.EOF at the end of the device.
func (a *alignedReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("devio: read at negative offset %d", off)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		start := pos &^ (a.bs - 1)
		skip := pos - start
		// Read whole blocks covering as much of the rest of p as fits.
		want := skip + int64(len(p)-done)
		want = (want + a.bs - 1) &^ (a.bs - 1)
		want = min(want, int64(len(a.bounce)))
		n, err := a.r.ReadAt(a.bounce[:want], start)
		avail := int64(n) - skip
		if avail > 0 {
			done += copy(p[done:], a.bounce[skip:skip+avail])
		}
		if done == len(p) {
			return done, nil
		}
		if err != nil {
			return done, err
		}
		if int64(n) < want {
			return done, io.ErrUnexpectedEOF // a short read without an error: not io.ReaderAt
		}
	}
	return done, nil
}
