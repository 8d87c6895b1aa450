package barrier_test

import (
	"fmt"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/journal"
)

func ExampleCoalesce() {
	const s = 512
	entries := []journal.Entry{
		{Index: 0, Sector: 0, NrSectors: 8, SectorSize: s},                              // write 4 KiB at 0
		{Index: 1, Sector: 2, NrSectors: 2, SectorSize: s},                              // overwrite 1 KiB inside it
		{Index: 2, Sector: 16, NrSectors: 8, Flags: journal.FlagDiscard, SectorSize: s}, // discard 4 KiB at 8 KiB
		{Index: 3, Sector: 20, NrSectors: 2, SectorSize: s},                             // write inside the discard
		{Index: 4, Sector: 8, NrSectors: 8, Flags: journal.FlagDiscard, SectorSize: s},  // discard right before it
		{Index: 5, Flags: journal.FlagFlush, SectorSize: s},                             // nothing to apply
	}
	for _, x := range barrier.Coalesce(entries) {
		if x.Discard {
			fmt.Printf("discard [%d, %d)\n", x.Start, x.End())
			continue
		}
		fmt.Printf("write   [%d, %d):", x.Start, x.End())
		for _, p := range x.Parts {
			fmt.Printf(" entry %d [%d, %d)", p.Entry, p.Off, p.Off+p.Len)
		}
		fmt.Println()
	}
	// Output:
	// write   [0, 4096): entry 0 [0, 1024) entry 1 [0, 1024) entry 0 [2048, 4096)
	// discard [4096, 10240)
	// write   [10240, 11264): entry 3 [0, 1024)
	// discard [11264, 12288)
}

func ExampleSplitter() {
	const s = 512
	entries := []journal.Entry{
		{Index: 0, Sector: 0, NrSectors: 2, SectorSize: s},
		{Index: 1, Sector: 8, NrSectors: 2, SectorSize: s},
		{Index: 2, Flags: journal.FlagFlush, SectorSize: s},
		{Index: 3, Sector: 0, NrSectors: 1, Flags: journal.FlagFUA | journal.FlagMetadata, SectorSize: s},
		{Index: 4, Sector: 16, NrSectors: 8, SectorSize: s},
		{Index: 5, Sector: 24, NrSectors: 8, SectorSize: s}, // does not fit in 6 KiB: closes the window before it
		{Index: 6, Flags: journal.FlagMark, Label: "snap", SectorSize: s},
		{Index: 7, Sector: 32, NrSectors: 8, SectorSize: s},
	}
	sp := barrier.NewSplitter(barrier.Limits{MaxBytes: 6 << 10})
	for _, e := range entries {
		for _, w := range sp.Add(e) {
			fmt.Println(w)
		}
	}
	if w := sp.Close(); w != nil {
		fmt.Println(w)
	}
	// Output:
	// window 0: entries 0-2, 2048 bytes, closed by FLUSH
	// window 1: entries 3-3, 512 bytes, closed by FUA
	// window 2: entries 4-4, 4096 bytes, closed by CAP
	// window 3: entries 5-6, 4096 bytes, closed by MARK
	// window 4: entries 7-7, 4096 bytes, closed by END
}
