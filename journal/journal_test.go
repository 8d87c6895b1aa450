package journal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// readAll walks a journal and returns its entries and payloads.
func readAll(t testing.TB, j []byte, size int64) ([]journal.Entry, [][]byte, error) {
	t.Helper()
	return readAllWith(t, journal.NewReader, j, size)
}

// readAllWith is readAll with the Reader made by newReader.
func readAllWith(t testing.TB, newReader func(io.ReaderAt, int64) (*journal.Reader, error), j []byte, size int64) ([]journal.Entry, [][]byte, error) {
	t.Helper()
	r, err := newReader(bytes.NewReader(j), size)
	if err != nil {
		return nil, nil, err
	}
	var es []journal.Entry
	var ps [][]byte
	for e, err := range r.All() {
		if err != nil {
			return es, ps, err
		}
		p := make([]byte, e.PayloadLen())
		if err := r.ReadPayload(e, p); err != nil {
			return es, ps, err
		}
		es = append(es, e)
		ps = append(ps, p)
	}
	return es, ps, nil
}

func TestFlagsString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f    journal.Flags
		want string
	}{
		{0, "WRITE"},
		{journal.FlagFlush, "FLUSH"},
		{journal.FlagFUA | journal.FlagMetadata, "FUA|METADATA"},
		{journal.FlagDiscard, "DISCARD"},
		{journal.FlagMark, "MARK"},
		{journal.FlagFlush | 0x40, "FLUSH|UNKNOWN(0x40)"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("Flags(%#x).String() = %q, want %q", uint64(tc.f), got, tc.want)
		}
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	t.Parallel()
	for _, ss := range []int{512, 4096, 65536} {
		for seed := uint64(1); seed <= 3; seed++ {
			wl := fixtures.DefaultWorkload(seed, ss)
			wl.Entries = 200
			wl.DeviceSize = int64(ss) * 2048
			wl.MaxWriteSectors = 256 * 1024 / ss // writes up to 256 KiB
			j, err := wl.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			es, ps, err := readAll(t, j, int64(len(j)))
			if err != nil {
				t.Fatalf("ss=%d seed=%d: %v", ss, seed, err)
			}
			if len(es) != wl.Entries {
				t.Fatalf("ss=%d seed=%d: read %d entries, wrote %d", ss, seed, len(es), wl.Entries)
			}
			// Re-encode what was read: the bytes must be identical.
			var b fixtures.WriterAtBuffer
			w, _ := journal.NewWriter(&b, ss)
			for i, e := range es {
				if err := w.Append(e, ps[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), j) {
				t.Fatalf("ss=%d seed=%d: re-encoded journal differs", ss, seed)
			}
		}
	}
}

// TestKernelLayout checks the writer against the worked example of
// docs/journal-format.md §9, byte for byte.
func TestKernelLayout(t *testing.T) {
	t.Parallel()
	var b fixtures.WriterAtBuffer
	w, _ := journal.NewWriter(&b, 512)
	if err := w.Write(8, bytes.Repeat([]byte{0xab}, 512), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Discard(16, 8); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	j := b.Bytes()
	if len(j) != 2560 {
		t.Fatalf("journal is %d bytes, want 2560", len(j))
	}
	want := map[int]uint64{
		0x000: 0x006a736677736872, 0x008: 1, 0x010: 3,
		0x200: 8, 0x208: 1, 0x210: 0, 0x218: 0,
		0x600: 16, 0x608: 8, 0x610: 4,
		0x800: 0, 0x808: 0, 0x810: 1,
	}
	for off, v := range want {
		if got := binary.LittleEndian.Uint64(j[off:]); got != v {
			t.Errorf("u64 at %#x = %d, want %d", off, got, v)
		}
	}
	if got := binary.LittleEndian.Uint32(j[0x18:]); got != 512 {
		t.Errorf("sectorsize = %d", got)
	}
	if !bytes.Equal(j[0x400:0x600], bytes.Repeat([]byte{0xab}, 512)) {
		t.Error("payload not at 0x400")
	}
	if !bytes.HasPrefix(j, []byte("rhswfsj\x00")) {
		t.Error("magic bytes")
	}
}

func TestMarkLabel(t *testing.T) {
	t.Parallel()
	for _, ss := range []int{512, 4096} {
		var b fixtures.WriterAtBuffer
		w, _ := journal.NewWriter(&b, ss)
		long := string(bytes.Repeat([]byte{'x'}, ss-33)) // the kernel's limit
		for _, l := range []string{"mkfs", journal.EndMark, long} {
			if err := w.Mark(l); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Mark(long + "y"); err == nil {
			t.Fatalf("ss=%d: a label filling its sector was accepted", ss)
		}
		w.Close()
		es, _, err := readAll(t, b.Bytes(), -1)
		if err != nil {
			t.Fatal(err)
		}
		var labels []string
		for _, e := range es {
			labels = append(labels, e.Label)
		}
		if diff := cmp.Diff([]string{"mkfs", journal.EndMark, long}, labels); diff != "" {
			t.Errorf("ss=%d labels (-want +got):\n%s", ss, diff)
		}
	}
}

// mutate returns a copy of j with the u64 at off set to v.
func mutate(j []byte, off int, v uint64) []byte {
	c := bytes.Clone(j)
	binary.LittleEndian.PutUint64(c[off:], v)
	return c
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	var b fixtures.WriterAtBuffer
	w, _ := journal.NewWriter(&b, 512)
	w.Write(0, make([]byte, 1024), 0)              // entry 0 at 512, payload to 2048
	w.Mark("x")                                    // entry 1 at 2048
	w.Write(4, make([]byte, 512), journal.FlagFUA) // entry 2 at 2560
	w.Close()
	j := b.Bytes()

	for _, tc := range []struct {
		name   string
		j      []byte
		want   error
		index  int64 // entry named in the error, -1 for none
		offset int64
	}{
		{"empty", nil, journal.ErrFormat, -1, 0},
		{"zero superblock", make([]byte, 4096), journal.ErrFormat, -1, 0},
		{"bad version", mutate(j, 8, 2), journal.ErrFormat, -1, 0},
		{"bad sector size", func() []byte { c := bytes.Clone(j); binary.LittleEndian.PutUint32(c[24:], 1000); return c }(), journal.ErrFormat, -1, 0},
		{"unknown flag", mutate(j, 2560+16, 0x22), journal.ErrCorrupt, 2, 2560},
		{"long label", mutate(j, 2048+24, 481), journal.ErrCorrupt, 1, 2048},
		{"mark with sectors", mutate(j, 2048+8, 3), journal.ErrCorrupt, 1, 2048},
		{"empty write", mutate(j, 512+8, 0), journal.ErrCorrupt, 0, 512},
		{"huge payload", mutate(j, 512+8, 1<<40), journal.ErrCorrupt, 0, 512},
		{"sector overflow", mutate(j, 512, 1<<62), journal.ErrCorrupt, 0, 512},
		{"payload past end", mutate(j, 2560+8, 9), io.ErrUnexpectedEOF, 2, 2560},
		{"more entries than data", mutate(j, 16, 4), io.ErrUnexpectedEOF, 3, 3584},
		{"cut in payload", mutate(j[:1024], 16, 1), io.ErrUnexpectedEOF, 0, 512},
		// Counts the file cannot hold: one sector per entry at least.
		{"count beyond the file", j[:1024], journal.ErrFormat, -1, 0},
		{"count of 2^63", mutate(j, 16, 1<<63), journal.ErrFormat, -1, 0},
		{"count of 2^64-1", mutate(j, 16, 1<<64-1), journal.ErrFormat, -1, 0},
		{"count one past the sectors", mutate(j, 16, uint64(len(j)/512)), journal.ErrFormat, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(t, tc.j, int64(len(tc.j)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ee *journal.EntryError
			if tc.index < 0 {
				if errors.As(err, &ee) {
					t.Fatalf("superblock error names an entry: %v", err)
				}
				return
			}
			if !errors.As(err, &ee) || ee.Index != tc.index || ee.Offset != tc.offset {
				t.Fatalf("err = %v, want entry %d at offset %d", err, tc.index, tc.offset)
			}
		})
	}
}

// TestTruncation cuts journals at every sector boundary: each prefix reads
// as a clean prefix of the entries and then io.ErrUnexpectedEOF, never a
// panic or another error; the same with the size unknown to the reader,
// and with NewReaderClamped. With the size known, NewReader refuses a
// prefix whose superblock counts more entries than it has sectors for
// (ErrFormat).
func TestTruncation(t *testing.T) {
	t.Parallel()
	for _, ss := range []int{512, 4096} {
		wl := fixtures.DefaultWorkload(7, ss)
		wl.Entries = 60
		wl.MaxWriteSectors = 8
		wl.DeviceSize = int64(ss) * 256
		j, err := wl.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		full, fullP, err := readAll(t, j, int64(len(j)))
		if err != nil {
			t.Fatal(err)
		}
		for cut := 0; cut <= len(j); cut += ss {
			for _, size := range []int64{int64(cut), -1} {
				es, ps, err := readAll(t, j[:cut], size)
				switch {
				case cut == len(j):
					if err != nil {
						t.Fatalf("ss=%d whole journal: %v", ss, err)
					}
				case cut < 512 || size >= 0 && int64(wl.Entries) > (size-int64(ss))/int64(ss):
					if !errors.Is(err, journal.ErrFormat) {
						t.Fatalf("ss=%d cut=%d size=%d: err = %v, want ErrFormat", ss, cut, size, err)
					}
				default:
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("ss=%d cut=%d size=%d: err = %v, want ErrUnexpectedEOF", ss, cut, size, err)
					}
				}
				if diff := cmp.Diff(full[:len(es)], es, cmpopts.EquateEmpty()); diff != "" {
					t.Fatalf("ss=%d cut=%d: not a prefix (-want +got):\n%s", ss, cut, diff)
				}
				for i := range ps {
					if !bytes.Equal(ps[i], fullP[i]) {
						t.Fatalf("ss=%d cut=%d: payload %d differs", ss, cut, i)
					}
				}
			}
			if cut < 512 {
				continue
			}
			es, _, err := readAllWith(t, journal.NewReaderClamped, j[:cut], int64(cut))
			if cut < len(j) && !errors.Is(err, io.ErrUnexpectedEOF) && !(err == nil && len(es) == (cut-ss)/ss) {
				t.Fatalf("ss=%d cut=%d clamped: %d entries, err = %v, want ErrUnexpectedEOF", ss, cut, len(es), err)
			}
			if diff := cmp.Diff(full[:len(es)], es, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("ss=%d cut=%d clamped: not a prefix (-want +got):\n%s", ss, cut, diff)
			}
		}
	}
}

func TestSticky(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(3, 512)
	j, _ := wl.Bytes()
	j = mutate(j, 512+16, 0x80) // entry 0: unknown flag
	r, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := r.Next()
	_, err2 := r.Next()
	if err1 == nil || err1 != err2 {
		t.Fatalf("errors not sticky: %v then %v", err1, err2)
	}
	if err := r.SeekEntry(0); err != err1 {
		t.Fatalf("SeekEntry after failure: %v", err)
	}
}

func TestSeek(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(11, 512)
	wl.Mark = 0.1
	j, _ := wl.Bytes()
	full, _, err := readAll(t, j, int64(len(j)))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	for _, i := range []int64{17, 3, 0, 250, int64(len(full)) - 1} {
		if err := r.SeekEntry(i); err != nil {
			t.Fatal(err)
		}
		e, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(full[i], e); diff != "" {
			t.Fatalf("SeekEntry(%d) (-want +got):\n%s", i, diff)
		}
	}
	if err := r.SeekEntry(int64(len(full)) + 1); !errors.Is(err, journal.ErrRange) {
		t.Fatalf("seek past end: %v", err)
	}
	var mark journal.Entry
	for _, e := range full {
		if e.IsMark() {
			mark = e
			break
		}
	}
	got, err := r.SeekMark(mark.Label)
	if err != nil || got != mark || r.Index() != mark.Index+1 {
		t.Fatalf("SeekMark(%q) = %v, %v at %d; want %v", mark.Label, got, err, r.Index(), mark)
	}
	if _, err := r.SeekMark("no such mark"); !errors.Is(err, journal.ErrNoMark) {
		t.Fatalf("missing mark: %v", err)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	w := journal.Entry{Flags: 0, NrSectors: 1}
	fua := journal.Entry{Flags: journal.FlagFUA | journal.FlagMetadata, NrSectors: 1}
	fl := journal.Entry{Flags: journal.FlagFlush}
	mk := journal.Entry{Flags: journal.FlagMark, Label: "mkfs"}
	for _, tc := range []struct {
		s      journal.Stop
		e      journal.Entry
		walked int64
		want   bool
	}{
		{journal.Stop{}, fua, 1, false},
		{journal.Stop{Limit: 3}, w, 2, false},
		{journal.Stop{Limit: 3}, w, 3, true},
		{journal.Stop{NextFUA: true}, fua, 9, true},
		{journal.Stop{NextFUA: true}, fl, 9, false},
		{journal.Stop{NextFlush: true}, fl, 9, true},
		{journal.Stop{EndMark: "mkfs"}, mk, 1, true},
		{journal.Stop{EndMark: "mkf"}, mk, 1, false},
		// replay-log's rule: with an end mark, flush and FUA entries do not stop.
		{journal.Stop{EndMark: "mkfs", NextFUA: true}, fua, 9, false},
		{journal.Stop{EndMark: "mkfs", NextFlush: true}, fl, 9, false},
		{journal.Stop{EndMark: "mkfs", NextFlush: true}, mk, 9, true},
		{journal.Stop{EndMark: "x", NextFlush: true, Limit: 9}, fl, 9, true},
	} {
		if got := tc.s.Hit(tc.e, tc.walked); got != tc.want {
			t.Errorf("%+v.Hit(%v, %d) = %v", tc.s, tc.e.Flags, tc.walked, got)
		}
	}
}

func BenchmarkReader(b *testing.B) {
	for _, ss := range []int{512, 4096} {
		wl := fixtures.DefaultWorkload(1, ss)
		wl.Entries = 4000
		wl.DeviceSize = 64 << 20
		j, err := wl.Bytes()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(map[int]string{512: "sector=512", 4096: "sector=4096"}[ss], func(b *testing.B) {
			b.SetBytes(int64(len(j)))
			b.ReportAllocs()
			buf := make([]byte, 64*ss)
			for b.Loop() {
				benchRead(b, bytes.NewReader(j), int64(len(j)), buf)
			}
		})
	}
}

// BenchmarkReaderFile reads a 256 MiB journal file from the page cache:
// headers and every payload, as a replay does.
func BenchmarkReaderFile(b *testing.B) {
	wl := fixtures.DefaultWorkload(2, 4096)
	wl.Entries, wl.DeviceSize, wl.MaxWriteSectors = 8000, 1<<30, 16
	wl.Mark = 0
	path := filepath.Join(b.TempDir(), "j.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w, _ := journal.NewWriter(f, 4096)
	if err := wl.Write(w); err != nil {
		b.Fatal(err)
	}
	w.Close()
	size, _ := f.Seek(0, io.SeekEnd)
	buf := make([]byte, 64<<10)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		benchRead(b, f, size, buf)
	}
	f.Close()
}

// benchRead reads the journal of size bytes in ra, headers and payloads (into
// buf, large enough for any), as a replay does.
func benchRead(b *testing.B, ra io.ReaderAt, size int64, buf []byte) {
	r, err := journal.NewReader(ra, size)
	if err != nil {
		b.Fatal(err)
	}
	for e, err := range r.All() {
		if err != nil {
			b.Fatal(err)
		}
		if err := r.ReadPayload(e, buf); err != nil {
			b.Fatal(err)
		}
	}
}
