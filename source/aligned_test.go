package source

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/fixtures/prereq"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// The same journal read through O_DIRECT on a regular file.
func TestAlignedReaderDirectFile(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(20, 512)
	j, _ := wl.Bytes()
	path := writeJournal(t, j)
	jf, err := openJournal(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	if !jf.direct {
		t.Fatal("not opened with O_DIRECT")
	}
	id, _, err := IdentifyReader(jf.r, jf.dev.Size())
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := IdentifyReader(bytes.NewReader(j), int64(len(j)))
	if id != want {
		t.Fatalf("identity through O_DIRECT %s, buffered %s", id, want)
	}
}

func requireRoot(t testing.TB) { t.Helper(); prereq.Root(t) }

// A journal on a block device (a loop device with 4096-byte blocks, so
// the 512-byte headers are unaligned reads) is read with O_DIRECT, at rest
// and while it grows.
func TestShipLoopDevice(t *testing.T) {
	requireRoot(t)
	wl := fixtures.DefaultWorkload(21, 512)
	wl.Entries = 1500
	j, _ := wl.Bytes()
	size := (int64(len(j)) + 2<<20) &^ (1<<20 - 1)
	loop, backing := fixtures.Loop(t, "log.img", j, size, devio.LoopOptions{BlockSize: 4096})

	srv := newTestServer(t, parallel.ServerConfig{})
	cfg := config(t, loop.Path(), srv.Addr(), 4, wl.DeviceSize)
	st := ship(t, cfg)
	sameImage(t, srv.image("t"), want(t, j, wl.DeviceSize))
	if id, _, _ := IdentifyReader(bytes.NewReader(j), int64(len(j))); st.Journal != id {
		t.Fatalf("identity on the device %s, in memory %s", st.Journal, id)
	}

	// Now live: the backing file is zeroed and rewritten as the kernel
	// would, while the Shipper tails the loop device.
	if err := os.WriteFile(backing, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	wl.Seed = 22
	srv2 := newTestServer(t, parallel.ServerConfig{})
	cfg = config(t, loop.Path(), srv2.Addr(), 4, wl.DeviceSize)
	followGrowing(t, cfg, backing, wl, 2*time.Millisecond)
	final, _ := os.ReadFile(backing)
	sameImage(t, srv2.image("t"), want(t, final, wl.DeviceSize))
}

func TestJournalID(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(23, 512)
	wl.Entries = 2000
	full, _ := wl.Bytes()
	id, s, err := IdentifyReader(bytes.NewReader(full), int64(len(full)))
	if err != nil || !ValidJournalID(id) || s.SectorSize != 512 {
		t.Fatalf("IdentifyReader: %q, %+v, %v", id, s, err)
	}
	// The journal as it was earlier, once its entries passed 64 KiB: the
	// same identity. Stale bytes past the counted entries do not matter.
	r, _ := journal.NewReader(bytes.NewReader(full), int64(len(full)))
	var at int64
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		if e.NextOffset() >= 512+IDPrefix {
			at = e.Index + 1
			break
		}
	}
	early := append([]byte(nil), full...)
	sb, _ := journal.Super{NrEntries: uint64(at), SectorSize: 512}.AppendBinary(nil)
	copy(early, sb)
	if got, _, _ := IdentifyReader(bytes.NewReader(early), int64(len(early))); got != id {
		t.Fatalf("identity with %d entries %s, with all %s", at, got, id)
	}
	// Before that, a smaller journal has another identity, and stale
	// bytes after its entries do not enter it.
	sb, _ = journal.Super{NrEntries: 3, SectorSize: 512}.AppendBinary(nil)
	copy(early, sb)
	small, _, _ := IdentifyReader(bytes.NewReader(early), int64(len(early)))
	copy(early[len(early)-1000:], bytes.Repeat([]byte{0xee}, 1000))
	small2, _, _ := IdentifyReader(bytes.NewReader(early), int64(len(early)))
	if small == id || small != small2 {
		t.Fatalf("3 entries: %s, with stale bytes changed %s, all: %s", small, small2, id)
	}
	// Another journal, another identity.
	wl.Seed = 24
	other, _ := wl.Bytes()
	if got, _, _ := IdentifyReader(bytes.NewReader(other), int64(len(other))); got == id {
		t.Fatal("two journals with one identity")
	}
	for _, bad := range []string{"", "xxh64:", "xxh64:0123", "xxh64:0123456789abcdeg", "md5:0123456789abcdef"} {
		if ValidJournalID(bad) {
			t.Errorf("ValidJournalID(%q)", bad)
		}
	}
}
