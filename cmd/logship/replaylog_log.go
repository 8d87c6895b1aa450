package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"syscall"

	"github.com/logship/logship/devio"
)

// replay-log's view of a journal (xfstests src/log-writes/log-writes.c):
// its positions, its test of a well-formed entry, its messages. Package
// journal checks more (unknown flags, mark lengths, payloads past the end),
// so replay-log mode reads the raw headers itself, at the offsets that
// journal/doc.go documents.

// Byte offsets in the superblock and in an entry header.
const (
	rlSuperMagic      = 0
	rlSuperVersion    = 8
	rlSuperNrEntries  = 16
	rlSuperSectorSize = 24
	rlSuperLen        = 32 // sizeof(struct log_write_super), with its padding: replay-log reads this much

	rlEntrySector   = 0
	rlEntryNr       = 8
	rlEntryFlags    = 16
	rlEntryDataLen  = 24
	rlEntryData     = 32 // the mark label; must be zero for any entry but a bare MARK
	rlEntryShortLen = 40 // sizeof(struct log_write_entry): what --start-entry's seek reads

	rlMagic   = 0x6a736677736872
	rlVersion = 1
)

// Flag bits.
const (
	rlFlush    = 1 << 0
	rlFUA      = 1 << 1
	rlDiscard  = 1 << 2
	rlMark     = 1 << 3
	rlMetadata = 1 << 4
)

// Discards: replay-log hands BLKDISCARD at most rlMaxDiscardChunk bytes at a
// time; once the target has refused one, it writes zeros instead, but skips
// (silently, unless -v) any piece longer than rlMaxZero.
const (
	rlMaxDiscardChunk = 1 << 30
	rlMaxZero         = 128 << 20
	rlCopyChunk       = 4 << 20 // our own: the most payload held at once
)

// rlMaxSectorSize bounds the sector sizes we accept; replay-log accepts any
// value and misbehaves below rlEntryShortLen (docs/xfstests.md).
const rlMaxSectorSize = 1 << 20

// errRLFailed is a failure whose message is printed already.
var errRLFailed = errors.New("replay-log: failed")

// rlLog is an open journal with replay-log's cursor: cur is the index of the
// next entry (cur_entry), pos the byte offset of its header (cur_pos).
type rlLog struct {
	f      *devio.Journal
	size   int64
	target *os.File // nil without --replay

	ss  uint64 // sectorsize
	nr  uint64 // nr_entries
	cur uint64
	pos int64

	verbose                     int
	ignoreDiscard, discardNoSup bool
	startSector, endSector      uint64

	hdr    []byte // one sector
	buf    []byte // payload copy buffer
	out    *bufio.Writer
	stdout io.Writer // unbuffered, for the fsck command
	stderr io.Writer
}

// rlEntry is a raw entry header.
type rlEntry struct {
	sector, nr, flags, dataLen uint64
	data                       []byte // header bytes from offset 32 on (the label of a mark)
}

// errnoOf is the errno in err, 0 if none (a short read sets none).
func errnoOf(err error) int {
	var en syscall.Errno
	if errors.As(err, &en) {
		return int(en)
	}
	return 0
}

// rlOpen is log_open: open the journal (and the target, write-only, never
// created), read and check the superblock. Errors print replay-log's
// message and give exit status 1.
func rlOpen(logPath, targetPath string, haveTarget bool, out *bufio.Writer, stdout, stderr io.Writer) (*rlLog, error) {
	l := &rlLog{out: out, stdout: stdout, stderr: stderr}
	var err error
	if l.f, err = devio.OpenJournal(logPath, devio.JournalOptions{}); err != nil {
		fmt.Fprintf(stderr, "Couldn't open log %s: %d\n", logPath, errnoOf(err))
		return nil, rlExit(1)
	}
	if haveTarget {
		if l.target, err = os.OpenFile(targetPath, os.O_WRONLY, 0); err != nil {
			fmt.Fprintf(stderr, "Couldn't open replay file %s: %d\n", targetPath, errnoOf(err))
			l.close()
			return nil, rlExit(1)
		}
	}
	fail := func(format string, args ...any) (*rlLog, error) {
		fmt.Fprintf(stderr, format, args...)
		l.close()
		return nil, rlExit(1)
	}
	l.size = l.f.Size()
	sb := make([]byte, rlSuperLen)
	if n, err := l.f.ReadAt(sb, 0); n < len(sb) {
		return fail("Error reading super: %d\n", errnoOf(err))
	}
	if binary.LittleEndian.Uint64(sb[rlSuperMagic:]) != rlMagic {
		return fail("Magic doesn't match\n")
	}
	if v := binary.LittleEndian.Uint64(sb[rlSuperVersion:]); v != rlVersion {
		return fail("Version mismatch, wanted %d, have %d\n", rlVersion, int32(v))
	}
	l.ss = uint64(binary.LittleEndian.Uint32(sb[rlSuperSectorSize:]))
	l.nr = binary.LittleEndian.Uint64(sb[rlSuperNrEntries:])
	if l.ss < rlEntryShortLen || l.ss > rlMaxSectorSize {
		// replay-log divides by it, reads headers shorter than a header
		// or allocates it whatever it is: we refuse.
		return fail("Unsupported sectorsize %d (logship replay-log takes %d to %d)\n", l.ss, rlEntryShortLen, rlMaxSectorSize)
	}
	l.pos = int64(l.ss)
	l.hdr = make([]byte, l.ss)
	return l, nil
}

func (l *rlLog) close() {
	if l.target != nil {
		l.target.Close()
	}
	if l.f != nil {
		l.f.Close()
	}
}

// sector is a byte position in sectors, as replay-log prints it.
func (l *rlLog) sector(pos int64) uint64 { return uint64(pos) / l.ss }

// readHeader reads n bytes of header at pos and applies log_entry_valid:
// flags and nr_sectors both zero, or a non-zero byte 32 in any entry whose
// flags are not exactly MARK, is malformed.
func (l *rlLog) readHeader(n int) (rlEntry, error) {
	got, err := l.f.ReadAt(l.hdr[:n], l.pos)
	if got < n {
		fmt.Fprintf(l.stderr, "Error reading entry: %d\n", errnoOf(err))
		return rlEntry{}, errRLFailed
	}
	h := l.hdr[:n]
	e := rlEntry{
		sector:  binary.LittleEndian.Uint64(h[rlEntrySector:]),
		nr:      binary.LittleEndian.Uint64(h[rlEntryNr:]),
		flags:   binary.LittleEndian.Uint64(h[rlEntryFlags:]),
		dataLen: binary.LittleEndian.Uint64(h[rlEntryDataLen:]),
		data:    h[rlEntryData:],
	}
	if (e.flags == 0 && e.nr == 0) || (e.flags != rlMark && e.data[0] != 0) {
		fmt.Fprintf(l.stderr, "Malformed entry @%d\n", l.sector(l.pos))
		return rlEntry{}, errRLFailed
	}
	return e, nil
}

// advance moves pos by n bytes as lseek(SEEK_CUR) does: a position past
// what off_t holds fails with EINVAL.
func (l *rlLog) advance(n uint64, what string) error {
	if n > math.MaxInt64-uint64(l.pos) {
		fmt.Fprintf(l.stderr, "Error seeking in %s: %d\n", what, int(syscall.EINVAL))
		return errRLFailed
	}
	l.pos += int64(n)
	return nil
}

// seekEntry is log_seek_entry: from entry 0, skip n entries reading only
// their first 40 bytes.
func (l *rlLog) seekEntry(n uint64) error {
	if n >= l.nr {
		fmt.Fprintf(l.stderr, "Invalid entry number\n")
		return errRLFailed
	}
	l.pos, l.cur = int64(l.ss), 0
	for i := uint64(0); i < n; i++ {
		e, err := l.readHeader(rlEntryShortLen)
		if err != nil {
			return err
		}
		if l.verbose > 1 {
			fmt.Fprintf(l.out, "seek entry %d@%d: %d, size %d, flags 0x%x\n", int32(i), l.sector(l.pos), e.sector, e.nr, e.flags)
		}
		skip := l.ss
		if e.flags&rlDiscard == 0 {
			skip += e.nr * l.ss
		}
		if err := l.advance(skip, "file"); err != nil {
			return err
		}
		l.cur++
	}
	return nil
}

// seekToMark walks from the current entry to just past the first mark
// labelled mark.
func (l *rlLog) seekToMark(mark string) error {
	for {
		e, err := l.seekNextEntry()
		if err == io.EOF {
			fmt.Fprintf(l.stderr, "Couldn't find starting mark\n")
			return errRLFailed
		}
		if err != nil {
			return err
		}
		if e.stops(rlMark, mark) {
			return nil
		}
	}
}

// nextHeader reads the header of the next entry (a whole sector) and steps
// past it; io.EOF after nr_entries entries.
func (l *rlLog) nextHeader() (rlEntry, error) {
	if l.cur >= l.nr {
		return rlEntry{}, io.EOF
	}
	e, err := l.readHeader(int(l.ss))
	if err != nil {
		return e, err
	}
	l.cur++
	l.pos += int64(l.ss)
	return e, nil
}

// seekNextEntry is log_seek_next_entry: read the next header (a whole
// sector) and skip its payload. io.EOF after nr_entries entries.
func (l *rlLog) seekNextEntry() (rlEntry, error) {
	e, err := l.nextHeader()
	if err != nil {
		return e, err
	}
	if l.verbose > 1 {
		fmt.Fprintf(l.out, "seek entry %d@%d: %d, size %d, flags 0x%x(%s)\n",
			int32(l.cur-1), l.sector(l.pos), e.sector, e.nr, e.flags, rlFlagString(e.flags))
	}
	size := e.nr * l.ss
	if size == 0 || e.flags&rlDiscard != 0 {
		return e, nil
	}
	return e, l.advance(size, "log")
}

// skipped is log_should_skip: with --start-sector/--end-sector, an entry
// that lies wholly before the start or begins after the end sector is not
// written. Entries that straddle a bound are written whole; entries of no
// sectors are never skipped; discards are applied even when "skipped".
func (l *rlLog) skipped(e rlEntry) bool {
	if e.nr == 0 {
		return false
	}
	return e.sector+e.nr <= l.startSector || e.sector > l.endSector
}

// replayNextEntry is log_replay_next_entry: read the next entry and apply it
// to the target.
func (l *rlLog) replayNextEntry() (rlEntry, error) {
	e, err := l.nextHeader()
	if err != nil {
		return e, err
	}
	size := e.nr * l.ss
	skip := l.skipped(e)
	if l.verbose > 1 || (l.verbose > 0 && !skip) {
		verb := "replaying"
		if skip {
			verb = "skipping"
		}
		fmt.Fprintf(l.out, "%s %d@%d: sector %d, size %d, flags 0x%x(%s)\n",
			verb, int32(l.cur-1), l.sector(l.pos), e.sector, size, e.flags, rlFlagString(e.flags))
	}
	switch {
	case size == 0:
		return e, nil
	case e.flags&rlDiscard != 0:
		return e, l.discard(e)
	case skip:
		return e, l.advance(size, "log")
	}
	if size > math.MaxInt64 || int64(size) > l.size-l.pos {
		fmt.Fprintf(l.stderr, "Error reading data: %d\n", 0)
		return e, errRLFailed
	}
	off := e.sector * l.ss
	if off > math.MaxInt64 || e.sector > math.MaxUint64/l.ss {
		fmt.Fprintf(l.stderr, "Error writing data: %d\n", int(syscall.EINVAL))
		return e, errRLFailed
	}
	if l.buf == nil {
		l.buf = make([]byte, rlCopyChunk)
	}
	for done := uint64(0); done < size; {
		n := min(size-done, uint64(len(l.buf)))
		b := l.buf[:n]
		if got, err := l.f.ReadAt(b, l.pos+int64(done)); got < len(b) {
			fmt.Fprintf(l.stderr, "Error reading data: %d\n", errnoOf(err))
			return e, errRLFailed
		}
		if _, err := l.target.WriteAt(b, int64(off+done)); err != nil {
			fmt.Fprintf(l.stderr, "Error writing data: %d\n", errnoOf(err))
			return e, errRLFailed
		}
		done += n
	}
	l.pos += int64(size)
	return e, nil
}

// discard is log_discard: BLKDISCARD in pieces of at most 1 GiB until the
// target refuses one, zeros from then on, pieces over 128 MiB skipped.
func (l *rlLog) discard(e rlEntry) error {
	if l.ignoreDiscard {
		return nil
	}
	start, size := e.sector*l.ss, e.nr*l.ss
	for size > 0 {
		n := min(size, rlMaxDiscardChunk)
		if !l.discardNoSup {
			if err := blkDiscard(l.target, start, n); err != nil {
				if l.verbose > 0 {
					fmt.Fprintf(l.out, "replay device doesn't support discard, switching to writing zeros\n")
				}
				l.discardNoSup = true
			}
		}
		if l.discardNoSup {
			if err := l.zeroRange(start, n); err != nil {
				return err
			}
		}
		size -= n
		start += n
	}
	return nil
}

// zeroRange is zero_range: write n zeros at start, unless n is over
// rlMaxZero, which replay-log skips.
func (l *rlLog) zeroRange(start, n uint64) error {
	if n > rlMaxZero {
		if l.verbose > 0 {
			fmt.Fprintf(l.out, "discard len %d larger than max %d\n", n, uint64(rlMaxZero))
		}
		return nil
	}
	if l.buf == nil {
		l.buf = make([]byte, rlCopyChunk)
	}
	for n > 0 {
		c := min(n, uint64(len(l.buf)))
		b := l.buf[:c]
		clear(b)
		if start > math.MaxInt64 {
			fmt.Fprintf(l.stderr, "Error zeroing file: %d\n", int(syscall.EINVAL))
			return errRLFailed
		}
		if _, err := l.target.WriteAt(b, int64(start)); err != nil {
			fmt.Fprintf(l.stderr, "Error zeroing file: %d\n", errnoOf(err))
			return errRLFailed
		}
		n -= c
		start += c
	}
	return nil
}

// stops is should_stop: the entry has one of flags; and when flags holds
// MARK (an end mark was given), the entry is a mark whose label equals mark,
// compared as strncmp(mark, label, data_len+1) does. So with an end mark,
// flush and FUA entries never stop a walk.
func (e rlEntry) stops(flags uint64, mark string) bool {
	if e.flags&flags == 0 {
		return false
	}
	if flags&rlMark == 0 {
		return true
	}
	return e.flags&rlMark != 0 && cStrnEqual(mark, e.data, e.dataLen+1)
}

// cStrnEqual is strncmp(a, b, n) == 0 for a Go string a (no NUL inside) and
// the bytes b, read as zeros past their end. n wraps as in C: a data_len of
// 2^64-1 compares nothing and matches.
func cStrnEqual(a string, b []byte, n uint64) bool {
	for i := uint64(0); i < n; i++ {
		var ca, cb byte
		if i < uint64(len(a)) {
			ca = a[i]
		}
		if i < uint64(len(b)) {
			cb = b[i]
		}
		if ca != cb {
			return false
		}
		if ca == 0 {
			return true
		}
	}
	return true
}

// rlFlagString names flags as replay-log's entry_flags_to_str does: NONE,
// or FLUSH|FUA|DISCARD|MARK|METADATA, unknown bits as UNKNOWN.0x...
func rlFlagString(f uint64) string {
	var parts []string
	for i, name := range []string{"FLUSH", "FUA", "DISCARD", "MARK", "METADATA"} {
		if f&(1<<i) != 0 {
			parts = append(parts, name)
		}
	}
	if u := f &^ (rlFlush | rlFUA | rlDiscard | rlMark | rlMetadata); u != 0 {
		parts = append(parts, fmt.Sprintf("UNKNOWN.0x%x", u))
	}
	if len(parts) == 0 {
		return "NONE"
	}
	return strings.Join(parts, "|")
}
