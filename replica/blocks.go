package replica

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/logship/logship/control"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/parallel"
)

// The block calls (docs/protocol.md section 7.1): the server's half of
// sync, verify and recover. OpDigests computes digests of the image's
// digest tree (digest.Tree) for the client to compare with its own;
// OpRead returns image bytes, zero pieces left out. Both read the image of
// the task opened in the session, as it is: windows of the same session
// that are acked may not be applied to it yet (group commit), so a client
// asks for digests of a range before it writes it, never after. Nothing
// is cached between calls: every call reads what it needs.

// handleBlocks answers OpDigests and OpRead.
func (srv *Server) handleBlocks(ctx context.Context, ps *parallel.Session, r control.Request) ([]byte, error) {
	t, err := srv.openedTask(ctx, ps)
	if err != nil {
		return nil, remote(err)
	}
	var resp []byte
	switch {
	case r.Op == control.OpDigests && r.Digests != nil:
		resp, err = srv.digests(ctx, t, r.Digests)
	case r.Op == control.OpRead && r.Read != nil:
		resp, err = readBytes(t, r.Read)
	default:
		err = fmt.Errorf("%w: %s without its fields", ErrBadRequest, r.Op)
	}
	if err != nil {
		return nil, remote(err)
	}
	return resp, nil
}

// openedTask returns the task the session opened.
func (srv *Server) openedTask(ctx context.Context, ps *parallel.Session) (*task, error) {
	ss, err := srv.acceptedSession(ctx, ps)
	if err != nil {
		return nil, err
	}
	ss.mu.Lock()
	t := ss.t
	ss.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("%w: call open before asking for digests or bytes of the image", ErrNotOpen)
	}
	return t, nil
}

// readBytes answers OpRead.
func readBytes(t *task, r *control.Read) ([]byte, error) {
	if err := r.Check(t.view().Size()); err != nil {
		return nil, fmt.Errorf("%w: task %s: %w", ErrBadRequest, t.name, err)
	}
	data := make([]byte, r.Length)
	if err := readImageAt(t, data, r.Offset); err != nil {
		return nil, err
	}
	return r.AppendRead(make([]byte, 0, control.BitmapLen((r.Length+r.Granularity-1)/r.Granularity)+r.Length), data), nil
}

// readImageAt reads len(p) bytes of t's image at off.
func readImageAt(t *task, p []byte, off int64) error {
	img := t.view()
	n, err := img.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("short read")
	}
	return fmt.Errorf("task %s: reading %d bytes of %s at %d: %w", t.name, len(p), img.Path(), off, err)
}

// digestParallel is how many blocks one digests call reads at once.
const digestParallel = 4

// digests answers OpDigests: it reads the blocks under the nodes asked
// for, in parallel, and computes what the reply needs.
func (srv *Server) digests(ctx context.Context, t *task, d *control.Digests) ([]byte, error) {
	n, err := d.Check()
	if err != nil {
		return nil, fmt.Errorf("%w: task %s: %w", ErrBadRequest, t.name, err)
	}
	tr := d.Tree
	if size := t.view().Size(); tr.Size > size {
		return nil, fmt.Errorf("%w: task %s: a digest tree of %d bytes over a %d-byte image", ErrBadRequest, t.name, tr.Size, size)
	}
	// own[j] is the digest of the j-th node asked for, down[j] its
	// descendants at level Down.
	own := make([]uint64, n)
	down := make([][]uint64, n)
	if d.Level > tr.BlockLevel() {
		err = nodesAbove(ctx, t, tr, d, own, down)
	} else {
		err = nodesBelow(ctx, t, tr, d, own, down)
	}
	if err != nil {
		return nil, err
	}
	var bm, out []byte
	if d.Compare != nil {
		bm = make([]byte, control.BitmapLen(n))
	}
	for j := range n {
		if bm != nil {
			if own[j] == digestAt(d.Compare[8*j:]) {
				continue
			}
			control.SetBit(bm, j)
		}
		for _, x := range down[j] {
			out = control.AppendDigest(out, x)
		}
	}
	if bm != nil {
		out = append(bm, out...)
	}
	return out, nil
}

func digestAt(b []byte) uint64 {
	ds, _ := control.ParseDigestList(b[:8])
	return ds[0]
}

// eachNode calls f for every node asked for: its index among them and its
// index in its level.
func eachNode(d *control.Digests, f func(j, node int64)) {
	j := int64(0)
	for _, r := range d.Nodes {
		for i := r.First(); i < r.First()+r.Count(); i++ {
			f(j, i)
			j++
		}
	}
}

// nodesBelow computes nodes of a level at or below the block level, each
// from its own bytes, digestParallel at a time.
func nodesBelow(ctx context.Context, t *task, tr digest.Tree, d *control.Digests, own []uint64, down [][]uint64) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(digestParallel)
	bufs := newBufPool(digestParallel, tr.Unit(d.Level))
	eachNode(d, func(j, node int64) {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			buf := bufs.get()
			defer bufs.put(buf)
			var err error
			own[j], down[j], err = nodeBelow(t, tr, d.Level, node, d.Down, buf)
			return err
		})
	})
	return g.Wait()
}

// bufPool keeps the read buffers of one call.
type bufPool struct {
	size int64
	ch   chan []byte
}

func newBufPool(n int, size int64) *bufPool { return &bufPool{size: size, ch: make(chan []byte, n)} }

func (p *bufPool) get() []byte {
	select {
	case b := <-p.ch:
		return b
	default:
		return make([]byte, p.size)
	}
}

func (p *bufPool) put(b []byte) {
	select {
	case p.ch <- b:
	default:
	}
}

// nodeBelow computes node i of a level at or below the block level, and
// its descendants at level down, from the node's bytes.
func nodeBelow(t *task, tr digest.Tree, level int, i int64, down int, buf []byte) (uint64, []uint64, error) {
	off, length := tr.Span(level, i)
	data := buf[:length]
	if err := readImageAt(t, data, off); err != nil {
		return 0, nil, err
	}
	// The levels inside the node are those of a tree whose block is the
	// node.
	sub := digest.Tree{Size: length, Granularity: tr.Granularity, BlockSize: tr.Unit(level)}
	levels := sub.BlockTree(0, data)
	return levels[level][0], levels[down], nil
}

// nodesAbove computes nodes of a level above the block level from the
// trees of their blocks, which are read digestParallel at a time.
func nodesAbove(ctx context.Context, t *task, tr digest.Tree, d *control.Digests, own []uint64, down [][]uint64) error {
	bl := tr.BlockLevel()
	type node struct {
		j, i  int64
		first int64      // its first block
		roots []uint64   // of its blocks
		below [][]uint64 // with Down < bl: each block's descendants at Down
	}
	var nodes []*node
	eachNode(d, func(j, i int64) {
		first, nb := tr.Descendants(d.Level, i, bl)
		nd := &node{j: j, i: i, first: first, roots: make([]uint64, nb)}
		if d.Down < bl {
			nd.below = make([][]uint64, nb)
		}
		nodes = append(nodes, nd)
	})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(digestParallel)
	bufs := newBufPool(digestParallel, tr.BlockSize)
	for _, nd := range nodes {
		for k := range int64(len(nd.roots)) {
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				buf := bufs.get()
				defer bufs.put(buf)
				off, length := tr.Span(bl, nd.first+k)
				data := buf[:length]
				if err := readImageAt(t, data, off); err != nil {
					return err
				}
				levels := tr.BlockTree(nd.first+k, data)
				nd.roots[k] = levels[bl][0]
				if nd.below != nil {
					nd.below[k] = levels[d.Down]
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, nd := range nodes {
		own[nd.j] = tr.Reduce(bl, d.Level, nd.roots)[0]
		switch {
		case d.Down == d.Level:
			down[nd.j] = []uint64{own[nd.j]}
		case d.Down >= bl:
			down[nd.j] = tr.Reduce(bl, d.Down, nd.roots)
		default:
			for _, x := range nd.below {
				down[nd.j] = append(down[nd.j], x...)
			}
		}
	}
	return nil
}
