package digest_test

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/logship/logship/digest"
)

// refTree computes every level of the tree of data straight from the
// definition in docs/protocol.md section 7.3: units listed one by one,
// each node hashed from its children.
func refTree(data []byte, g, bs int64) [][]uint64 {
	size := int64(len(data))
	units := []int64{g}
	for u := g; u < bs; {
		u = min(u*16, bs)
		units = append(units, u)
	}
	for u := bs; u < size; {
		u *= 16
		units = append(units, u)
	}
	var levels [][]uint64
	var leaves []uint64
	for off := int64(0); off < size; off += g {
		leaves = append(leaves, xxhash.Sum64(data[off:min(off+g, size)]))
	}
	levels = append(levels, leaves)
	for k := 1; k < len(units); k++ {
		r := units[k] / units[k-1]
		prev := levels[k-1]
		var cur []uint64
		for i := int64(0); i < int64(len(prev)); i += r {
			var b []byte
			for _, d := range prev[i:min(i+r, int64(len(prev)))] {
				b = binary.LittleEndian.AppendUint64(b, d)
			}
			cur = append(cur, xxhash.Sum64(b))
		}
		levels = append(levels, cur)
	}
	return levels
}

func TestTreeShape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tree             digest.Tree
		blockLevel, top  int
		units            []int64 // levels 0..top
		nodes0, nodesTop int64
	}{
		{digest.Tree{Size: 256 << 20, Granularity: 4096, BlockSize: 1 << 20}, 2, 4, []int64{4096, 64 << 10, 1 << 20, 16 << 20, 256 << 20}, 65536, 1},
		{digest.Tree{Size: 1 << 20, Granularity: 512, BlockSize: 1 << 20}, 3, 3, []int64{512, 8 << 10, 128 << 10, 1 << 20}, 2048, 1},
		{digest.Tree{Size: 5000, Granularity: 512, BlockSize: 4096}, 1, 2, []int64{512, 4096, 65536}, 10, 1},
		{digest.Tree{Size: 512, Granularity: 512, BlockSize: 512}, 0, 0, []int64{512}, 1, 1},
		{digest.Tree{Size: 3 << 30, Granularity: 4096, BlockSize: 8 << 20}, 3, 6, []int64{4096, 64 << 10, 1 << 20, 8 << 20, 128 << 20, 2 << 30, 32 << 30}, 3 << 18, 1},
	} {
		tr := tc.tree
		if err := tr.Check(); err != nil {
			t.Fatal(err)
		}
		if tr.BlockLevel() != tc.blockLevel || tr.Top() != tc.top {
			t.Errorf("%+v: block level %d, top %d; want %d, %d", tr, tr.BlockLevel(), tr.Top(), tc.blockLevel, tc.top)
		}
		for k, u := range tc.units {
			if tr.Unit(k) != u {
				t.Errorf("%+v: unit(%d) = %d, want %d", tr, k, tr.Unit(k), u)
			}
		}
		if tr.Nodes(0) != tc.nodes0 || tr.Nodes(tr.Top()) != tc.nodesTop {
			t.Errorf("%+v: %d leaves, %d top nodes", tr, tr.Nodes(0), tr.Nodes(tr.Top()))
		}
	}
}

func TestTreeCheck(t *testing.T) {
	t.Parallel()
	for name, tr := range map[string]digest.Tree{
		"granularity not a power of two": {Size: 1 << 20, Granularity: 1000, BlockSize: 1 << 20},
		"granularity below 512":          {Size: 1 << 20, Granularity: 256, BlockSize: 1 << 20},
		"block below granularity":        {Size: 1 << 20, Granularity: 4096, BlockSize: 2048},
		"block too large":                {Size: 1 << 30, Granularity: 4096, BlockSize: 128 << 20},
		"size 0":                         {Size: 0, Granularity: 4096, BlockSize: 1 << 20},
		"size too large":                 {Size: 1 << 57, Granularity: 4096, BlockSize: 1 << 20},
	} {
		if err := tr.Check(); !errors.Is(err, digest.ErrTree) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestBlockTree: BlockTree and Reduce give the definition's digests, for
// sizes that end inside a leaf, inside a block, on a block.
func TestBlockTree(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ size, g, bs int64 }{
		{1 << 20, 4096, 64 << 10},
		{(3 << 20) + 8192 + 512, 4096, 1 << 20},
		{5 << 20, 512, 1 << 20},
		{600 << 10, 512, 32 << 10},
		{4096, 4096, 4096},
		{40 << 20, 4096, 128 << 10},
	} {
		data := make([]byte, tc.size)
		for i := range data {
			if i%7000 < 3000 { // zeros too
				data[i] = byte(rng.Uint32())
			}
		}
		tr := digest.Tree{Size: tc.size, Granularity: tc.g, BlockSize: tc.bs}
		ref := refTree(data, tc.g, tc.bs)
		if len(ref) != tr.Top()+1 {
			t.Fatalf("%+v: %d levels, reference %d", tr, tr.Top()+1, len(ref))
		}
		bl := tr.BlockLevel()
		var roots []uint64
		for b := range tr.Blocks() {
			off, n := tr.Span(bl, b)
			levels := tr.BlockTree(b, data[off:off+n])
			for k := 0; k <= bl; k++ {
				first, cnt := tr.Descendants(bl, b, k)
				if !equal(levels[k], ref[k][first:first+cnt]) {
					t.Fatalf("%+v: block %d, level %d differs from the reference", tr, b, k)
				}
			}
			roots = append(roots, levels[bl][0])
		}
		for k := bl; k <= tr.Top(); k++ {
			if got := tr.Reduce(bl, k, roots); !equal(got, ref[k]) {
				t.Fatalf("%+v: level %d from the roots differs from the reference", tr, k)
			}
		}
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestParseDigests: a reply made the way the protocol says parses back.
func TestIsZero(t *testing.T) {
	t.Parallel()
	b := make([]byte, 200<<10)
	if !digest.IsZero(b) || !digest.IsZero(nil) {
		t.Fatal("zeros not zero")
	}
	for _, i := range []int{0, 7, 65535, 65536, len(b) - 1} {
		b[i] = 1
		if digest.IsZero(b) {
			t.Fatalf("byte %d set, still zero", i)
		}
		b[i] = 0
	}
}

// FuzzParseDigests: replies never panic the parser, and what parses has
// the shape the request implies.
// FuzzParseRead: read replies never panic the parser.
