package control_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/logship/logship/control"
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
	for _, tc := range []struct {
		tree             control.Tree
		blockLevel, top  int
		units            []int64 // levels 0..top
		nodes0, nodesTop int64
	}{
		{control.Tree{Size: 256 << 20, Granularity: 4096, BlockSize: 1 << 20}, 2, 4, []int64{4096, 64 << 10, 1 << 20, 16 << 20, 256 << 20}, 65536, 1},
		{control.Tree{Size: 1 << 20, Granularity: 512, BlockSize: 1 << 20}, 3, 3, []int64{512, 8 << 10, 128 << 10, 1 << 20}, 2048, 1},
		{control.Tree{Size: 5000, Granularity: 512, BlockSize: 4096}, 1, 2, []int64{512, 4096, 65536}, 10, 1},
		{control.Tree{Size: 512, Granularity: 512, BlockSize: 512}, 0, 0, []int64{512}, 1, 1},
		{control.Tree{Size: 3 << 30, Granularity: 4096, BlockSize: 8 << 20}, 3, 6, []int64{4096, 64 << 10, 1 << 20, 8 << 20, 128 << 20, 2 << 30, 32 << 30}, 3 << 18, 1},
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
	for name, tr := range map[string]control.Tree{
		"granularity not a power of two": {Size: 1 << 20, Granularity: 1000, BlockSize: 1 << 20},
		"granularity below 512":          {Size: 1 << 20, Granularity: 256, BlockSize: 1 << 20},
		"block below granularity":        {Size: 1 << 20, Granularity: 4096, BlockSize: 2048},
		"block too large":                {Size: 1 << 30, Granularity: 4096, BlockSize: 128 << 20},
		"size 0":                         {Size: 0, Granularity: 4096, BlockSize: 1 << 20},
		"size too large":                 {Size: 1 << 57, Granularity: 4096, BlockSize: 1 << 20},
	} {
		if err := tr.Check(); !errors.Is(err, control.ErrTree) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestBlockTree: BlockTree and Reduce give the definition's digests, for
// sizes that end inside a leaf, inside a block, on a block.
func TestBlockTree(t *testing.T) {
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
		tr := control.Tree{Size: tc.size, Granularity: tc.g, BlockSize: tc.bs}
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

func TestDigestsCheck(t *testing.T) {
	tr := control.Tree{Size: 256 << 20, Granularity: 4096, BlockSize: 1 << 20}
	good := control.Digests{Tree: tr, Level: 2, Nodes: []control.NodeRange{{0, 4}, {10, 2}}, Down: 0}
	if n, err := good.Check(); err != nil || n != 6 {
		t.Fatalf("%d, %v", n, err)
	}
	for name, d := range map[string]control.Digests{
		"bad tree":           {Tree: control.Tree{Size: 1, Granularity: 4096, BlockSize: 3}, Level: 0},
		"level past the top": {Tree: tr, Level: 5, Nodes: []control.NodeRange{{0, 1}}},
		"down above level":   {Tree: tr, Level: 1, Down: 2, Nodes: []control.NodeRange{{0, 1}}},
		"negative node":      {Tree: tr, Level: 2, Nodes: []control.NodeRange{{-1, 1}}},
		"past the level":     {Tree: tr, Level: 2, Nodes: []control.NodeRange{{250, 7}}},
		"empty range":        {Tree: tr, Level: 2, Nodes: []control.NodeRange{{3, 0}}},
		"compare wrong size": {Tree: tr, Level: 2, Down: 1, Nodes: []control.NodeRange{{0, 2}}, Compare: make([]byte, 8)},
		"compare at level":   {Tree: tr, Level: 2, Down: 2, Nodes: []control.NodeRange{{0, 1}}, Compare: make([]byte, 8)},
		"reply too large":    {Tree: control.Tree{Size: 16 << 30, Granularity: 4096, BlockSize: 1 << 20}, Level: 5, Down: 0, Nodes: []control.NodeRange{{0, 1}}},
		"too many nodes":     {Tree: control.Tree{Size: 1 << 40, Granularity: 4096, BlockSize: 1 << 20}, Level: 0, Nodes: []control.NodeRange{{0, control.MaxDigestNodes + 1}}},
		"overflowing ranges": {Tree: tr, Level: 0, Nodes: []control.NodeRange{{1 << 62, 1 << 62}}},
	} {
		if _, err := d.Check(); !errors.Is(err, control.ErrMalformed) && !errors.Is(err, control.ErrTree) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestParseDigests: a reply made the way the protocol says parses back.
func TestParseDigests(t *testing.T) {
	tr := control.Tree{Size: 3<<20 + 4096, Granularity: 4096, BlockSize: 1 << 20}
	// Level 1 has 49 nodes: 48 of 64 KiB and one of 4 KiB. Nodes 0 and 48
	// (the first and the fourth asked for) differ.
	d := control.Digests{Tree: tr, Level: 1, Down: 0, Nodes: []control.NodeRange{{0, 2}, {47, 2}}, Compare: make([]byte, 32)}
	bm := []byte{0b1001}
	var p []byte
	p = append(p, bm...)
	for i := range 16 {
		p = control.AppendDigest(p, uint64(i))
	}
	p = control.AppendDigest(p, 99) // node 48: one leaf
	differs, down, err := d.ParseDigests(p)
	if err != nil {
		t.Fatal(err)
	}
	if !differs[0] || differs[1] || differs[2] || !differs[3] || len(down[0]) != 16 || down[0][15] != 15 || len(down[3]) != 1 || down[3][0] != 99 || down[1] != nil {
		t.Fatalf("differs %v, down %v", differs, down)
	}
	for name, q := range map[string][]byte{"short": p[:len(p)-1], "long": append(append([]byte{}, p...), 0), "no bitmap": nil} {
		if _, _, err := d.ParseDigests(q); !errors.Is(err, control.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestReadRoundTrip(t *testing.T) {
	data := make([]byte, 10*4096+512)
	for i := range data {
		if (i/4096)%3 == 1 || i >= 10*4096 {
			data[i] = byte(i)
		}
	}
	r := &control.Read{Offset: 4096, Length: int64(len(data)), Granularity: 4096}
	if err := r.Check(1 << 20); err != nil {
		t.Fatal(err)
	}
	p := r.AppendRead(nil, data)
	if want := 2 + 3*4096 + 512; len(p) != want { // 3 of the 10 full pieces hold data, and the short last one
		t.Fatalf("reply of %d bytes, want %d", len(p), want)
	}
	got := bytes.Repeat([]byte{0xEE}, len(data))
	bm, err := r.ParseRead(p, got)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip: %v", err)
	}
	if !control.BitSet(bm, 0) || control.BitSet(bm, 1) || control.BitSet(bm, 10) {
		t.Fatalf("bitmap %08b", bm)
	}
	for name, q := range map[string][]byte{"short": p[:len(p)-1], "long": append(append([]byte{}, p...), 1), "empty": nil} {
		if _, err := r.ParseRead(q, got); !errors.Is(err, control.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, bad := range map[string]control.Read{
		"past the image":  {Offset: 1 << 20, Length: 512, Granularity: 512},
		"too long":        {Offset: 0, Length: control.MaxReadLength + 1, Granularity: 512},
		"bad granularity": {Offset: 0, Length: 512, Granularity: 100},
		"negative":        {Offset: -512, Length: 512, Granularity: 512},
	} {
		if err := bad.Check(1 << 20); !errors.Is(err, control.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestIsZero(t *testing.T) {
	b := make([]byte, 200<<10)
	if !control.IsZero(b) || !control.IsZero(nil) {
		t.Fatal("zeros not zero")
	}
	for _, i := range []int{0, 7, 65535, 65536, len(b) - 1} {
		b[i] = 1
		if control.IsZero(b) {
			t.Fatalf("byte %d set, still zero", i)
		}
		b[i] = 0
	}
}

// FuzzParseDigests: replies never panic the parser, and what parses has
// the shape the request implies.
func FuzzParseDigests(f *testing.F) {
	f.Add([]byte{0b1001}, 2, 0, true)
	f.Add(make([]byte, 16*8), 1, 0, false)
	f.Fuzz(func(t *testing.T, p []byte, level, down int, compare bool) {
		tr := control.Tree{Size: 2<<20 + 8192, Granularity: 4096, BlockSize: 1 << 20}
		d := control.Digests{Tree: tr, Level: level, Down: down, Nodes: []control.NodeRange{{0, 2}}}
		if compare {
			d.Compare = make([]byte, 16)
		}
		if _, err := d.Check(); err != nil {
			return
		}
		differs, ds, err := d.ParseDigests(p)
		if err != nil {
			return
		}
		for j := range differs {
			_, n := tr.Descendants(level, int64(j), down)
			if differs[j] != (ds[j] != nil) || differs[j] && int64(len(ds[j])) != n {
				t.Fatalf("node %d: differs %v with %d digests, want %d", j, differs[j], len(ds[j]), n)
			}
		}
	})
}

// FuzzParseRead: read replies never panic the parser.
func FuzzParseRead(f *testing.F) {
	f.Add([]byte{0b11})
	f.Add(append([]byte{0b01}, make([]byte, 512)...))
	f.Fuzz(func(t *testing.T, p []byte) {
		r := &control.Read{Offset: 0, Length: 1024, Granularity: 512}
		data := make([]byte, 1024)
		if _, err := r.ParseRead(p, data); err != nil {
			return
		}
		if again := r.AppendRead(nil, data); len(again) > len(p) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(p), len(again))
		}
	})
}
