package control

import (
	"encoding/binary"
	"fmt"

	"github.com/logship/logship/digest"
)

// The bodies of the OpDigests and OpRead calls over a digest tree
// (digest.Tree).

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
	case r.Granularity < digest.MinGranularity || r.Granularity&(r.Granularity-1) != 0:
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
		if digest.IsZero(piece) {
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
