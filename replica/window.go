package replica

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/replay"
)

// window is a complete window that passed every check: its entries, one
// per DATA frame (the pieces of a split write are entries of their own,
// with the same Index), and their payloads.
type window struct {
	seq     uint64
	journal string          // the journal it belongs to
	first   int64           // index of its first entry (next when empty)
	next    int64           // index after its last entry
	entries []journal.Entry // one per frame, in frame order
	data    [][]byte        // payload of each entry; aliases the frames
	bytes   int64           // payload bytes

	pw   *parallel.Window // holds the memory; released after the apply
	recv time.Time        // when it was received whole (metrics)

	// Set by the staging log: where the window's closing mark is, so that
	// the checkpoint can be put after it.
	stagingFile uint64 // staging log number
	stagingNext int64  // entry index after the window's mark

	// Set for a window written through to the image (group commit): the
	// applier closes written once the window is durable in the image and
	// the checkpoint is past it, or once the applier failed. stagingFile
	// and stagingNext are then the end of the staging log when it came.
	written chan struct{}
}

// pos is the position after the window.
func (w *window) pos() control.Position {
	return control.Position{Journal: w.journal, NextEntry: w.next, NextWindow: w.seq + 1}
}

// release gives the window's memory (its credit) back to the transport.
func (w *window) release() {
	if w.pw != nil {
		w.pw.Release()
	}
}

// wrote tells the committer that a window written through is done with
// (durable, or abandoned after a failure).
func (w *window) wrote() {
	if w.written != nil {
		close(w.written)
	}
}

// expect is what the next window of a session must look like.
type expect struct {
	pos        control.Position // where it starts
	sectorSize uint32           // the journal's sector size
	size       int64            // the image size
}

// decodeWindow decodes and checks the DATA frames of window seq against
// exp (docs/protocol.md section 7.1). It touches nothing: a window that
// fails any check is refused whole.
func decodeWindow(seq uint64, frames []parallel.Frame, exp expect) (*window, error) {
	w := &window{seq: seq, journal: exp.pos.Journal, first: exp.pos.NextEntry, next: exp.pos.NextEntry}
	if seq != exp.pos.NextWindow {
		return nil, fmt.Errorf("%w: window %d, the task expects window %d (entry %d)", ErrSequence, seq, exp.pos.NextWindow, exp.pos.NextEntry)
	}
	// A sync journal numbers entries by block: blocks may be skipped and
	// a block may come in several pieces (docs/protocol.md section 7.1).
	blocks := control.IsSyncJournal(exp.pos.Journal)
	ss := exp.sectorSize
	limit := uint64(exp.size) / uint64(ss) // sectors in the image
	maxLabel := int(ss) - 33               // what a journal header holds
	w.entries = make([]journal.Entry, 0, len(frames))
	w.data = make([][]byte, 0, len(frames))
	for i, f := range frames {
		where := func() string { return fmt.Sprintf("window %d, frame %d (entry %d)", seq, i, f.Entry) }
		if f.Entry > math.MaxInt64 {
			return nil, fmt.Errorf("%w: %s: entry index out of range", ErrSequence, where())
		}
		idx := int64(f.Entry)
		e, data, err := control.ParseEntry(f.Payload, idx, ss)
		if err != nil {
			return nil, fmt.Errorf("%w: window %d, frame %d: %w", ErrBadEntry, seq, i, err)
		}
		// Sequence: the first frame is the expected entry, then each frame
		// is the next entry or the next piece of the same write.
		if i == 0 {
			if idx != exp.pos.NextEntry && !(blocks && idx > exp.pos.NextEntry) {
				return nil, fmt.Errorf("%w: %s: the window starts at entry %d, the task expects entry %d", ErrSequence, where(), idx, exp.pos.NextEntry)
			}
		} else {
			prev := w.entries[len(w.entries)-1]
			switch {
			case blocks && idx >= prev.Index:
				if prev.IsBarrier() {
					return nil, fmt.Errorf("%w: %s: entry %d (%s) is a barrier but not the window's last entry", ErrBadEntry, where(), prev.Index, prev.Flags)
				}
			case idx == prev.Index:
				if !prev.IsWrite() || !e.IsWrite() || e.Flags != prev.Flags || e.Sector != prev.Sector+prev.NrSectors {
					return nil, fmt.Errorf("%w: %s: entry %d twice (a %s at sector %d after a %s at %d+%d is not the next piece of a split write)",
						ErrSequence, where(), idx, e.Flags, e.Sector, prev.Flags, prev.Sector, prev.NrSectors)
				}
			case idx == prev.Index+1:
				if prev.IsBarrier() {
					return nil, fmt.Errorf("%w: %s: entry %d (%s) is a barrier but not the window's last entry", ErrBadEntry, where(), prev.Index, prev.Flags)
				}
			default:
				return nil, fmt.Errorf("%w: %s: entry %d follows entry %d", ErrSequence, where(), idx, prev.Index)
			}
		}
		// Content.
		switch {
		case e.IsMark():
			if e.NrSectors != 0 {
				return nil, fmt.Errorf("%w: %s: mark with %d sectors", ErrBadEntry, where(), e.NrSectors)
			}
			if len(e.Label) > maxLabel || strings.IndexByte(e.Label, 0) >= 0 {
				return nil, fmt.Errorf("%w: %s: mark label of %d bytes (at most %d, no NUL)", ErrBadEntry, where(), len(e.Label), maxLabel)
			}
			if strings.HasPrefix(e.Label, windowPrefix) || strings.HasPrefix(e.Label, beginLabel) {
				return nil, fmt.Errorf("%w: %s: mark labels beginning %q or %q are the staging log's own", ErrBadEntry, where(), windowPrefix, beginLabel)
			}
		case e.Flags == 0 && e.NrSectors == 0:
			return nil, fmt.Errorf("%w: %s: write of zero sectors", ErrBadEntry, where())
		case e.NrSectors > 0 && (e.Sector > limit || e.NrSectors > limit-e.Sector):
			return nil, fmt.Errorf("%w: %s: %s of sectors %d+%d (%d-byte sectors) lies outside the %d-byte image",
				ErrBadEntry, where(), e.Flags, e.Sector, e.NrSectors, ss, exp.size)
		}
		w.entries = append(w.entries, e)
		w.data = append(w.data, data)
		w.bytes += int64(len(data))
	}
	if n := len(w.entries); n > 0 {
		w.next = w.entries[n-1].Index + 1
	}
	return w, nil
}

// apply writes the window to t: its entries coalesced into disjoint
// extents, written in parallel.
func (w *window) apply(ctx context.Context, t replay.Target, par int) error {
	ext := barrier.Coalesce(w.entries)
	_, err := replay.ApplyExtents(ctx, t, ext, func(i int) []byte { return w.data[i] }, replay.Options{Parallel: par})
	if err != nil {
		return fmt.Errorf("applying window %d (entries %d-%d): %w", w.seq, w.first, w.next-1, err)
	}
	return nil
}

// entryHash hashes staging entries the way the window mark's checksum
// covers them: per entry its sector, sector count, flags, label and
// payload.
type entryHash struct {
	d   *xxhash.Digest
	n   int64 // entries hashed
	hdr [28]byte
}

func newEntryHash() *entryHash { return &entryHash{d: xxhash.New()} }

func (h *entryHash) reset() { h.d.Reset(); h.n = 0 }

// header adds an entry's header fields; its payload follows with payload.
func (h *entryHash) header(e journal.Entry) {
	binary.LittleEndian.PutUint64(h.hdr[0:], e.Sector)
	binary.LittleEndian.PutUint64(h.hdr[8:], e.NrSectors)
	binary.LittleEndian.PutUint64(h.hdr[16:], uint64(e.Flags))
	binary.LittleEndian.PutUint32(h.hdr[24:], uint32(len(e.Label)))
	h.d.Write(h.hdr[:])
	h.d.WriteString(e.Label)
	h.n++
}

func (h *entryHash) payload(p []byte) { h.d.Write(p) }

func (h *entryHash) sum() uint64 { return h.d.Sum64() }
