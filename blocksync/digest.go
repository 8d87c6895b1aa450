package blocksync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/logship/logship/control"
	"github.com/logship/logship/devio"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/parallel"
)

// The client half of the digest tree comparison (digest.Tree,
// docs/protocol.md section 7.3) that sync, verify and recover share. A
// device is taken span by span: a span is a node of a level above the
// blocks (SpanLevel), at most MaxSpan bytes. The client reads the span's
// blocks in parallel and keeps their trees (the leaves and the levels up
// to the block); the server is then asked, level by level, only about the
// nodes whose digests differ:
//
//  1. the span's digest is sent (Compare) and, if the server's differs,
//     the server returns the digests of the span's blocks;
//  2. for the blocks that differ, the client sends the digests of their
//     children and gets back the descendants, one or more levels down, of
//     the children that differ; and so on down to the leaves.
//
// With the defaults (4 KiB leaves, 1 MiB blocks, fanout 16) a span that
// differs costs two round trips: 8 bytes per block of the span, then
// 8 bytes per child of a differing block (16 per block) and 8 bytes per
// leaf under a differing child. An equal span costs one digest.

// MaxSpan bounds the bytes of a span (see SpanLevel).
const MaxSpan = 256 << 20

// Defaults of the block commands.
const (
	DefaultBlockSize         = 1 << 20
	DefaultSyncGranularity   = 4 << 10
	DefaultVerifyGranularity = 512
	DefaultParallel          = 4
)

// SpanLevel returns the level of t whose nodes are the spans: the highest
// level whose unit is at most max(MaxSpan, the block size), and at least
// the block level.
func SpanLevel(t digest.Tree) int {
	k := t.BlockLevel()
	for k < t.Top() && t.Unit(k+1) <= max(MaxSpan, t.BlockSize) {
		k++
	}
	return k
}

// Progress counts the work of a sync, verify or recover as it goes. Its
// methods may be called from any goroutine.
type Progress struct {
	total   atomic.Int64 // bytes to scan
	scanned atomic.Int64 // bytes read and digested (or copied) so far
	moved   atomic.Int64 // payload bytes sent (sync) or received (recover)
}

// Total returns the bytes the operation scans.
func (p *Progress) Total() int64 { return p.total.Load() }

// Scanned returns the bytes scanned so far.
func (p *Progress) Scanned() int64 { return p.scanned.Load() }

// Moved returns the data bytes sent or received so far.
func (p *Progress) Moved() int64 { return p.moved.Load() }

func (p *Progress) setTotal(n int64) {
	if p != nil {
		p.total.Store(n)
	}
}

func (p *Progress) scan(n int64) {
	if p != nil {
		p.scanned.Add(n)
	}
}

func (p *Progress) move(n int64) {
	if p != nil {
		p.moved.Add(n)
	}
}

// spanTree is the local digest tree of one span: the trees of its blocks.
type spanTree struct {
	t      digest.Tree
	level  int          // the span level
	index  int64        // the span's node index at level
	first  int64        // its first block
	blocks [][][]uint64 // per block of the span: levels 0..BlockLevel
	above  [][]uint64   // levels BlockLevel..level: the span's nodes there
}

// digest returns the local digest of node i of level, which must lie in
// the span.
func (s *spanTree) digest(level int, i int64) uint64 {
	bl := s.t.BlockLevel()
	if level >= bl {
		first, _ := s.t.Descendants(s.level, s.index, level)
		return s.above[level-bl][i-first]
	}
	per := s.t.BlockSize / s.t.Unit(level) // nodes of level per block
	b := i / per
	return s.blocks[b-s.first][level][i-b*per]
}

// blockReader reads blocks of a local device for digests.
type blockReader struct {
	dev  io.ReaderAt
	path string
	t    digest.Tree
	par  int
	prog *Progress
	bufs *alignedPool
}

func newBlockReader(dev io.ReaderAt, path string, t digest.Tree, par int, prog *Progress) *blockReader {
	return &blockReader{dev: dev, path: path, t: t, par: par, prog: prog, bufs: newAlignedPool(par, t.BlockSize)}
}

// alignedPool keeps up to n block buffers, aligned for O_DIRECT.
type alignedPool struct {
	size int64
	ch   chan []byte
}

func newAlignedPool(n int, size int64) *alignedPool {
	return &alignedPool{size: size, ch: make(chan []byte, n)}
}

func (p *alignedPool) get() []byte {
	select {
	case b := <-p.ch:
		return b[:cap(b)]
	default:
		return devio.AlignedBuffer(int(p.size), directAlign)
	}
}

func (p *alignedPool) put(b []byte) {
	select {
	case p.ch <- b:
	default:
	}
}

// LocalError is a failure of the local device (the source of a sync or
// verify, the target of a recover): reconnecting does not cure it.
type LocalError struct {
	Path string
	Err  error
}

func (e *LocalError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *LocalError) Unwrap() error { return e.Err }

// readAt reads len(p) bytes at off or fails with a *LocalError.
func readAt(dev io.ReaderAt, path string, p []byte, off int64) error {
	n, err := dev.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &LocalError{Path: path, Err: fmt.Errorf("reading %d bytes at %d: %w", len(p), off, err)}
}

// span reads the blocks of span index (at SpanLevel) in parallel and
// returns its tree.
func (r *blockReader) span(ctx context.Context, level int, index int64) (*spanTree, error) {
	t := r.t
	bl := t.BlockLevel()
	first, nb := t.Descendants(level, index, bl)
	s := &spanTree{t: t, level: level, index: index, first: first, blocks: make([][][]uint64, nb)}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.par)
	for k := range nb {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			buf := r.bufs.get()
			defer r.bufs.put(buf)
			off, n := t.Span(bl, first+k)
			if err := readAt(r.dev, r.path, buf[:n], off); err != nil {
				return err
			}
			s.blocks[k] = t.BlockTree(first+k, buf[:n])
			r.prog.scan(n)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	roots := make([]uint64, nb)
	for k, b := range s.blocks {
		roots[k] = b[bl][0]
	}
	s.above = make([][]uint64, level-bl+1)
	for k := bl; k <= level; k++ {
		s.above[k-bl] = t.Reduce(bl, k, roots)
	}
	return s, nil
}

// caller makes the block calls of one session and counts their bytes.
type caller struct {
	sess  *parallel.Session
	calls atomic.Int64 // calls made
	bytes atomic.Int64 // request and reply payload bytes
}

// call sends req and returns the reply.
func (c *caller) call(ctx context.Context, req control.Request) ([]byte, error) {
	b := control.Marshal(req)
	resp, err := c.sess.Call(ctx, b)
	c.calls.Add(1)
	c.bytes.Add(int64(len(b) + len(resp)))
	return resp, err
}

// digests makes one digests call.
func (c *caller) digests(ctx context.Context, d *control.Digests) ([]bool, [][]uint64, error) {
	resp, err := c.call(ctx, control.Request{Op: control.OpDigests, Digests: d})
	if err != nil {
		return nil, nil, err
	}
	differs, down, err := d.ParseDigests(resp)
	if err != nil {
		return nil, nil, fmt.Errorf("source: task %q: %w", c.sess.Task(), err)
	}
	return differs, down, nil
}

// ranges turns sorted node indexes into node ranges.
func ranges(nodes []int64) []control.NodeRange {
	var rs []control.NodeRange
	for _, n := range nodes {
		if k := len(rs) - 1; k >= 0 && rs[k].First()+rs[k].Count() == n {
			rs[k][1]++
			continue
		}
		rs = append(rs, control.NodeRange{n, 1})
	}
	return rs
}

// callParallel bounds the calls one span comparison has outstanding.
const callParallel = 4

// maxCallBytes bounds the image bytes one digests call makes the server
// read, so that the calls of a level spread over the server's cores.
const maxCallBytes = 64 << 20

// diffSpan compares the span s with the server's image and returns the
// indexes of the leaves that differ, in order.
func (c *caller) diffSpan(ctx context.Context, s *spanTree) ([]int64, error) {
	t := s.t
	bl := t.BlockLevel()
	level, nodes := s.level, []int64{s.index}
	if level == 0 {
		return c.compareDown(ctx, s, level, nodes, 0)
	}
	// The span itself, with its digest: the server says whether it
	// differs, and if so gives the next level down.
	down := level - 1
	if level > bl {
		down = bl
	}
	cands, err := c.compareChildren(ctx, s, level, nodes, down)
	if err != nil || len(cands) == 0 {
		return nil, err
	}
	nodes, level = cands, down
	for level > 0 {
		if level == 1 {
			// Known to differ: their leaves, compared here.
			return c.compareDown(ctx, s, 1, nodes, 0)
		}
		// Known to differ: compare their children (sent with our
		// digests), and get the next level down of those that differ.
		child := level - 1
		var kids []int64
		for _, n := range nodes {
			f, k := t.Descendants(level, n, child)
			for i := f; i < f+k; i++ {
				kids = append(kids, i)
			}
		}
		down := child - 1
		if child > bl {
			down = bl
		}
		if nodes, err = c.compareChildren(ctx, s, child, kids, down); err != nil {
			return nil, err
		}
		level = down
	}
	return nodes, nil
}

// compareChildren sends the local digests of nodes (at level) and returns
// the nodes of level down under those that differ whose digests differ
// too, compared here.
func (c *caller) compareChildren(ctx context.Context, s *spanTree, level int, nodes []int64, down int) ([]int64, error) {
	return c.batches(ctx, s, level, nodes, down, true)
}

// compareDown asks for the descendants at level down of nodes (at level)
// and returns those whose digests differ from the local ones.
func (c *caller) compareDown(ctx context.Context, s *spanTree, level int, nodes []int64, down int) ([]int64, error) {
	return c.batches(ctx, s, level, nodes, down, false)
}

// batches splits a comparison into calls within the limits, made
// callParallel at a time, and merges what they find.
func (c *caller) batches(ctx context.Context, s *spanTree, level int, nodes []int64, down int, compare bool) ([]int64, error) {
	t := s.t
	per := t.Unit(level) / t.Unit(down) // descendants per node
	maxNodes := min(int64(control.MaxDigestReply)/(8*per), max(1, maxCallBytes/t.Unit(level)), control.MaxDigestNodes)
	var batches [][]int64
	for len(nodes) > 0 {
		n := min(int64(len(nodes)), maxNodes)
		batches = append(batches, nodes[:n])
		nodes = nodes[n:]
	}
	found := make([][]int64, len(batches))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(callParallel)
	for bi, batch := range batches {
		g.Go(func() error {
			d := &control.Digests{Tree: t, Level: level, Nodes: ranges(batch), Down: down}
			if compare {
				d.Compare = make([]byte, 0, 8*len(batch))
				for _, n := range batch {
					d.Compare = control.AppendDigest(d.Compare, s.digest(level, n))
				}
			}
			differs, desc, err := c.digests(gctx, d)
			if err != nil {
				return err
			}
			for j, n := range batch {
				if !differs[j] {
					continue
				}
				f, _ := t.Descendants(level, n, down)
				for k, x := range desc[j] {
					if i := f + int64(k); x != s.digest(down, i) {
						found[bi] = append(found[bi], i)
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := slices.Concat(found...)
	if !slices.IsSorted(out) {
		return nil, errors.New("source: internal error: differing nodes out of order")
	}
	return out, nil
}

// compareSpans compares the spans of the local device from span first on
// with the server's image, two spans at a time, and calls emit with the
// leaves that differ in each span, span after span in order.
func (c *caller) compareSpans(ctx context.Context, rd *blockReader, first int64, emit func(leaves []int64) error) error {
	t := rd.t
	level := SpanLevel(t)
	type result struct {
		leaves []int64
		err    error
	}
	queue := make(chan chan result, 1)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(queue)
		var spans errgroup.Group
		spans.SetLimit(2)
		defer spans.Wait()
		for sp := first; sp < t.Nodes(level); sp++ {
			ch := make(chan result, 1)
			select {
			case queue <- ch:
			case <-gctx.Done():
				return gctx.Err()
			}
			spans.Go(func() error {
				st, err := rd.span(gctx, level, sp)
				var leaves []int64
				if err == nil {
					leaves, err = c.diffSpan(gctx, st)
				}
				ch <- result{leaves, err}
				return nil
			})
		}
		return nil
	})
	g.Go(func() error {
		for ch := range queue {
			var r result
			select {
			case r = <-ch:
			case <-gctx.Done():
				return gctx.Err()
			}
			if r.err != nil {
				return r.err
			}
			if err := emit(r.leaves); err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

// leafRuns turns sorted leaf indexes into byte ranges of t, merging
// adjacent leaves but never across a block boundary.
func leafRuns(t digest.Tree, leaves []int64) []Range {
	var rs []Range
	for _, l := range leaves {
		off, n := t.Span(0, l)
		if k := len(rs) - 1; k >= 0 && rs[k].Offset+rs[k].Length == off && off%t.BlockSize != 0 {
			rs[k].Length += n
			continue
		}
		rs = append(rs, Range{Offset: off, Length: n})
	}
	return rs
}

// Range is a byte range of a device.
type Range struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// End returns the offset after the range.
func (r Range) End() int64 { return r.Offset + r.Length }
