package source

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/logship/logship/journal"
)

// IDPrefix is how many bytes of entries, after the superblock, JournalID
// hashes.
const IDPrefix = 64 << 10

// idScheme prefixes every identity, naming how it was computed.
const idScheme = "xxh64:"

// JournalID returns the identity of a journal whose sector size is
// sectorSize and whose first entries are prefix: the journal's bytes
// [S, S+min(IDPrefix, E-S)) where E is the end of its last counted entry
// (see the package documentation). A longer prefix is cut to IDPrefix.
func JournalID(sectorSize uint32, prefix []byte) string {
	if len(prefix) > IDPrefix {
		prefix = prefix[:IDPrefix]
	}
	h := xxhash.New()
	var ss [4]byte
	binary.LittleEndian.PutUint32(ss[:], sectorSize)
	h.Write(ss[:])
	h.Write(prefix)
	return idScheme + fmt.Sprintf("%016x", h.Sum64())
}

// ValidJournalID reports whether id has the form JournalID returns.
func ValidJournalID(id string) bool {
	hex, ok := strings.CutPrefix(id, idScheme)
	if !ok || len(hex) != 16 {
		return false
	}
	_, err := strconv.ParseUint(hex, 16, 64)
	return err == nil
}

// IdentifyReader returns the identity of the journal at rest in r (size
// bytes, or -1 if unknown). It walks headers only, up to IDPrefix bytes of
// entries.
func IdentifyReader(r io.ReaderAt, size int64) (string, journal.Super, error) {
	jr, err := journal.NewReader(r, size)
	if err != nil {
		return "", journal.Super{}, err
	}
	ss := int64(jr.SectorSize())
	end := ss
	for end < ss+IDPrefix {
		e, err := jr.NextHeader()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", jr.Super(), err
		}
		end = e.NextOffset()
		if isLogMark(e) {
			break // a rotated log: its identity ends at its rotation mark
		}
	}
	id, err := identify(r, jr.Super().SectorSize, end)
	return id, jr.Super(), err
}

// identifyTail returns the identity of a live journal: it waits until the
// entries the superblock counts (and that have settled) reach IDPrefix
// bytes, or the journal ends with its end mark.
func identifyTail(ctx context.Context, r io.ReaderAt, o journal.TailOptions) (string, journal.Super, error) {
	t := journal.NewTailer(r, o)
	var end int64
	for {
		e, err := t.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			s, _ := t.Super()
			return "", s, err
		}
		end = e.NextOffset()
		if end >= int64(e.SectorSize)+IDPrefix || isLogMark(e) {
			break
		}
	}
	s, ok := t.Super()
	if !ok {
		return "", s, errors.New("source: journal ended before its superblock was readable")
	}
	if end == 0 {
		end = int64(s.SectorSize)
	}
	id, err := identify(r, s.SectorSize, end)
	return id, s, err
}

// identify hashes the journal bytes [S, min(end, S+IDPrefix)).
func identify(r io.ReaderAt, sectorSize uint32, end int64) (string, error) {
	ss := int64(sectorSize)
	n := min(end, ss+IDPrefix) - ss
	buf := make([]byte, max(n, 0))
	if n > 0 {
		if m, err := r.ReadAt(buf, ss); int64(m) < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("source: reading the journal's first %d bytes of entries for its identity: %w", n, err)
		}
	}
	return JournalID(sectorSize, buf), nil
}
