package replica

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// TestDecodeWindowSync: in a sync journal the entry index is a block
// number: blocks may be skipped and a block may come in pieces of any
// kind, but never backwards, before the durable position, or with a
// barrier in the middle.
func TestDecodeWindowSync(t *testing.T) {
	t.Parallel()
	exp := expect{pos: control.Position{Journal: control.SyncJournalPrefix + "v1 test", NextEntry: 10, NextWindow: 4}, sectorSize: 512, size: 64 << 10}
	w := func(i uint64, s, n uint64) parallel.Frame { return frame(i, s, n, 0, "", 1) }
	d := func(i uint64, s, n uint64) parallel.Frame { return frame(i, s, n, journal.FlagDiscard, "", 0) }
	for _, tc := range []struct {
		name   string
		frames []parallel.Frame
		err    error
		next   int64
	}{
		{"pieces of a block", []parallel.Frame{w(10, 0, 1), d(10, 1, 3), w(10, 8, 2)}, nil, 11},
		{"skipped blocks", []parallel.Frame{w(12, 24, 8), w(15, 40, 8), d(15, 48, 8)}, nil, 16},
		{"done mark at the end", []parallel.Frame{w(10, 0, 1), frame(20, 0, 0, journal.FlagMark, "logship-sync-done", 0)}, nil, 21},
		{"backwards", []parallel.Frame{w(11, 8, 1), w(10, 0, 1)}, ErrSequence, 0},
		{"before the durable position", []parallel.Frame{w(9, 0, 1)}, ErrSequence, 0},
		{"mark in the middle", []parallel.Frame{frame(10, 0, 0, journal.FlagMark, "m", 0), w(11, 0, 1)}, ErrBadEntry, 0},
		{"mark then a piece of its block", []parallel.Frame{frame(10, 0, 0, journal.FlagMark, "m", 0), w(10, 0, 1)}, ErrBadEntry, 0},
		{"past the image", []parallel.Frame{w(10, 127, 2)}, ErrBadEntry, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeWindow(4, tc.frames, exp)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.first != 10 || got.next != tc.next {
				t.Fatalf("entries [%d, %d), want [10, %d)", got.first, got.next, tc.next)
			}
		})
	}
	// The same frames in a journal that is not a sync's are refused.
	exp.pos.Journal = "xxh64:0123456789abcdef"
	if _, err := decodeWindow(4, []parallel.Frame{w(10, 0, 1), d(10, 1, 3)}, exp); !errors.Is(err, ErrSequence) {
		t.Fatalf("pieces of another kind in a journal: %v", err)
	}
}

// blocksTask creates task name with an image holding data, and returns a
// session that opened it.
func blocksTask(t *testing.T, ts *testServer, name string, data []byte) *parallel.Session {
	t.Helper()
	s := ts.dial(t, name, 2)
	if _, err := openCall(t.Context(), s, control.Open{Size: int64(len(data)), Journal: "logship-verify", SectorSize: 512}); err != nil {
		t.Fatal(err)
	}
	// Fill the image behind the server's back: no window of this session
	// wrote it, so what the calls read is what the file holds.
	if err := os.WriteFile(filepath.Join(ts.cfg.Dir, name, imageFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func randomImage(seed uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		if rng.IntN(3) > 0 { // a third of the pages stay zero
			for j := i; j < min(i+4096, size); j++ {
				b[j] = byte(rng.Uint32())
			}
		}
	}
	return b
}

// TestDigestsCall: the server's digests are those of the tree of its
// image, at every level, with and without compare.
func TestDigestsCall(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	const size = 3<<20 + 8192
	img := randomImage(1, size)
	s := blocksTask(t, ts, "d", img)
	tr := digest.Tree{Size: size, Granularity: 4096, BlockSize: 1 << 20}
	// The reference: every level, from the block trees.
	ref := make([][]uint64, tr.Top()+1)
	bl := tr.BlockLevel()
	var roots []uint64
	for b := range tr.Blocks() {
		off, n := tr.Span(bl, b)
		lv := tr.BlockTree(b, img[off:off+n])
		for k := 0; k <= bl; k++ {
			ref[k] = append(ref[k], lv[k]...)
		}
		roots = append(roots, lv[bl][0])
	}
	for k := bl + 1; k <= tr.Top(); k++ {
		ref[k] = tr.Reduce(bl, k, roots)
	}
	ctx := t.Context()
	ask := func(d *control.Digests) ([]bool, [][]uint64) {
		t.Helper()
		resp, err := s.Call(ctx, control.Marshal(control.Request{Op: control.OpDigests, Digests: d}))
		if err != nil {
			t.Fatal(err)
		}
		differs, down, err := d.ParseDigests(resp)
		if err != nil {
			t.Fatal(err)
		}
		return differs, down
	}
	for level := 0; level <= tr.Top(); level++ {
		for down := 0; down <= level; down++ {
			nodes := tr.Nodes(level)
			d := &control.Digests{Tree: tr, Level: level, Down: down, Nodes: []control.NodeRange{{0, nodes}}}
			if int64(8)*nodes*(tr.Unit(level)/tr.Unit(down)) > control.MaxDigestReply {
				continue
			}
			_, got := ask(d)
			for i := range nodes {
				f, n := tr.Descendants(level, i, down)
				if !slices.Equal(got[i], ref[down][f:f+n]) {
					t.Fatalf("level %d node %d, down %d: digests differ from the reference", level, i, down)
				}
			}
		}
	}
	// Compare: the client has the reference but for one leaf.
	mine := make([]uint64, len(ref[1]))
	copy(mine, ref[1])
	mine[5]++ // node 5 of level 1 differs
	d := &control.Digests{Tree: tr, Level: 1, Down: 0, Nodes: []control.NodeRange{{0, int64(len(mine))}}}
	for _, x := range mine {
		d.Compare = control.AppendDigest(d.Compare, x)
	}
	differs, down := ask(d)
	for i, x := range differs {
		if x != (i == 5) {
			t.Fatalf("node %d: differs %v", i, x)
		}
	}
	if !slices.Equal(down[5], ref[0][5*16:6*16]) {
		t.Fatalf("leaves of the differing node differ from the reference")
	}
	// The span, compared, down to the blocks.
	d = &control.Digests{Tree: tr, Level: tr.Top(), Down: bl, Nodes: []control.NodeRange{{0, 1}}, Compare: control.AppendDigest(nil, ref[tr.Top()][0])}
	if differs, _ := ask(d); differs[0] {
		t.Fatal("an equal span differs")
	}
}

func TestReadCall(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	img := randomImage(2, 1<<20)
	s := blocksTask(t, ts, "r", img)
	r := &control.Read{Offset: 64 << 10, Length: 300 << 10, Granularity: 4096}
	resp, err := s.Call(t.Context(), control.Marshal(control.Request{Op: control.OpRead, Read: r}))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, r.Length)
	if _, err := r.ParseRead(resp, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img[r.Offset:r.Offset+r.Length]) {
		t.Fatal("read returned other bytes")
	}
	if len(resp) >= int(r.Length) {
		t.Fatalf("a reply of %d bytes for %d bytes a third of which are zeros", len(resp), r.Length)
	}
}

// TestBlockCallsRefused: bad requests fail the call, not the session.
func TestBlockCallsRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tr := digest.Tree{Size: 1 << 20, Granularity: 4096, BlockSize: 1 << 20}
	// Before open.
	s := ts.dial(t, "x", 1)
	_, err := s.Call(ctx, control.Marshal(control.Request{Op: control.OpDigests, Digests: &control.Digests{Tree: tr, Nodes: []control.NodeRange{{0, 1}}}}))
	if codeOfErr(err) != control.CodeNotOpen {
		t.Fatalf("digests before open: %v", err)
	}
	s = blocksTask(t, ts, "y", make([]byte, 1<<20))
	for name, req := range map[string]control.Request{
		"tree past the image": {Op: control.OpDigests, Digests: &control.Digests{Tree: digest.Tree{Size: 2 << 20, Granularity: 4096, BlockSize: 1 << 20}, Nodes: []control.NodeRange{{0, 1}}}},
		"bad tree":            {Op: control.OpDigests, Digests: &control.Digests{Tree: digest.Tree{Size: 1 << 20, Granularity: 4000, BlockSize: 1 << 20}, Nodes: []control.NodeRange{{0, 1}}}},
		"node past the level": {Op: control.OpDigests, Digests: &control.Digests{Tree: tr, Level: 0, Nodes: []control.NodeRange{{256, 1}}}},
		"read past the image": {Op: control.OpRead, Read: &control.Read{Offset: 1 << 20, Length: 4096, Granularity: 4096}},
		"read too long":       {Op: control.OpRead, Read: &control.Read{Offset: 0, Length: control.MaxReadLength + 4096, Granularity: 4096}},
		"read without fields": {Op: control.OpRead},
	} {
		if _, err := s.Call(ctx, control.Marshal(req)); codeOfErr(err) != control.CodeBadRequest {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("the session failed: %v", err)
	}
}
