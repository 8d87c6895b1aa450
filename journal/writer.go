package journal

import (
	"errors"
	"fmt"
	"io"
)

// ErrClosed is returned by a Writer used after Close.
var ErrClosed = errors.New("journal: writer closed")

// Writer produces a journal byte-compatible with the kernel's: the same
// superblock, header sectors and payload layout, zero padding everywhere.
// It buffers up to a bounded number of bytes and writes them at increasing
// offsets of an io.WriterAt. Errors are sticky.
type Writer struct {
	w       io.WriterAt
	ss      uint32
	entries uint64
	off     int64  // journal offset of buf[0]
	buf     []byte // pending bytes
	err     error
}

const writerBuffer = 1 << 20

// NewWriter starts a journal with the given sector size in w. Nothing is
// written until the buffer fills or Flush or Close is called; the
// superblock is written by WriteSuper and by Close.
func NewWriter(w io.WriterAt, sectorSize int) (*Writer, error) {
	if !ValidSectorSize(sectorSize) {
		return nil, fmt.Errorf("journal: invalid sector size %d", sectorSize)
	}
	return &Writer{w: w, ss: uint32(sectorSize), off: int64(sectorSize)}, nil
}

// SectorSize is the journal's sector size.
func (w *Writer) SectorSize() int { return int(w.ss) }

// Entries is the number of entries appended so far.
func (w *Writer) Entries() uint64 { return w.entries }

// Append adds an entry. For a write, data holds its payload of
// e.NrSectors*SectorSize bytes; for other entries data must be empty. Only
// Sector, NrSectors, Flags and Label of e are used.
func (w *Writer) Append(e Entry, data []byte) error {
	if w.err != nil {
		return w.err
	}
	e.SectorSize = w.ss
	switch {
	case e.Flags&^knownFlags != 0:
		return fmt.Errorf("journal: unknown flags %#x", uint64(e.Flags))
	case e.IsMark() && (e.NrSectors != 0 || len(e.Label) > int(w.ss)-entryLabel-1):
		return fmt.Errorf("journal: mark %q: label longer than %d bytes or sectors set", e.Label, int(w.ss)-entryLabel-1)
	case !e.IsMark() && e.Label != "":
		return fmt.Errorf("journal: label on a %s entry", e.Flags)
	case int64(len(data)) != e.PayloadLen():
		return fmt.Errorf("journal: %s entry of %d sectors needs %d payload bytes, got %d",
			e.Flags, e.NrSectors, e.PayloadLen(), len(data))
	case e.Flags == 0 && e.NrSectors == 0:
		return fmt.Errorf("journal: write of zero sectors")
	}
	w.buf = appendHeader(w.buf, e)
	if len(data) > 0 && len(w.buf)+len(data) > writerBuffer {
		// Large payloads go straight through, after what is pending.
		if err := w.flushBuf(); err != nil {
			return err
		}
		if _, err := w.w.WriteAt(data, w.off); err != nil {
			w.err = fmt.Errorf("journal: writing payload at %d: %w", w.off, err)
			return w.err
		}
		w.off += int64(len(data))
	} else {
		w.buf = append(w.buf, data...)
	}
	w.entries++
	if len(w.buf) >= writerBuffer {
		return w.flushBuf()
	}
	return nil
}

// Write appends a write of data at sector with extra flags (FUA, METADATA, FLUSH).
func (w *Writer) Write(sector uint64, data []byte, flags Flags) error {
	if len(data)%int(w.ss) != 0 {
		return fmt.Errorf("journal: write of %d bytes is not a multiple of the %d-byte sector", len(data), w.ss)
	}
	return w.Append(Entry{Sector: sector, NrSectors: uint64(len(data)) / uint64(w.ss), Flags: flags}, data)
}

// Discard appends a discard of n sectors at sector.
func (w *Writer) Discard(sector, n uint64) error {
	return w.Append(Entry{Sector: sector, NrSectors: n, Flags: FlagDiscard}, nil)
}

// Flush appends an empty FLUSH entry.
func (w *Writer) Flush() error { return w.Append(Entry{Flags: FlagFlush}, nil) }

// Mark appends a mark.
func (w *Writer) Mark(label string) error { return w.Append(Entry{Flags: FlagMark, Label: label}, nil) }

func (w *Writer) flushBuf() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.w.WriteAt(w.buf, w.off); err != nil {
		w.err = fmt.Errorf("journal: writing at %d: %w", w.off, err)
		return w.err
	}
	w.off += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// WriteSuper writes out pending entries, then the superblock counting them,
// as the kernel does after a FUA or MARK entry.
func (w *Writer) WriteSuper() error {
	if err := w.flushBuf(); err != nil {
		return err
	}
	sb, _ := Super{NrEntries: w.entries, SectorSize: w.ss}.AppendBinary(nil)
	if _, err := w.w.WriteAt(sb, 0); err != nil {
		w.err = fmt.Errorf("journal: writing superblock: %w", err)
		return w.err
	}
	return nil
}

// Size is the journal's length in bytes so far.
func (w *Writer) Size() int64 { return w.off + int64(len(w.buf)) }

// Close writes pending entries and the superblock. It does not sync or close w.
func (w *Writer) Close() error {
	if errors.Is(w.err, ErrClosed) {
		return nil
	}
	err := w.WriteSuper()
	if err == nil {
		w.err = ErrClosed
	}
	return err
}
