package netbench_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/logship/logship/bench/netbench"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// kernelShape is the committed kernel journal the fs workload repeats.
var kernelShape = filepath.Join("..", "..", "journal", "testdata", "kernel", "fsync-marks-512.log.zst")

// readEntries reads a journal file's entries, with its bytes.
func readEntries(t *testing.T, path string) ([]journal.Entry, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := journal.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var es []journal.Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return es, b
		}
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
}

func TestWorkload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		wl                netbench.Workload
		writes, flushes   int
		writeLen, device  int64
		sequential        bool
		fromShape, marked bool
	}{
		{wl: netbench.Workload{Kind: "seq", Size: 40 << 20, Device: 16 << 20, Compressible: 0.5}, writes: 40, flushes: 3, writeLen: 1 << 20, device: 16 << 20, sequential: true},
		{wl: netbench.Workload{Kind: "rand4k", Size: 1 << 20, Compressible: 0.25}, writes: 256, flushes: 5, writeLen: 4096, device: 1 << 20},
		{wl: netbench.Workload{Kind: "fs", Size: 24 << 20, Shape: kernelShape}, fromShape: true, marked: true},
	} {
		t.Run(tc.wl.Kind, func(t *testing.T) {
			g, err := tc.wl.Generate(filepath.Join(dir, tc.wl.Kind+".log"))
			if err != nil {
				t.Fatal(err)
			}
			es, j := readEntries(t, g.Path)
			var writes, flushes, marks int
			var bytes int64
			next := int64(0)
			for _, e := range es {
				switch {
				case e.IsWrite():
					writes++
					bytes += e.Len()
					if tc.writeLen > 0 && e.Len() != tc.writeLen {
						t.Fatalf("entry %d writes %d bytes, want %d", e.Index, e.Len(), tc.writeLen)
					}
					if tc.sequential && e.Start() != next%g.Device {
						t.Fatalf("entry %d writes at %d, want %d", e.Index, e.Start(), next%g.Device)
					}
					next = e.Start() + e.Len()
				case e.Flags&journal.FlagFlush != 0:
					flushes++
				case e.IsMark():
					marks++
				}
				if e.End() > g.Device {
					t.Fatalf("entry %d ends at %d, past the %d-byte device", e.Index, e.End(), g.Device)
				}
			}
			if int64(len(es)) != g.Entries || bytes != g.Bytes || bytes < tc.wl.Size {
				t.Errorf("%d entries, %d bytes written; Generate says %d, %d (size %d)", len(es), bytes, g.Entries, g.Bytes, tc.wl.Size)
			}
			if tc.writes > 0 && (writes != tc.writes || flushes != tc.flushes) {
				t.Errorf("%d writes, %d flushes; want %d, %d", writes, flushes, tc.writes, tc.flushes)
			}
			if tc.device > 0 && g.Device != tc.device {
				t.Errorf("device %d, want %d", g.Device, tc.device)
			}
			if tc.marked && marks == 0 {
				t.Error("no marks from the kernel journal's shape")
			}
			if tc.wl.Compressible > 0 {
				// Every 4 KiB block ends with its share of zeros.
				z := int(tc.wl.Compressible * 4096)
				r, _ := journal.NewReader(bytesReader(j), int64(len(j)))
				p := make([]byte, tc.writeLen)
				for _, e := range es[:3] {
					if err := r.ReadPayload(e, p); err != nil {
						t.Fatal(err)
					}
					for b := 0; b < len(p); b += 4096 {
						blk := p[b : b+4096]
						if !digest.IsZero(blk[4096-z:]) || digest.IsZero(blk[:4096-z]) {
							t.Fatalf("entry %d, block %d: not %d random bytes then %d zeros", e.Index, b/4096, 4096-z, z)
						}
					}
				}
			}
			if tc.fromShape {
				checkShape(t, es, j)
			}
			img := make([]byte, g.Device)
			if err := fixtures.ReplaySequential(j, img, -1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkShape: the fs workload is the shape's entries again and again (and
// a FLUSH to close the last window), and repetition k's payloads are the shape's with k XORed into the first 8
// bytes of every sector.
func checkShape(t *testing.T, es []journal.Entry, j []byte) {
	t.Helper()
	b, err := netbench.ReadJournal(kernelShape)
	if err != nil {
		t.Fatal(err)
	}
	r, err := journal.NewReader(bytesReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var shape []journal.Entry
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		if !(e.IsMark() && e.Label == "dm-log-writes-end") {
			shape = append(shape, e)
		}
	}
	if len(es) <= len(shape) {
		t.Fatalf("%d entries: not even one repetition of the shape's %d", len(es), len(shape))
	}
	gr, _ := journal.NewReader(bytesReader(j), int64(len(j)))
	if last := es[len(es)-1]; last.Flags != journal.FlagFlush {
		t.Fatalf("the last entry is %v, not the closing FLUSH", last)
	}
	for i, e := range es[:len(es)-1] {
		s := shape[i%len(shape)]
		if e.Sector != s.Sector || e.NrSectors != s.NrSectors || e.Flags != s.Flags || e.Label != s.Label {
			t.Fatalf("entry %d is %v, the shape's entry %d is %v", i, e, s.Index, s)
		}
		if !e.IsWrite() || i/len(shape) != 1 {
			continue
		}
		want := make([]byte, s.PayloadLen())
		got := make([]byte, e.PayloadLen())
		r.ReadPayload(s, want)
		gr.ReadPayload(e, got)
		want[0] ^= 1 // repetition 1: XOR 1 into the first little-endian u64 of each sector
		if !bytes.Equal(got[:8], want[:8]) || !bytes.Equal(got[8:e.SectorSize], want[8:e.SectorSize]) {
			t.Fatalf("entry %d (repetition 1 of %d): payload is not the shape's with 1 XORed in", i, s.Index)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func TestWorkloadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, wl := range []netbench.Workload{
		{Kind: "seq"},
		{Kind: "zipf", Size: 1 << 20},
		{Kind: "seq", Size: 1 << 20, Compressible: 1.5},
		{Kind: "fs", Size: 1 << 20},
	} {
		if _, err := wl.Generate(filepath.Join(dir, "j.log")); !errors.Is(err, netbench.ErrBadWorkload) {
			t.Errorf("%+v: %v, want ErrBadWorkload", wl, err)
		}
	}
}
