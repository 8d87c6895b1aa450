package digest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// The digest tree (docs/protocol.md section 7.3, frozen) is what sync,
// verify and recover compare, on both sides, so that only the parts of a
// device that differ cost bytes on the wire.
//
// A Tree covers the bytes [0, Size) of a device. Level 0 are the leaves:
// the Granularity-sized pieces of the device, numbered from 0; the last
// one is short when Size is not a multiple of Granularity. The unit of
// level k+1 is the unit of level k times TreeFanout, but never more than
// BlockSize until BlockSize is reached: so one level (BlockLevel) has
// BlockSize as its unit, and its nodes are the blocks. Above it units go
// on growing by TreeFanout up to the top level, the first whose unit
// covers Size (at least BlockLevel), which has one node. The node i of
// level k covers the bytes [i*unit(k), min((i+1)*unit(k), Size)).
//
// The digest of a leaf is xxhash64 (seed 0) of its bytes. The digest of a
// node above is xxhash64 of its children's digests, each as 8 bytes
// little-endian, in order. Its children are the nodes of the level below
// that it covers: unit(k)/unit(k-1) of them, fewer at the end of the
// device.
type Tree struct {
	Size        int64 `json:"size"`
	Granularity int64 `json:"granularity"`
	BlockSize   int64 `json:"block_size"`
}

// Tree limits.
const (
	// TreeFanout is the number of children of a node whose children are
	// not leaves of a smaller remainder (frozen).
	TreeFanout = 16
	// MinGranularity and MaxBlockSize bound Tree.Granularity and
	// Tree.BlockSize.
	MinGranularity = 512
	MaxBlockSize   = 64 << 20
	// MaxTreeSize bounds Tree.Size (64 PiB), so that no unit overflows.
	MaxTreeSize = 1 << 56
)

// ErrTree: tree parameters that are not allowed.
var ErrTree = errors.New("control: invalid digest tree")

// Check refuses parameters outside the limits: Granularity and BlockSize
// powers of two, MinGranularity ≤ Granularity ≤ BlockSize ≤ MaxBlockSize,
// 0 < Size ≤ MaxTreeSize.
func (t Tree) Check() error {
	pow2 := func(n int64) bool { return n > 0 && n&(n-1) == 0 }
	switch {
	case !pow2(t.Granularity) || t.Granularity < MinGranularity:
		return fmt.Errorf("%w: granularity %d is not a power of two of at least %d", ErrTree, t.Granularity, MinGranularity)
	case !pow2(t.BlockSize) || t.BlockSize < t.Granularity || t.BlockSize > MaxBlockSize:
		return fmt.Errorf("%w: block size %d is not a power of two from the granularity %d to %d", ErrTree, t.BlockSize, t.Granularity, MaxBlockSize)
	case t.Size <= 0 || t.Size > MaxTreeSize:
		return fmt.Errorf("%w: size %d", ErrTree, t.Size)
	}
	return nil
}

// Unit returns the bytes a node of level covers (the last node of a level
// may cover fewer). level must be from 0 to Top.
func (t Tree) Unit(level int) int64 {
	u := t.Granularity
	for range level {
		if u < t.BlockSize {
			u = min(u*TreeFanout, t.BlockSize)
		} else {
			u *= TreeFanout
		}
	}
	return u
}

// BlockLevel returns the level whose nodes are the blocks.
func (t Tree) BlockLevel() int {
	// Each step below the block multiplies by TreeFanout (a power of two),
	// the last one possibly by less.
	steps := bits.TrailingZeros64(uint64(t.BlockSize)) - bits.TrailingZeros64(uint64(t.Granularity))
	const shift = 4 // log2(TreeFanout)
	return (steps + shift - 1) / shift
}

// Top returns the top level, which has one node.
func (t Tree) Top() int {
	k := t.BlockLevel()
	for u := t.BlockSize; u < t.Size; u *= TreeFanout {
		k++
	}
	return k
}

// Nodes returns the number of nodes of level.
func (t Tree) Nodes(level int) int64 {
	u := t.Unit(level)
	return (t.Size + u - 1) / u
}

// Blocks returns the number of blocks (nodes of BlockLevel).
func (t Tree) Blocks() int64 { return (t.Size + t.BlockSize - 1) / t.BlockSize }

// Span returns the bytes [off, off+n) that node i of level covers.
func (t Tree) Span(level int, i int64) (off, n int64) {
	u := t.Unit(level)
	off = i * u
	return off, min(u, t.Size-off)
}

// Descendants returns the nodes of level down (≤ level) that node i of
// level covers: [first, first+n).
func (t Tree) Descendants(level int, i int64, down int) (first, n int64) {
	r := t.Unit(level) / t.Unit(down)
	first = i * r
	return first, min(r, t.Nodes(down)-first)
}

// Combine returns the digest of a node whose children have the digests ds.
func Combine(ds []uint64) uint64 {
	var buf [8 * TreeFanout]byte
	if len(ds) <= TreeFanout {
		for i, d := range ds {
			binary.LittleEndian.PutUint64(buf[8*i:], d)
		}
		return xxhash.Sum64(buf[:8*len(ds)])
	}
	h := xxhash.New()
	for _, d := range ds {
		binary.LittleEndian.PutUint64(buf[:8], d)
		h.Write(buf[:8])
	}
	return h.Sum64()
}

// Reduce returns the digests of the nodes of level to that cover a run of
// nodes of level from, given the run's digests ds. The run must start at
// the first descendant (at level from) of a node of level to, and end
// where one ends (or at the end of the device).
func (t Tree) Reduce(from, to int, ds []uint64) []uint64 {
	out := ds
	for k := from + 1; k <= to; k++ {
		r := t.Unit(k) / t.Unit(k-1)
		next := make([]uint64, 0, (int64(len(out))+r-1)/r)
		for i := int64(0); i < int64(len(out)); i += r {
			next = append(next, Combine(out[i:min(i+r, int64(len(out)))]))
		}
		out = next
	}
	return out
}

// BlockTree returns the digests of block b at levels 0 to BlockLevel: the
// leaves it covers, then each level up to its own digest (levels[k][j] is
// the j-th node of level k inside the block). data holds the block's
// bytes: BlockSize bytes, fewer for the last block.
func (t Tree) BlockTree(b int64, data []byte) [][]uint64 {
	bl := t.BlockLevel()
	levels := make([][]uint64, bl+1)
	g := int(t.Granularity)
	leaves := make([]uint64, 0, (len(data)+g-1)/g)
	for off := 0; off < len(data); off += g {
		leaves = append(leaves, xxhash.Sum64(data[off:min(off+g, len(data))]))
	}
	levels[0] = leaves
	for k := 1; k <= bl; k++ {
		levels[k] = t.Reduce(k-1, k, levels[k-1])
	}
	return levels
}

// zeros is compared against by IsZero.
var zeros [64 << 10]byte

// IsZero reports whether p is all zero bytes.
func IsZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeros))
		if !bytes.Equal(p[:n], zeros[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}
