package replica

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// FuzzDecodeWindow feeds windows of arbitrary frames to the checks: they
// never panic, and a window they accept is contiguous from the expected
// entry, inside the image, with barriers only at its end.
func FuzzDecodeWindow(f *testing.F) {
	hdr := func(e journal.Entry, data []byte) []byte { return control.AppendEntry(nil, e, data) }
	f.Add(uint64(3), hdr(journal.Entry{Sector: 1, NrSectors: 1}, make([]byte, 512)), uint64(3), hdr(journal.Entry{Flags: journal.FlagFlush}, nil), uint64(4))
	f.Add(uint64(3), hdr(journal.Entry{Sector: 0, NrSectors: 2}, make([]byte, 1024)), uint64(3), hdr(journal.Entry{Sector: 2, NrSectors: 1}, make([]byte, 512)), uint64(3))
	f.Add(uint64(3), hdr(journal.Entry{Flags: journal.FlagMark, Label: "m"}, nil), uint64(4), hdr(journal.Entry{Sector: 9, NrSectors: 1, Flags: journal.FlagDiscard}, nil), uint64(5))
	f.Fuzz(func(t *testing.T, e1 uint64, p1 []byte, e2 uint64, p2 []byte, e3 uint64) {
		exp := expect{pos: control.Position{NextEntry: 3, NextWindow: 1}, sectorSize: 512, size: 16 << 10}
		frames := []parallel.Frame{{Entry: e1, Payload: p1}, {Entry: e2, Payload: p2}, {Entry: e3, Payload: p1}}
		w, err := decodeWindow(1, frames, exp)
		if err != nil {
			return
		}
		if w.first != 3 || w.entries[0].Index != 3 {
			t.Fatalf("accepted a window starting at entry %d", w.entries[0].Index)
		}
		for i, e := range w.entries {
			if i > 0 && e.Index != w.entries[i-1].Index && e.Index != w.entries[i-1].Index+1 {
				t.Fatalf("accepted entry %d after %d", e.Index, w.entries[i-1].Index)
			}
			if i > 0 && e.Index != w.entries[i-1].Index && w.entries[i-1].IsBarrier() {
				t.Fatalf("accepted a barrier (entry %d) inside the window", w.entries[i-1].Index)
			}
			if e.NrSectors > 0 && e.End() > exp.size {
				t.Fatalf("accepted entry %d ending at %d, past the image", e.Index, e.End())
			}
		}
	})
}

// FuzzWindowMark: a label parses only if it is exactly what String writes.
func FuzzWindowMark(f *testing.F) {
	f.Add(windowMark{seq: 7, first: 10, next: 20, n: 11, sum: 0xdeadbeef}.String())
	f.Add(windowMark{seq: 7, first: 10, next: 20, n: 11, sum: 0xdeadbeef, v1: true}.String())
	f.Add("logship-window seq=1 first=0 next=0 n=0 synced=-1 xxh=0000000000000000")
	f.Add("logship-window seq=1 first=0 next=0 n=0 xxh=0000000000000000")
	f.Add("logship-window seq=1 first=+0 next=0 n=0 xxh=0")
	f.Fuzz(func(t *testing.T, label string) {
		m, ok := parseWindowMark(label)
		if ok && m.String() != label {
			t.Fatalf("%q parsed as %+v, which prints as %q", label, m, m.String())
		}
	})
}

// FuzzParseGrants: a grants file never panics the parser; in a file it
// accepts, every identity line grants its literal task names.
func FuzzParseGrants(f *testing.F) {
	f.Add("insecure *\n")
	f.Add("# c\npsk:a db-* web\n* shared\n")
	f.Add("cert:sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef mail [a-\n")
	f.Fuzz(func(t *testing.T, file string) {
		g, err := ParseGrants(strings.NewReader(file), "fuzz")
		if err != nil {
			return
		}
		for _, line := range strings.Split(file, "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			for _, p := range fields[1:] {
				if !strings.ContainsAny(p, "*?[\\") && !g.Allows(fields[0], p) {
					t.Fatalf("%q: %s not granted %q", file, fields[0], p)
				}
			}
		}
	})
}

// FuzzMarkAt: any sector parses as a window mark's header only when its
// label is one String writes.
func FuzzMarkAt(f *testing.F) {
	var h [proofStep]byte
	binary.LittleEndian.PutUint64(h[16:], uint64(journal.FlagMark))
	l := windowMark{seq: 3, first: 1, next: 9, n: 4, synced: 12, sum: 7}.String()
	binary.LittleEndian.PutUint64(h[24:], uint64(len(l)))
	copy(h[32:], l)
	f.Add(h[:])
	f.Add(make([]byte, proofStep))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < proofStep {
			b = append(b, make([]byte, proofStep-len(b))...)
		}
		m, ok := markAt(b[:proofStep])
		if ok {
			if _, ok2 := parseWindowMark(m.String()); !ok2 {
				t.Fatalf("markAt accepted %+v, which does not parse back", m)
			}
		}
	})
}
