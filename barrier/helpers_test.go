package barrier_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// Entries for table tests, in 512-byte sectors; seq numbers them.
const ss = 512

func wr(sector, n uint64) journal.Entry {
	return journal.Entry{Sector: sector, NrSectors: n, SectorSize: ss}
}
func wrf(sector, n uint64, f journal.Flags) journal.Entry {
	return journal.Entry{Sector: sector, NrSectors: n, Flags: f, SectorSize: ss}
}
func disc(sector, n uint64) journal.Entry {
	return journal.Entry{Sector: sector, NrSectors: n, Flags: journal.FlagDiscard, SectorSize: ss}
}
func flush() journal.Entry { return journal.Entry{Flags: journal.FlagFlush, SectorSize: ss} }
func mark(label string) journal.Entry {
	return journal.Entry{Flags: journal.FlagMark, Label: label, SectorSize: ss}
}

func seq(es ...journal.Entry) []journal.Entry {
	for i := range es {
		es[i].Index = int64(i)
	}
	return es
}

// journalData is a generated journal with its entries and their payloads
// (slices of the journal bytes).
type journalData struct {
	j        []byte
	entries  []journal.Entry
	payloads [][]byte
	device   int64
}

func load(t testing.TB, wl fixtures.Workload) *journalData {
	t.Helper()
	j, err := wl.Bytes()
	if err != nil {
		t.Fatalf("workload %+v: %v", wl, err)
	}
	r, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if err != nil {
		t.Fatal(err)
	}
	d := &journalData{j: j, device: wl.DeviceSize}
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		d.entries = append(d.entries, e)
		d.payloads = append(d.payloads, j[e.PayloadOffset():e.NextOffset()])
	}
	return d
}

// overlapWorkload is a journal where most writes and discards land on
// ranges touched before, on a small device.
func overlapWorkload(seed uint64, sectorSize int) fixtures.Workload {
	return fixtures.Workload{
		Seed: seed, SectorSize: sectorSize, DeviceSize: 256 << 10, Entries: 300,
		MaxWriteSectors: 4096 / sectorSize * 4,
		Discard:         0.15, Flush: 0.04, FUA: 0.04, Mark: 0.02, Metadata: 0.1, Overlap: 0.9,
	}
}

// firstDiff is the first offset where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// compareImages reports the first differing offset and the entries that
// touch it.
func compareImages(got, want []byte, es []journal.Entry) error {
	off := firstDiff(got, want)
	if off < 0 {
		return nil
	}
	var touching []string
	for i, e := range es {
		if e.Len() > 0 && !e.IsMark() && e.Start() <= int64(off) && int64(off) < e.End() {
			touching = append(touching, fmt.Sprintf("%d:%s@%d+%d", i, e.Flags, e.Start(), e.Len()))
		}
	}
	return fmt.Errorf("images differ first at byte %d (got %#x, want %#x); entries touching it: %v",
		off, got[off], want[off], touching)
}
