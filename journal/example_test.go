package journal_test

import (
	"bytes"
	"fmt"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

func ExampleReader() {
	// Record a write, a FUA write of metadata and a mark, as the kernel would.
	var buf fixtures.WriterAtBuffer
	w, _ := journal.NewWriter(&buf, 512)
	w.Write(8, make([]byte, 4096), 0)
	w.Write(0, make([]byte, 512), journal.FlagFUA|journal.FlagMetadata)
	w.Mark("mkfs")
	w.Close()

	r, err := journal.NewReader(bytes.NewReader(buf.Bytes()), int64(len(buf.Bytes())))
	if err != nil {
		fmt.Println(err)
		return
	}
	for e, err := range r.All() {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("entry %d: sector=%d sectors=%d flags=%s", e.Index, e.Sector, e.NrSectors, e.Flags)
		if e.IsMark() {
			fmt.Printf(" label=%q", e.Label)
		}
		fmt.Println()
	}
	// Output:
	// entry 0: sector=8 sectors=8 flags=WRITE
	// entry 1: sector=0 sectors=1 flags=FUA|METADATA
	// entry 2: sector=0 sectors=0 flags=MARK label="mkfs"
}
