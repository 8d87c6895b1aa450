// Package digest is the digest tree (docs/protocol.md section 7.3) that
// both sides of a block comparison build over a device: blocksync on the
// source, replica on the server. [Tree] gives the shape of the tree (its
// levels, units and spans), [Tree.BlockTree] the digests of one block,
// [Combine] and [Tree.Reduce] the levels above. The calls that carry
// digests (control.Digests, control.Read) are control's. [IsZero] reports
// a run of zero bytes, which sync and the read call send as holes, not
// data.
package digest
