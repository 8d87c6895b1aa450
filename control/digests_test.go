package control_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/logship/logship/control"
	"github.com/logship/logship/digest"
)

func TestDigestsCheck(t *testing.T) {
	t.Parallel()
	tr := digest.Tree{Size: 256 << 20, Granularity: 4096, BlockSize: 1 << 20}
	good := control.Digests{Tree: tr, Level: 2, Nodes: []control.NodeRange{{0, 4}, {10, 2}}, Down: 0}
	if n, err := good.Check(); err != nil || n != 6 {
		t.Fatalf("%d, %v", n, err)
	}
	for name, d := range map[string]control.Digests{
		"bad tree":           {Tree: digest.Tree{Size: 1, Granularity: 4096, BlockSize: 3}, Level: 0},
		"level past the top": {Tree: tr, Level: 5, Nodes: []control.NodeRange{{0, 1}}},
		"down above level":   {Tree: tr, Level: 1, Down: 2, Nodes: []control.NodeRange{{0, 1}}},
		"negative node":      {Tree: tr, Level: 2, Nodes: []control.NodeRange{{-1, 1}}},
		"past the level":     {Tree: tr, Level: 2, Nodes: []control.NodeRange{{250, 7}}},
		"empty range":        {Tree: tr, Level: 2, Nodes: []control.NodeRange{{3, 0}}},
		"compare wrong size": {Tree: tr, Level: 2, Down: 1, Nodes: []control.NodeRange{{0, 2}}, Compare: make([]byte, 8)},
		"compare at level":   {Tree: tr, Level: 2, Down: 2, Nodes: []control.NodeRange{{0, 1}}, Compare: make([]byte, 8)},
		"reply too large":    {Tree: digest.Tree{Size: 16 << 30, Granularity: 4096, BlockSize: 1 << 20}, Level: 5, Down: 0, Nodes: []control.NodeRange{{0, 1}}},
		"too many nodes":     {Tree: digest.Tree{Size: 1 << 40, Granularity: 4096, BlockSize: 1 << 20}, Level: 0, Nodes: []control.NodeRange{{0, control.MaxDigestNodes + 1}}},
		"overflowing ranges": {Tree: tr, Level: 0, Nodes: []control.NodeRange{{1 << 62, 1 << 62}}},
	} {
		if _, err := d.Check(); !errors.Is(err, control.ErrMalformed) && !errors.Is(err, digest.ErrTree) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseDigests(t *testing.T) {
	t.Parallel()
	tr := digest.Tree{Size: 3<<20 + 4096, Granularity: 4096, BlockSize: 1 << 20}
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
	t.Parallel()
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

func FuzzParseDigests(f *testing.F) {
	f.Add([]byte{0b1001}, 2, 0, true)
	f.Add(make([]byte, 16*8), 1, 0, false)
	f.Fuzz(func(t *testing.T, p []byte, level, down int, compare bool) {
		tr := digest.Tree{Size: 2<<20 + 8192, Granularity: 4096, BlockSize: 1 << 20}
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
