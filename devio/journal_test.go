package devio

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// fdFlags returns the open flags of fd as /proc/self/fdinfo reports them
// (what strace would show at openat).
func fdFlags(t *testing.T, fd uintptr) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			if err != nil {
				t.Fatalf("fdinfo flags %q: %v", v, err)
			}
			return int(n)
		}
	}
	t.Fatalf("no flags in fdinfo of fd %d:\n%s", fd, b)
	return 0
}

// checkJournal reads j back in odd pieces and compares with want.
func checkJournal(t *testing.T, j *Journal, want []byte) {
	t.Helper()
	if j.Size() < int64(len(want)) {
		t.Fatalf("size %d, want at least %d", j.Size(), len(want))
	}
	for _, c := range [][2]int{{0, len(want)}, {1, 511}, {513, 4000}, {len(want) - 7, 7}} {
		got := make([]byte, c[1])
		if _, err := j.ReadAt(got, int64(c[0])); err != nil {
			t.Fatalf("ReadAt(%d bytes at %d): %v", c[1], c[0], err)
		}
		if !bytes.Equal(got, want[c[0]:c[0]+c[1]]) {
			t.Fatalf("ReadAt(%d bytes at %d): wrong bytes", c[1], c[0])
		}
	}
}

func TestOpenJournal(t *testing.T) {
	t.Parallel()
	want := pattern(64<<10, 3)
	dir := t.TempDir()
	plain := filepath.Join(dir, "j.log")
	if err := os.WriteFile(plain, want, 0o644); err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	compressed := filepath.Join(dir, "j.log") // known by its magic number, not its name
	compressed += ".compressed"
	if err := os.WriteFile(compressed, enc.EncodeAll(want, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	enc.Close()
	for _, tc := range []struct {
		name, path string
		o          JournalOptions
		direct     bool
	}{
		{"file", plain, JournalOptions{}, false},
		{"file direct", plain, JournalOptions{Direct: true}, true},
		{"zstd", compressed, JournalOptions{}, false},
		{"zstd direct ignored", compressed, JournalOptions{Direct: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := OpenJournal(tc.path, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if j.Direct() != tc.direct {
				t.Errorf("Direct() = %v, want %v", j.Direct(), tc.direct)
			}
			if j.dev != nil {
				if got := fdFlags(t, j.dev.Fd())&unix.O_DIRECT != 0; got != tc.direct {
					t.Errorf("O_DIRECT in the fd's flags: %v, want %v", got, tc.direct)
				}
			}
			wantC := ""
			if strings.HasPrefix(tc.name, "zstd") {
				wantC = "zstd"
			}
			if j.Compressed() != wantC {
				t.Errorf("Compressed() = %q, want %q", j.Compressed(), wantC)
			}
			if j.Size() != int64(len(want)) {
				t.Errorf("Size() = %d, want %d", j.Size(), len(want))
			}
			checkJournal(t, j, want)
		})
	}
	if _, err := OpenJournal(filepath.Join(dir, "missing.log"), JournalOptions{}); err == nil {
		t.Error("a missing journal opened")
	}
	bad := filepath.Join(dir, "bad.zst")
	if err := os.WriteFile(bad, append(append([]byte(nil), zstdMagic...), "garbage"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(bad, JournalOptions{}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt zstd file: err = %v, want an error naming %s", err, bad)
	}
	gz := filepath.Join(dir, "j.gz")
	if err := os.WriteFile(gz, append(append([]byte(nil), gzipMagic...), 0, 0, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(gz, JournalOptions{}); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("gzip file: err = %v, want one that says gzip", err)
	}
}

// A log on a block device is read with O_DIRECT (the kernel writes it
// behind the page cache), whatever the options say, and reads of any
// offset and length work on a device with 4096-byte blocks.
func TestOpenJournalBlockDevice(t *testing.T) {
	l, backing := newLoop(t, 1<<20, LoopOptions{BlockSize: 4096})
	want := pattern(1<<20, 5)
	if err := os.WriteFile(backing, want, 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := OpenJournal(l.Path(), JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if !j.Direct() {
		t.Error("Direct() = false on a block device")
	}
	if fdFlags(t, j.dev.Fd())&unix.O_DIRECT == 0 {
		t.Errorf("%s opened without O_DIRECT", l.Path())
	}
	checkJournal(t, j, want)
}
