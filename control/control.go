// Package control defines what the source (ship, sync, verify, recover)
// and the replica (serve) say to each other on top of the parallel
// transport: the calls on stream 0 (JSON request and reply bodies, see
// docs/protocol.md section 7) and the payload of the DATA frames that carry
// journal entries. The transport moves frames; this package gives them
// meaning. Both sides import it; it imports only journal, digest (the digest
// tree the OpDigests call is about) and parallel (whose codes Code names).
package control

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/logship/logship/digest"
	"github.com/logship/logship/journal"
)

// Ops: the Op field of a Request.
const (
	OpOpen   = "open"   // open (or create) the session's task; reply: Task
	OpStatus = "status" // list tasks; reply: Status
	// OpDigests: digests of nodes of the open task's image's digest tree
	// (digest.Tree); the reply is binary, see Digests.
	OpDigests = "digests"
	// OpRead: bytes of the open task's image; the reply is binary, see
	// Read.
	OpRead = "read"
)

// Request is the body of a CALL.
type Request struct {
	Op string `json:"op"`
	// OpOpen.
	Open *Open `json:"open,omitempty"`
	// OpDigests.
	Digests *Digests `json:"digests,omitempty"`
	// OpRead.
	Read *Read `json:"read,omitempty"`
	// OpReport.
	Report *Report `json:"report,omitempty"`
	// OpResize.
	Resize *Resize `json:"resize,omitempty"`
}

// Open asks the server to open the session's task (named in the hello).
type Open struct {
	// Size creates the task with a sparse image of Size bytes when it does
	// not exist; 0 means the task must exist. A task that exists with a
	// different size is refused.
	Size int64 `json:"size,omitempty"`
	// Journal identifies the journal the source will ship (see
	// JournalID). A task whose durable position belongs to another journal
	// starts that journal from its entry 0.
	Journal string `json:"journal"`
	// SectorSize is the journal's sector size: the unit of the entries'
	// sectors in DATA frames.
	SectorSize uint32 `json:"sector_size"`
	// At opens the task read-only, as it was at the first MARK entry of a
	// source journal labeled At (every entry before it applied, none
	// after): the server rebuilds that state from its retained staging
	// logs, which must reach back to the task's creation (serve --retain
	// from the start). The block calls then read that state; windows are
	// refused. A server that does not know the field ignores it, so a
	// client checks Task.At in the reply.
	At string `json:"at,omitempty"`
	// Live, with At, reads the image as it is instead, while another
	// session ships to the task: the open waits until that session has
	// applied the window holding the mark At to the image. Nothing is
	// paused: the image is the state at the mark only as long as the
	// source writes nothing after it (a frozen file system), which is what
	// verify --at-mark needs.
	Live bool `json:"live,omitempty"`
}

// Position is where a task's image stands: every window of Journal up to
// and including Window, that is entries [0, NextEntry), is durable.
type Position struct {
	Journal   string `json:"journal"`
	NextEntry int64  `json:"next_entry"` // the first entry not yet durable
	// NextWindow is the window sequence the source must use for the
	// window starting at NextEntry.
	NextWindow uint64 `json:"next_window"`
}

// Task is the reply to OpOpen.
type Task struct {
	Name      string   `json:"name"`
	ImageSize int64    `json:"image_size"`
	Created   bool     `json:"created"`
	Durable   Position `json:"durable"`
	// At echoes Open.At when the session reads the state at that mark.
	At string `json:"at,omitempty"`
}

// TaskStatus describes one task in a Status reply.
type TaskStatus struct {
	Name      string   `json:"name"`
	ImageSize int64    `json:"image_size"`
	Durable   Position `json:"durable"`
	LastError string   `json:"last_error,omitempty"`
	// Corrupt, when set, says why the task cannot be opened until an
	// operator has looked at it (CodeCorrupt).
	Corrupt string `json:"corrupt,omitempty"`
	// The fields below are optional (report.go); an older server leaves
	// them out.
	//
	// DurableTime is when the durable position last moved while this
	// server process ran (zero if it has not).
	DurableTime time.Time `json:"durable_time,omitzero"`
	// Session is the session holding the task, if one does.
	Session *SessionStatus `json:"session,omitempty"`
	// Source is the last report of the task's source, and Lag what the
	// server makes of it (both absent before a source reported).
	Source *Report `json:"source,omitempty"`
	Lag    *Lag    `json:"lag,omitempty"`
	// State is the task's state in one word (admin.go); an older server
	// leaves it out.
	State TaskState `json:"state,omitempty"`
}

// Status is the reply to OpStatus.
type Status struct {
	Tasks []TaskStatus `json:"tasks"`
}

// SyncJournalPrefix begins the journal identity (Open.Journal) of a block
// sync (logship sync). In a sync journal an entry index is a block number
// (the paper's HEAD = {task, block number}: the task is the session's), so
// the server accepts what it refuses in a journal: indexes that skip
// blocks (unchanged ones) and several pieces of one block with the same
// index (sub-ranges written or discarded, in any order inside the block).
// docs/protocol.md section 7.1 has the rules.
const SyncJournalPrefix = "logship-sync "

// IsSyncJournal reports whether the journal identity id is a sync's.
func IsSyncJournal(id string) bool { return strings.HasPrefix(id, SyncJournalPrefix) }

// Digests asks for digests of nodes of the image's digest tree. Nodes are
// ranges of node indexes at Level, in order. Without Compare the reply is
// the digests of every node's descendants at level Down (≤ Level; Down =
// Level gives the nodes' own digests), as u64 little-endian, node after
// node. With Compare (the client's digests of the same nodes, u64
// little-endian, in order) Down must be below Level, and the reply is a
// bitmap of the nodes whose digests differ (bit i%8 of byte i/8 set for
// the i-th node; ceil(n/8) bytes) followed by the descendants at level
// Down of the differing nodes only. See Digests.ParseDigests.
type Digests struct {
	Tree    digest.Tree `json:"tree"`
	Level   int         `json:"level"`
	Nodes   []NodeRange `json:"nodes"`
	Compare []byte      `json:"compare,omitempty"`
	Down    int         `json:"down"`
}

// NodeRange is Count nodes from node index First; in JSON [first, count].
type NodeRange [2]int64

// First returns the first node index.
func (r NodeRange) First() int64 { return r[0] }

// Count returns the number of nodes.
func (r NodeRange) Count() int64 { return r[1] }

// Read asks for Length bytes of the image at Offset. The reply is a bitmap
// of the Granularity-sized pieces of the range that are all zeros (the
// last piece may be short; bit i%8 of byte i/8 for piece i), followed by
// the bytes of the other pieces, in order: zeros do not travel. See
// AppendRead and ParseRead.
type Read struct {
	Offset      int64 `json:"offset"`
	Length      int64 `json:"length"`
	Granularity int64 `json:"granularity"`
}

// Bounds of the block calls: the server refuses larger requests, so that
// every reply fits in one frame.
const (
	MaxReadLength  = 4 << 20 // Read.Length
	MaxDigestNodes = 1 << 18 // nodes in one Digests request
	MaxDigestReply = 4 << 20 // bytes of digests one Digests reply may need
)

// MaxJournalID bounds Open.Journal (and Position.Journal): the server
// refuses a longer identity, or one with bytes outside printable ASCII.
const MaxJournalID = 256

// Marshal encodes a request or reply body.
func Marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only fixed struct types are marshalled
	}
	return b
}

// Unmarshal decodes a body. Unknown fields are ignored, so that a newer
// peer may add fields an older one does not know.
func Unmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// ErrMalformed: a body or entry frame that does not decode.
var ErrMalformed = errors.New("control: malformed message")

// Entry frame payload (frozen): the fields of a journal entry header that
// matter, then the label, then the data.
//
//	offset size field
//	 0     8    sector       in the journal's sector units
//	 8     8    nr_sectors
//	16     8    flags        journal.Flags
//	24     4    label length
//	28     4    reserved, 0
//	32     ...  label, then data (nr_sectors * sector size bytes for a
//	            write; none for other entries)
const (
	entSector    = 0
	entNrSectors = 8
	entFlags     = 16
	entLabelLen  = 24
	entReserved  = 28
	EntryHeader  = 32
)

// AppendEntry appends the frame payload for e. A write too large for one
// frame goes as several frames with the same entry index, each a sub-range:
// pass the sub-range's Sector and NrSectors in e and its bytes in data.
func AppendEntry(b []byte, e journal.Entry, data []byte) []byte {
	var h [EntryHeader]byte
	binary.LittleEndian.PutUint64(h[entSector:], e.Sector)
	binary.LittleEndian.PutUint64(h[entNrSectors:], e.NrSectors)
	binary.LittleEndian.PutUint64(h[entFlags:], uint64(e.Flags))
	binary.LittleEndian.PutUint32(h[entLabelLen:], uint32(len(e.Label)))
	b = append(b, h[:]...)
	b = append(b, e.Label...)
	return append(b, data...)
}

// ParseEntry decodes an entry frame payload. index is the frame's entry
// index; sectorSize the task's journal sector size. The returned data
// aliases p. The entry is validated like a journal header: unknown flags,
// a payload that does not match nr_sectors, a label too long, are
// ErrMalformed.
func ParseEntry(p []byte, index int64, sectorSize uint32) (journal.Entry, []byte, error) {
	if len(p) < EntryHeader {
		return journal.Entry{}, nil, fmt.Errorf("%w: entry %d: %d-byte frame, header needs %d", ErrMalformed, index, len(p), EntryHeader)
	}
	e := journal.Entry{
		Index:      index,
		Sector:     binary.LittleEndian.Uint64(p[entSector:]),
		NrSectors:  binary.LittleEndian.Uint64(p[entNrSectors:]),
		Flags:      journal.Flags(binary.LittleEndian.Uint64(p[entFlags:])),
		SectorSize: sectorSize,
	}
	ll := int64(binary.LittleEndian.Uint32(p[entLabelLen:]))
	rest := p[EntryHeader:]
	const known = journal.FlagFlush | journal.FlagFUA | journal.FlagDiscard | journal.FlagMark | journal.FlagMetadata
	switch {
	case e.Flags&^known != 0:
		return e, nil, fmt.Errorf("%w: entry %d: unknown flags %#x", ErrMalformed, index, uint64(e.Flags))
	case binary.LittleEndian.Uint32(p[entReserved:]) != 0:
		return e, nil, fmt.Errorf("%w: entry %d: reserved bytes set", ErrMalformed, index)
	case ll > int64(len(rest)) || ll > journal.MaxSectorSize:
		return e, nil, fmt.Errorf("%w: entry %d: label of %d bytes", ErrMalformed, index, ll)
	case ll > 0 && !e.IsMark():
		return e, nil, fmt.Errorf("%w: entry %d: label on a %s entry", ErrMalformed, index, e.Flags)
	}
	e.Label = string(rest[:ll])
	data := rest[ll:]
	if e.NrSectors > 1<<40 || e.Sector > 1<<52 {
		return e, nil, fmt.Errorf("%w: entry %d: sector range %d+%d", ErrMalformed, index, e.Sector, e.NrSectors)
	}
	if int64(len(data)) != e.PayloadLen() {
		return e, nil, fmt.Errorf("%w: entry %d: %s of %d sectors carries %d data bytes, want %d",
			ErrMalformed, index, e.Flags, e.NrSectors, len(data), e.PayloadLen())
	}
	return e, data, nil
}
