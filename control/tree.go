package control

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

// bitmap helpers: bit i%8 of byte i/8.

// BitmapLen returns the bytes of a bitmap of n bits.
func BitmapLen(n int64) int64 { return (n + 7) / 8 }

// BitSet reports whether bit i of bm is set.
func BitSet(bm []byte, i int64) bool { return bm[i/8]&(1<<(i%8)) != 0 }

// SetBit sets bit i of bm.
func SetBit(bm []byte, i int64) { bm[i/8] |= 1 << (i % 8) }

// AppendDigest appends d as 8 bytes little-endian.
func AppendDigest(b []byte, d uint64) []byte { return binary.LittleEndian.AppendUint64(b, d) }

// ParseDigestList decodes p, a list of u64 little-endian digests.
func ParseDigestList(p []byte) ([]uint64, error) {
	if len(p)%8 != 0 {
		return nil, fmt.Errorf("%w: %d bytes of digests", ErrMalformed, len(p))
	}
	ds := make([]uint64, len(p)/8)
	for i := range ds {
		ds[i] = binary.LittleEndian.Uint64(p[8*i:])
	}
	return ds, nil
}

// Check refuses a Digests request that does not fit the limits: a bad
// tree, levels out of range, nodes outside the level, a Compare that does
// not match the nodes, a reply that could exceed MaxDigestReply. It
// returns the number of nodes asked for.
func (d *Digests) Check() (int64, error) {
	if err := d.Tree.Check(); err != nil {
		return 0, err
	}
	t := d.Tree
	top := t.Top()
	switch {
	case d.Level < 0 || d.Level > top:
		return 0, fmt.Errorf("%w: digests: level %d of a tree of levels 0-%d", ErrMalformed, d.Level, top)
	case d.Down < 0 || d.Down > d.Level:
		return 0, fmt.Errorf("%w: digests: down %d for level %d", ErrMalformed, d.Down, d.Level)
	case d.Compare != nil && d.Down == d.Level:
		return 0, fmt.Errorf("%w: digests: compare needs down below level %d", ErrMalformed, d.Level)
	}
	nodes := t.Nodes(d.Level)
	var n int64
	for _, r := range d.Nodes {
		if r.First() < 0 || r.Count() <= 0 || r.First() >= nodes || r.Count() > nodes-r.First() {
			return 0, fmt.Errorf("%w: digests: nodes %d+%d of level %d, which has %d", ErrMalformed, r.First(), r.Count(), d.Level, nodes)
		}
		n += r.Count()
		if n > MaxDigestNodes {
			return 0, fmt.Errorf("%w: digests: more than %d nodes", ErrMalformed, MaxDigestNodes)
		}
	}
	if d.Compare != nil && int64(len(d.Compare)) != 8*n {
		return 0, fmt.Errorf("%w: digests: compare holds %d bytes for %d nodes", ErrMalformed, len(d.Compare), n)
	}
	if r := t.Unit(d.Level) / t.Unit(d.Down); r > MaxDigestReply/8 || 8*n*r > MaxDigestReply {
		return 0, fmt.Errorf("%w: digests: the reply could need %d digests per node for %d nodes, more than %d bytes", ErrMalformed, r, n, MaxDigestReply)
	}
	return n, nil
}

// ParseDigests decodes the reply to d (which must have passed Check): for
// each node asked for, whether it differs (always true without Compare)
// and its descendants at level Down (nil when it does not differ).
func (d *Digests) ParseDigests(p []byte) (differs []bool, down [][]uint64, err error) {
	n, err := d.Check()
	if err != nil {
		return nil, nil, err
	}
	differs = make([]bool, n)
	var bm []byte
	if d.Compare != nil {
		bl := BitmapLen(n)
		if int64(len(p)) < bl {
			return nil, nil, fmt.Errorf("%w: digests reply of %d bytes, the bitmap needs %d", ErrMalformed, len(p), bl)
		}
		bm, p = p[:bl], p[bl:]
	}
	down = make([][]uint64, n)
	j := int64(0)
	for _, r := range d.Nodes {
		for i := r.First(); i < r.First()+r.Count(); i++ {
			if bm == nil || BitSet(bm, j) {
				differs[j] = true
				_, c := d.Tree.Descendants(d.Level, i, d.Down)
				if int64(len(p)) < 8*c {
					return nil, nil, fmt.Errorf("%w: digests reply too short for node %d of level %d", ErrMalformed, i, d.Level)
				}
				down[j], _ = ParseDigestList(p[:8*c])
				p = p[8*c:]
			}
			j++
		}
	}
	if len(p) != 0 {
		return nil, nil, fmt.Errorf("%w: digests reply has %d bytes too many", ErrMalformed, len(p))
	}
	return differs, down, nil
}

// Check refuses a Read outside [0, size) or over the limits.
func (r *Read) Check(size int64) error {
	switch {
	case r.Granularity < MinGranularity || r.Granularity&(r.Granularity-1) != 0:
		return fmt.Errorf("%w: read: granularity %d", ErrMalformed, r.Granularity)
	case r.Length <= 0 || r.Length > MaxReadLength:
		return fmt.Errorf("%w: read: length %d (at most %d)", ErrMalformed, r.Length, MaxReadLength)
	case r.Offset < 0 || r.Offset > size || r.Length > size-r.Offset:
		return fmt.Errorf("%w: read: bytes %d+%d outside the %d-byte image", ErrMalformed, r.Offset, r.Length, size)
	}
	return nil
}

// AppendRead appends the reply to r given the bytes read (r.Length bytes).
func (r *Read) AppendRead(b []byte, data []byte) []byte {
	g := r.Granularity
	n := (int64(len(data)) + g - 1) / g
	at := len(b)
	b = append(b, make([]byte, BitmapLen(n))...)
	for i := int64(0); i < n; i++ {
		piece := data[i*g : min((i+1)*g, int64(len(data)))]
		if IsZero(piece) {
			SetBit(b[at:], i)
		} else {
			b = append(b, piece...)
		}
	}
	return b
}

// ParseRead decodes the reply to r into data (r.Length bytes; zero pieces
// are written as zeros) and returns the zero bitmap.
func (r *Read) ParseRead(p, data []byte) ([]byte, error) {
	g := r.Granularity
	n := (r.Length + g - 1) / g
	bl := BitmapLen(n)
	if int64(len(data)) != r.Length || int64(len(p)) < bl {
		return nil, fmt.Errorf("%w: read reply of %d bytes for %d bytes", ErrMalformed, len(p), r.Length)
	}
	bm, rest := p[:bl], p[bl:]
	for i := int64(0); i < n; i++ {
		piece := data[i*g : min((i+1)*g, r.Length)]
		if BitSet(bm, i) {
			clear(piece)
			continue
		}
		if len(rest) < len(piece) {
			return nil, fmt.Errorf("%w: read reply too short at piece %d", ErrMalformed, i)
		}
		copy(piece, rest)
		rest = rest[len(piece):]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: read reply has %d bytes too many", ErrMalformed, len(rest))
	}
	return bm, nil
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
