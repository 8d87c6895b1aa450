package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// Entry is one journal record: a write, a discard, a flush or a mark.
// Positions are kept as the journal stores them, in sectors of SectorSize
// bytes; Start and Len give bytes on the data device.
type Entry struct {
	Index      int64  // position in the journal, from 0
	Offset     int64  // byte offset of the header in the journal
	Sector     uint64 // first sector on the data device
	NrSectors  uint64 // length in sectors (0 for FLUSH and MARK)
	Flags      Flags
	Label      string // the label of a MARK
	SectorSize uint32 // the journal's sector size
}

// IsWrite reports whether the entry carries data for the device.
func (e Entry) IsWrite() bool { return e.Flags&(FlagDiscard|FlagMark) == 0 && e.NrSectors > 0 }

// IsDiscard reports whether the entry discards a range.
func (e Entry) IsDiscard() bool { return e.Flags&FlagDiscard != 0 }

// IsMark reports whether the entry is a mark.
func (e Entry) IsMark() bool { return e.Flags&FlagMark != 0 }

// IsBarrier reports whether the entry orders what follows it after what
// precedes it: a FLUSH, a FUA write or a MARK.
func (e Entry) IsBarrier() bool { return e.Flags&(FlagFlush|FlagFUA|FlagMark) != 0 }

// Start is the byte offset on the data device that the entry touches.
func (e Entry) Start() int64 { return int64(e.Sector) * int64(e.SectorSize) }

// Len is the number of bytes on the data device the entry writes or discards.
func (e Entry) Len() int64 { return int64(e.NrSectors) * int64(e.SectorSize) }

// End is Start+Len.
func (e Entry) End() int64 { return e.Start() + e.Len() }

// PayloadLen is the number of payload bytes that follow the header.
func (e Entry) PayloadLen() int64 {
	if e.Flags&FlagDiscard != 0 {
		return 0
	}
	return e.Len()
}

// PayloadOffset is the byte offset of the payload in the journal.
func (e Entry) PayloadOffset() int64 { return e.Offset + int64(e.SectorSize) }

// NextOffset is the byte offset of the next entry's header.
func (e Entry) NextOffset() int64 { return e.PayloadOffset() + e.PayloadLen() }

// parseEntry decodes and validates the header in h (one sector long).
func parseEntry(h []byte, index, offset int64, sectorSize uint32) (Entry, error) {
	e := Entry{
		Index:      index,
		Offset:     offset,
		Sector:     binary.LittleEndian.Uint64(h[entrySector:]),
		NrSectors:  binary.LittleEndian.Uint64(h[entryNrSectors:]),
		Flags:      Flags(binary.LittleEndian.Uint64(h[entryFlags:])),
		SectorSize: sectorSize,
	}
	dataLen := binary.LittleEndian.Uint64(h[entryDataLen:])
	corrupt := func(format string, args ...any) (Entry, error) {
		return Entry{}, &EntryError{Index: index, Offset: offset,
			Err: fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)}
	}
	if u := e.Flags &^ knownFlags; u != 0 {
		return corrupt("unknown flag bits %#x", uint64(u))
	}
	// Every byte position the entry names must fit in an int64.
	maxSectors := uint64(math.MaxInt64) / uint64(sectorSize)
	if e.Sector > maxSectors || e.NrSectors > maxSectors-e.Sector {
		return corrupt("sector range %d+%d overflows", e.Sector, e.NrSectors)
	}
	if e.PayloadLen() > maxPayload {
		return corrupt("payload of %d bytes is larger than any write", e.PayloadLen())
	}
	switch {
	case e.Flags&FlagMark != 0:
		if dataLen > uint64(sectorSize)-entryLabel {
			return corrupt("mark label of %d bytes does not fit its %d-byte sector", dataLen, sectorSize)
		}
		if e.NrSectors != 0 {
			return corrupt("mark with %d sectors", e.NrSectors)
		}
		label := h[entryLabel : entryLabel+int(dataLen)]
		if i := bytes.IndexByte(label, 0); i >= 0 {
			label = label[:i]
		}
		e.Label = string(label)
	case e.Flags == 0 && e.NrSectors == 0:
		return corrupt("write of zero sectors")
	case e.Flags&FlagDiscard == 0 && dataLen > uint64(e.PayloadLen()):
		// Kernels 4.15-5.16 logged DAX writes with data_len set to the
		// bytes written and the payload padded to whole sectors; any
		// data_len up to the payload is that, anything past it is not.
		return corrupt("data_len %d exceeds the %d-byte payload", dataLen, e.PayloadLen())
	}
	return e, nil
}

// appendHeader appends e's header sector, as the kernel writes it.
func appendHeader(b []byte, e Entry) []byte {
	start := len(b)
	b = append(b, make([]byte, e.SectorSize)...)
	h := b[start:]
	binary.LittleEndian.PutUint64(h[entrySector:], e.Sector)
	binary.LittleEndian.PutUint64(h[entryNrSectors:], e.NrSectors)
	binary.LittleEndian.PutUint64(h[entryFlags:], uint64(e.Flags))
	if e.Flags&FlagMark != 0 {
		binary.LittleEndian.PutUint64(h[entryDataLen:], uint64(len(e.Label)))
		copy(h[entryLabel:], e.Label)
	}
	return b
}
