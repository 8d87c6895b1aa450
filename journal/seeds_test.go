package journal_test

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
)

var writeSeeds = flag.Bool("write-seeds", false, "cut testdata/fuzz/FuzzReader/kernel-* from the kernel captures")

// kernelSeedPicks chooses the entries of a kernel seed: one of each kind
// the kernel writes, with the smallest payload found, in journal order.
var kernelSeedPicks = []struct {
	name string
	ok   func(journal.Entry) bool
}{
	{"mark", journal.Entry.IsMark},
	{"flush", func(e journal.Entry) bool { return e.Flags&journal.FlagFlush != 0 && e.NrSectors == 0 }},
	{"fua", func(e journal.Entry) bool { return e.Flags&journal.FlagFUA != 0 && e.Flags&journal.FlagMetadata == 0 }},
	{"fua|metadata", func(e journal.Entry) bool { return e.Flags == journal.FlagFUA|journal.FlagMetadata }},
	{"metadata", func(e journal.Entry) bool { return e.Flags == journal.FlagMetadata }},
	{"discard", journal.Entry.IsDiscard},
	{"write", func(e journal.Entry) bool { return e.Flags == 0 && e.NrSectors > 0 }},
}

// cutKernelSeed returns a small journal made of raw bytes of the capture
// at path: its superblock (kernel padding bytes included) with nr_entries
// set, then the header and payload bytes of the picked entries, unchanged.
func cutKernelSeed(t *testing.T, path string) []byte {
	t.Helper()
	jf, err := devio.OpenJournal(path, devio.JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	r, err := journal.NewReader(jf, jf.Size())
	if err != nil {
		t.Fatal(err)
	}
	best := make([]*journal.Entry, len(kernelSeedPicks))
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range kernelSeedPicks {
			if p.ok(e) && (best[i] == nil || e.PayloadLen() < best[i].PayloadLen()) {
				best[i] = &e
			}
		}
	}
	ss := int64(r.SectorSize())
	out := make([]byte, ss)
	if _, err := jf.ReadAt(out, 0); err != nil {
		t.Fatal(err)
	}
	var picked []journal.Entry
	for i, e := range best {
		if e == nil {
			t.Logf("%s: no %s entry", path, kernelSeedPicks[i].name)
			continue
		}
		picked = append(picked, *e)
	}
	// Journal order, as the kernel wrote them.
	for i := 1; i < len(picked); i++ {
		for j := i; j > 0 && picked[j].Index < picked[j-1].Index; j-- {
			picked[j], picked[j-1] = picked[j-1], picked[j]
		}
	}
	for _, e := range picked {
		b := make([]byte, e.NextOffset()-e.Offset)
		if _, err := jf.ReadAt(b, e.Offset); err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	binary.LittleEndian.PutUint64(out[16:], uint64(len(picked))) // nr_entries
	return out
}

// TestKernelSeeds cuts a small journal from each kernel capture and checks
// that it parses, entry for entry; with -write-seeds it writes them to the
// FuzzReader corpus (testdata/fuzz/FuzzReader/kernel-*), where the seed run
// of FuzzReader (go test, make test) reads them.
func TestKernelSeeds(t *testing.T) {
	t.Parallel()
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			seed := cutKernelSeed(t, filepath.Join("testdata", "kernel", fmt.Sprintf("fsync-marks-%d.log.zst", ss)))
			r, err := journal.NewReader(bytes.NewReader(seed), int64(len(seed)))
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[journal.Flags]bool{}
			for e, err := range r.All() {
				if err != nil {
					t.Fatal(err)
				}
				kinds[e.Flags] = true
			}
			if r.Len() < 5 || !kinds[journal.FlagMark] || !kinds[journal.FlagFlush] || !kinds[journal.FlagDiscard] || !kinds[0] {
				t.Errorf("seed has %d entries of kinds %v: want at least marks, flushes, discards and writes", r.Len(), kinds)
			}
			name := filepath.Join("testdata", "fuzz", "FuzzReader", fmt.Sprintf("kernel-%d", ss))
			corpus := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", seed)
			if *writeSeeds {
				if err := os.WriteFile(name, corpus, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s: %d entries, %d bytes", name, r.Len(), len(seed))
				return
			}
			if got, err := os.ReadFile(name); err != nil || !bytes.Equal(got, corpus) {
				t.Errorf("%s is not the seed cut from the capture (err %v): regenerate with go test ./journal -run TestKernelSeeds -write-seeds", name, err)
			}
		})
	}
}
