package replica

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// frame builds the DATA frame of entry index with the given header fields
// and a payload of the right size (filled with b).
func frame(index uint64, sector, n uint64, flags journal.Flags, label string, b byte) parallel.Frame {
	e := journal.Entry{Sector: sector, NrSectors: n, Flags: flags, Label: label, SectorSize: 512}
	return parallel.Frame{Type: parallel.TypeData, Entry: index, Payload: control.AppendEntry(nil, e, bytes.Repeat([]byte{b}, int(e.PayloadLen())))}
}

func TestDecodeWindow(t *testing.T) {
	t.Parallel()
	exp := expect{pos: control.Position{Journal: "j", NextEntry: 10, NextWindow: 4}, sectorSize: 512, size: 64 << 10} // 128 sectors
	w := func(i uint64, s, n uint64) parallel.Frame { return frame(i, s, n, 0, "", 1) }
	for _, tc := range []struct {
		name   string
		seq    uint64
		frames []parallel.Frame
		err    error // nil: accepted
		next   int64
	}{
		{"writes", 4, []parallel.Frame{w(10, 0, 1), w(11, 0, 8), frame(12, 0, 0, journal.FlagFlush, "", 0)}, nil, 13},
		{"empty", 4, nil, nil, 10},
		{"split write", 4, []parallel.Frame{w(10, 8, 2), w(10, 10, 2), w(10, 12, 1), w(11, 0, 1)}, nil, 12},
		{"split FUA write at the end", 4, []parallel.Frame{w(10, 8, 2), frame(11, 0, 2, journal.FlagFUA, "", 2), frame(11, 2, 2, journal.FlagFUA, "", 2)}, nil, 12},
		{"discard to the image's end", 4, []parallel.Frame{frame(10, 120, 8, journal.FlagDiscard, "", 0)}, nil, 11},
		{"mark", 4, []parallel.Frame{w(10, 0, 1), frame(11, 0, 0, journal.FlagMark, "fsync-1", 0)}, nil, 12},
		{"last sector", 4, []parallel.Frame{w(10, 127, 1)}, nil, 11},

		{"wrong window", 5, []parallel.Frame{w(10, 0, 1)}, ErrSequence, 0},
		{"wrong first entry", 4, []parallel.Frame{w(11, 0, 1)}, ErrSequence, 0},
		{"earlier first entry", 4, []parallel.Frame{w(9, 0, 1), w(10, 0, 1)}, ErrSequence, 0},
		{"gap", 4, []parallel.Frame{w(10, 0, 1), w(12, 0, 1)}, ErrSequence, 0},
		{"backwards", 4, []parallel.Frame{w(10, 0, 1), w(11, 0, 1), w(10, 0, 1)}, ErrSequence, 0},
		{"duplicate write", 4, []parallel.Frame{w(10, 0, 1), w(10, 0, 1)}, ErrSequence, 0},
		{"duplicate flush", 4, []parallel.Frame{frame(10, 0, 0, journal.FlagFlush, "", 0), frame(10, 0, 0, journal.FlagFlush, "", 0)}, ErrSequence, 0},
		{"split pieces with other flags", 4, []parallel.Frame{w(10, 0, 1), frame(10, 1, 1, journal.FlagMetadata, "", 0)}, ErrSequence, 0},
		{"split pieces not adjacent", 4, []parallel.Frame{w(10, 0, 1), w(10, 2, 1)}, ErrSequence, 0},
		{"split discard", 4, []parallel.Frame{frame(10, 0, 1, journal.FlagDiscard, "", 0), frame(10, 1, 1, journal.FlagDiscard, "", 0)}, ErrSequence, 0},
		{"entry index overflow", 4, []parallel.Frame{w(1<<63, 0, 1)}, ErrSequence, 0},

		{"past the image", 4, []parallel.Frame{w(10, 127, 2)}, ErrBadEntry, 0},
		{"far past the image", 4, []parallel.Frame{w(10, 1<<40, 1)}, ErrBadEntry, 0},
		{"discard past the image", 4, []parallel.Frame{frame(10, 100, 29, journal.FlagDiscard, "", 0)}, ErrBadEntry, 0},
		{"flush in the middle", 4, []parallel.Frame{frame(10, 0, 0, journal.FlagFlush, "", 0), w(11, 0, 1)}, ErrBadEntry, 0},
		{"FUA in the middle", 4, []parallel.Frame{frame(10, 0, 1, journal.FlagFUA, "", 1), w(11, 0, 1)}, ErrBadEntry, 0},
		{"mark in the middle", 4, []parallel.Frame{frame(10, 0, 0, journal.FlagMark, "m", 0), w(11, 0, 1)}, ErrBadEntry, 0},
		{"long label", 4, []parallel.Frame{frame(10, 0, 0, journal.FlagMark, strings.Repeat("x", 480), 0)}, ErrBadEntry, 0},
		{"NUL in label", 4, []parallel.Frame{frame(10, 0, 0, journal.FlagMark, "a\x00b", 0)}, ErrBadEntry, 0},
		{"write of no sectors", 4, []parallel.Frame{w(10, 0, 0)}, ErrBadEntry, 0},
		{"short frame", 4, []parallel.Frame{{Entry: 10, Payload: []byte{1, 2, 3}}}, ErrBadEntry, 0},
		{"payload short of its sectors", 4, []parallel.Frame{{Entry: 10, Payload: w(10, 0, 2).Payload[:control.EntryHeader+600]}}, ErrBadEntry, 0},
		{"unknown flags", 4, []parallel.Frame{frame(10, 0, 0, 1<<7, "", 0)}, ErrBadEntry, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeWindow(tc.seq, tc.frames, exp)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.first != 10 || got.next != tc.next || len(got.entries) != len(tc.frames) {
				t.Fatalf("window %+v, want entries [10, %d) in %d pieces", got, tc.next, len(tc.frames))
			}
			if want := (control.Position{Journal: "j", NextEntry: tc.next, NextWindow: 5}); got.pos() != want {
				t.Fatalf("pos %+v, want %+v", got.pos(), want)
			}
		})
	}
}

// TestDecodeWindow4K: sectors count in the journal's sector size.
func TestDecodeWindow4K(t *testing.T) {
	t.Parallel()
	exp := expect{pos: control.Position{}, sectorSize: 4096, size: 1 << 20} // 256 sectors
	mk := func(sector, n uint64) []parallel.Frame {
		e := journal.Entry{Sector: sector, NrSectors: n, SectorSize: 4096}
		return []parallel.Frame{{Entry: 0, Payload: control.AppendEntry(nil, e, make([]byte, n*4096))}}
	}
	if _, err := decodeWindow(0, mk(255, 1), exp); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeWindow(0, mk(256, 1), exp); !errors.Is(err, ErrBadEntry) {
		t.Fatalf("sector 256 of a 256-sector image: %v", err)
	}
}
