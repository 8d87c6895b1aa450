package journal

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// DefaultReadAhead is how many bytes a Reader reads at once when it walks
// entries in order. It bounds the Reader's memory, whatever the journal's size.
const DefaultReadAhead = 1 << 20

// Reader walks the entries of a journal at rest, in order. It holds one
// read-ahead buffer and nothing else, so its memory does not grow with the
// journal. A Reader is not safe for concurrent use.
type Reader struct {
	r     io.ReaderAt
	size  int64 // bytes in the journal, or -1 when unknown
	super Super

	next int64 // index of the entry Next returns
	off  int64 // byte offset of that entry's header

	buf    []byte // read-ahead: journal bytes [bufOff, bufOff+bufLen)
	bufOff int64
	bufLen int
	hdr    []byte // one sector, for header reads outside buf

	err error // sticky: once set, every call returns it
}

// NewReader reads the superblock of the journal in r and returns a Reader
// positioned at entry 0. size is the journal's length in bytes, or -1 if
// unknown; when known, an entry whose payload runs past it is reported as
// io.ErrUnexpectedEOF by Next rather than later by ReadPayload, and a
// superblock that counts more entries than size can hold (every entry
// takes at least one sector after the superblock's) is ErrFormat.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	return newReader(r, size, false)
}

// NewReaderClamped is NewReader for a journal whose superblock may count
// entries that its data does not hold: a log whose writer rewrites the
// superblock before the entries it counts are durable, read after a
// crash. A count larger than size can hold (or 2^63 or more) is clamped
// to what it can hold instead of refused; Next then reports the first
// entry that is not there. size must be known.
func NewReaderClamped(r io.ReaderAt, size int64) (*Reader, error) {
	if size < 0 {
		return nil, errors.New("journal: NewReaderClamped needs the journal's size")
	}
	return newReader(r, size, true)
}

func newReader(r io.ReaderAt, size int64, clamp bool) (*Reader, error) {
	sb := make([]byte, MinSectorSize)
	n, err := r.ReadAt(sb, 0)
	if n < superLen {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: only %d bytes", ErrFormat, n)
		}
		return nil, fmt.Errorf("journal: reading superblock: %w", err)
	}
	s, err := parseSuper(sb[:n])
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		// Entries start after the superblock's sector, one sector each at
		// least.
		fit := uint64(max(size-int64(s.SectorSize), 0) / int64(s.SectorSize))
		switch {
		case s.NrEntries <= fit:
		case clamp:
			s.NrEntries = fit
		default:
			return nil, fmt.Errorf("%w: nr_entries %d, but %d bytes hold at most %d entries of %d-byte sectors",
				ErrFormat, s.NrEntries, size, fit, s.SectorSize)
		}
	}
	if s.NrEntries > math.MaxInt64 {
		return nil, fmt.Errorf("%w: nr_entries %d is 2^63 or more", ErrFormat, s.NrEntries)
	}
	return &Reader{
		r:     r,
		size:  size,
		super: s,
		off:   int64(s.SectorSize),
		buf:   make([]byte, readAhead(size, int(s.SectorSize))),
		hdr:   make([]byte, s.SectorSize),
	}, nil
}

// Super returns the journal's superblock.
func (r *Reader) Super() Super { return r.super }

// SectorSize is the journal's sector size in bytes.
func (r *Reader) SectorSize() int { return int(r.super.SectorSize) }

// Len is the number of entries the journal holds.
func (r *Reader) Len() int64 { return int64(r.super.NrEntries) }

// Index is the index of the entry the next call to Next returns.
func (r *Reader) Index() int64 { return r.next }

// Offset is the byte offset of the header the next call to Next reads.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next entry. It returns io.EOF, unwrapped, after the
// journal's last entry. Other errors are wrapped in an *EntryError and are
// sticky.
func (r *Reader) Next() (Entry, error) { return r.advance(true) }

// NextHeader is Next for a walk that reads no payloads: it reads only the
// entry's header, not ahead.
func (r *Reader) NextHeader() (Entry, error) { return r.advance(false) }

// advance reads the entry at the current position and moves past it.
func (r *Reader) advance(readAhead bool) (Entry, error) {
	if r.err != nil {
		return Entry{}, r.err
	}
	if r.next >= r.Len() {
		return Entry{}, io.EOF
	}
	e, err := r.readEntry(r.next, r.off, readAhead)
	if err != nil {
		r.err = err
		return Entry{}, err
	}
	r.next++
	r.off = e.NextOffset()
	return e, nil
}

// All iterates over the remaining entries. It stops at the first error,
// which it yields with a zero Entry; io.EOF is not yielded.
func (r *Reader) All() func(yield func(Entry, error) bool) {
	return func(yield func(Entry, error) bool) {
		for {
			e, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// readEntry reads and validates the header at off. With readAhead it fills
// the read-ahead buffer from off; without, it reads only the header (for
// seeking, where payloads are skipped).
func (r *Reader) readEntry(index, off int64, readAhead bool) (Entry, error) {
	ss := int64(r.super.SectorSize)
	fail := func(err error) (Entry, error) {
		return Entry{}, &EntryError{Index: index, Offset: off, Err: err}
	}
	var h []byte
	switch {
	case off >= r.bufOff && off+ss <= r.bufOff+int64(r.bufLen):
		h = r.buf[off-r.bufOff:][:ss]
	case readAhead:
		r.bufOff, r.bufLen = off, 0
		n, err := r.r.ReadAt(r.buf, off)
		r.bufLen = n
		if int64(n) < ss {
			return fail(shortRead(err))
		}
		h = r.buf[:ss]
	default:
		n, err := r.r.ReadAt(r.hdr, off)
		if n < len(r.hdr) {
			return fail(shortRead(err))
		}
		h = r.hdr
	}
	e, err := parseEntry(h, index, off, r.super.SectorSize)
	if err != nil {
		return Entry{}, err
	}
	if r.size >= 0 && e.NextOffset() > r.size {
		return fail(fmt.Errorf("%w: %d-byte payload ends at %d, past the journal's end at %d",
			io.ErrUnexpectedEOF, e.PayloadLen(), e.NextOffset(), r.size))
	}
	return e, nil
}

// shortRead turns the error of a short ReadAt into the error a caller sees:
// the end of input inside a structure is io.ErrUnexpectedEOF.
func shortRead(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadPayload reads e's payload into p, which must hold e.PayloadLen() bytes.
// e must come from this Reader.
func (r *Reader) ReadPayload(e Entry, p []byte) error {
	n := e.PayloadLen()
	if int64(len(p)) < n {
		return fmt.Errorf("journal: entry %d: buffer of %d bytes for a %d-byte payload", e.Index, len(p), n)
	}
	p = p[:n]
	off := e.PayloadOffset()
	if off >= r.bufOff && off+n <= r.bufOff+int64(r.bufLen) {
		copy(p, r.buf[off-r.bufOff:])
		return nil
	}
	m, err := r.r.ReadAt(p, off)
	if int64(m) < n {
		return &EntryError{Index: e.Index, Offset: e.Offset,
			Err: fmt.Errorf("reading %d-byte payload at %d: %w", n, off, shortRead(err))}
	}
	return nil
}

// Payload returns a reader over e's payload.
func (r *Reader) Payload(e Entry) *io.SectionReader {
	return io.NewSectionReader(r.r, e.PayloadOffset(), e.PayloadLen())
}

// SeekEntry positions the Reader so that Next returns entry index. It walks the
// headers, skipping payloads, from the current position when index is ahead
// of it and from the start otherwise. Seeking to Len() is allowed (Next then
// returns io.EOF); beyond it, ErrRange.
func (r *Reader) SeekEntry(index int64) error {
	if r.err != nil {
		return r.err
	}
	if index < 0 || index > r.Len() {
		return fmt.Errorf("%w: entry %d of %d", ErrRange, index, r.Len())
	}
	if index < r.next {
		r.next, r.off = 0, int64(r.super.SectorSize)
	}
	for r.next < index {
		if _, err := r.advance(false); err != nil {
			return err
		}
	}
	return nil
}

// SeekMark positions the Reader just after the first mark labelled label,
// searching from the start, and returns that mark. ErrNoMark when there is none.
func (r *Reader) SeekMark(label string) (Entry, error) {
	if err := r.SeekEntry(0); err != nil {
		return Entry{}, err
	}
	for r.next < r.Len() {
		e, err := r.advance(false)
		if err != nil {
			return Entry{}, err
		}
		if e.IsMark() && e.Label == label {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("%w: %q", ErrNoMark, label)
}

// readAhead sizes the read-ahead buffer: DefaultReadAhead, or less for a
// small journal of known size, in whole sectors.
func readAhead(size int64, sectorSize int) int {
	n := int64(DefaultReadAhead)
	if size >= 0 && size < n {
		n = size
	}
	n = (n + int64(sectorSize) - 1) / int64(sectorSize) * int64(sectorSize)
	return max(int(n), 2*sectorSize)
}
