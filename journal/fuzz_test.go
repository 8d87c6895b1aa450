package journal_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// FuzzReader parses arbitrary bytes as a journal: it must never panic, every
// error must be one of the documented kinds, and whatever parses must
// re-encode into a journal that parses to the same entries.
//
// Its seeds are small: the committed corpus testdata/fuzz/FuzzReader/kernel-*
// (a few entries of each kind cut from the kernel captures, raw bytes and
// kernel padding kept; TestKernelSeeds checks they are what the captures
// give), and two synthetic journals of a few entries added here. A large
// seed makes every execution and every minimization slow.
func FuzzReader(f *testing.F) {
	for _, tc := range []struct{ ss, entries, maxWrite int }{
		{512, 12, 4}, // 14.5 KiB
		{4096, 5, 1}, // at most 11 sectors of 4 KiB
	} {
		wl := fixtures.DefaultWorkload(5, tc.ss)
		wl.Entries, wl.DeviceSize, wl.MaxWriteSectors = tc.entries, int64(tc.ss)*64, tc.maxWrite
		j, err := wl.Bytes()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j)
	}
	f.Fuzz(func(t *testing.T, j []byte) {
		r, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
		if err != nil {
			if !errors.Is(err, journal.ErrFormat) {
				t.Fatalf("NewReader: unexpected error kind: %v", err)
			}
			return
		}
		var out fixtures.WriterAtBuffer
		w, err := journal.NewWriter(&out, r.SectorSize())
		if err != nil {
			t.Fatal(err)
		}
		var es []journal.Entry
		for e, err := range r.All() {
			if err != nil {
				var ee *journal.EntryError
				if !errors.As(err, &ee) || !(errors.Is(err, journal.ErrCorrupt) || errors.Is(err, io.ErrUnexpectedEOF)) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				break
			}
			p := make([]byte, e.PayloadLen())
			if err := r.ReadPayload(e, p); err != nil {
				t.Fatal(err)
			}
			if err := w.Append(e, p); err != nil {
				// Only a mark label filling its whole sector is readable but not writable.
				if e.IsMark() && len(e.Label) >= r.SectorSize()-33 {
					return
				}
				t.Fatalf("re-encoding entry %d (%s): %v", e.Index, e.Flags, err)
			}
			es = append(es, e)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r2, err := journal.NewReader(bytes.NewReader(out.Bytes()), int64(len(out.Bytes())))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			e, err := r2.Next()
			if err == io.EOF {
				if i != len(es) {
					t.Fatalf("re-read %d entries, want %d", i, len(es))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Sector != es[i].Sector || e.NrSectors != es[i].NrSectors || e.Flags != es[i].Flags || e.Label != es[i].Label {
				t.Fatalf("entry %d re-read as %+v, want %+v", i, e, es[i])
			}
		}
	})
}
