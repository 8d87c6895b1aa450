package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// Frozen constants of the on-disk format. They are the kernel's; changing
// them breaks compatibility with every journal ever recorded.
const (
	Magic   uint64 = 0x006a736677736872 // "rhswfsj\0" on disk
	Version uint64 = 1

	// EndMark is the label of the mark the kernel logs when the target is
	// removed (unless logging was disabled).
	EndMark = "dm-log-writes-end"

	// MinSectorSize and MaxSectorSize bound the sector sizes a journal may
	// declare: any power of two in between is accepted.
	MinSectorSize = 512
	MaxSectorSize = 64 << 10
)

// Byte offsets inside the superblock.
const (
	superMagic      = 0
	superVersion    = 8
	superNrEntries  = 16
	superSectorSize = 24
	superLen        = 28 // bytes 28-31 are struct padding: ignored on read, zero on write
)

// Byte offsets inside an entry header.
const (
	entrySector    = 0
	entryNrSectors = 8
	entryFlags     = 16
	entryDataLen   = 24
	entryLabel     = 32
	entryLen       = 32
)

// maxPayload bounds the payload an entry header may claim. It is far above
// any bio the kernel builds or any request QEMU logs; a larger claim is a
// corrupt header, not a short journal.
const maxPayload = 1 << 32

// Flags is the flag field of an entry.
type Flags uint64

// Flag bits, as the kernel defines them.
const (
	FlagFlush    Flags = 1 << 0 // the bio carried REQ_PREFLUSH
	FlagFUA      Flags = 1 << 1 // the bio carried REQ_FUA
	FlagDiscard  Flags = 1 << 2 // a discard: nr_sectors long, no payload
	FlagMark     Flags = 1 << 3 // a userspace mark; the label is in the header
	FlagMetadata Flags = 1 << 4 // the bio carried REQ_META (a hint only)

	knownFlags = FlagFlush | FlagFUA | FlagDiscard | FlagMark | FlagMetadata
)

var flagNames = [...]string{"FLUSH", "FUA", "DISCARD", "MARK", "METADATA"}

// String returns the set flags joined by '|', e.g. "FUA|METADATA", "WRITE"
// for a plain write (no flags), and UNKNOWN(0x..) for bits the kernel does
// not define.
func (f Flags) String() string {
	if f == 0 {
		return "WRITE"
	}
	var parts []string
	for i, name := range flagNames {
		if f&(1<<i) != 0 {
			parts = append(parts, name)
		}
	}
	if u := f &^ knownFlags; u != 0 {
		parts = append(parts, fmt.Sprintf("UNKNOWN(%#x)", uint64(u)))
	}
	return strings.Join(parts, "|")
}

// Sentinel errors. They come wrapped; test with errors.Is.
var (
	// ErrFormat: the input is not a journal (bad magic, version or sector size).
	ErrFormat = errors.New("journal: not a dm-log-writes journal")
	// ErrCorrupt: an entry fails validation.
	ErrCorrupt = errors.New("journal: corrupt entry")
	// ErrNoMark: a mark asked for is not in the journal.
	ErrNoMark = errors.New("journal: mark not found")
	// ErrRange: an entry index beyond the journal's entries.
	ErrRange = errors.New("journal: entry index out of range")
)

// EntryError names the entry at which reading failed.
type EntryError struct {
	Index  int64 // entry index, from 0
	Offset int64 // byte offset of the entry's header in the journal
	Err    error // ErrCorrupt, io.ErrUnexpectedEOF or an I/O error, wrapped
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("entry %d at offset %d: %v", e.Index, e.Offset, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Super is the journal's superblock.
type Super struct {
	NrEntries  uint64 // entries a reader should consume
	SectorSize uint32 // bytes per sector: the unit of every position
}

// ParseSuper decodes a superblock from the first bytes of a journal. A
// count of entries of 2^63 or more (which no journal can hold, and which
// would turn negative as an entry index) is ErrFormat.
func ParseSuper(b []byte) (Super, error) {
	s, err := parseSuper(b)
	if err == nil && s.NrEntries > math.MaxInt64 {
		return Super{}, fmt.Errorf("%w: nr_entries %d is 2^63 or more", ErrFormat, s.NrEntries)
	}
	return s, err
}

// parseSuper is ParseSuper without the check of the entry count.
func parseSuper(b []byte) (Super, error) {
	if len(b) < superLen {
		return Super{}, fmt.Errorf("%w: %d bytes, a superblock needs %d", ErrFormat, len(b), superLen)
	}
	if m := binary.LittleEndian.Uint64(b[superMagic:]); m != Magic {
		return Super{}, fmt.Errorf("%w: bad magic %#016x", ErrFormat, m)
	}
	if v := binary.LittleEndian.Uint64(b[superVersion:]); v != Version {
		return Super{}, fmt.Errorf("%w: unsupported version %d", ErrFormat, v)
	}
	s := Super{
		NrEntries:  binary.LittleEndian.Uint64(b[superNrEntries:]),
		SectorSize: binary.LittleEndian.Uint32(b[superSectorSize:]),
	}
	if !ValidSectorSize(int(s.SectorSize)) {
		return Super{}, fmt.Errorf("%w: sector size %d is not a power of two in [%d, %d]",
			ErrFormat, s.SectorSize, MinSectorSize, MaxSectorSize)
	}
	return s, nil
}

// AppendBinary appends the superblock's SectorSize bytes, as the kernel writes them.
func (s Super) AppendBinary(b []byte) ([]byte, error) {
	if !ValidSectorSize(int(s.SectorSize)) {
		return b, fmt.Errorf("journal: invalid sector size %d", s.SectorSize)
	}
	start := len(b)
	b = append(b, make([]byte, s.SectorSize)...)
	h := b[start:]
	binary.LittleEndian.PutUint64(h[superMagic:], Magic)
	binary.LittleEndian.PutUint64(h[superVersion:], Version)
	binary.LittleEndian.PutUint64(h[superNrEntries:], s.NrEntries)
	binary.LittleEndian.PutUint32(h[superSectorSize:], s.SectorSize)
	return b, nil
}

// ValidSectorSize reports whether n is a sector size journals may use.
func ValidSectorSize(n int) bool {
	return n >= MinSectorSize && n <= MaxSectorSize && bits.OnesCount(uint(n)) == 1
}
