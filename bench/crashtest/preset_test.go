package crashtest_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logship/logship/bench/crashtest"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/journal"
)

// mkfsJournal makes a file system with mkfs in an image of size bytes and
// returns a journal that writes it (its non-zero 4 KiB blocks) then
// flushes, marks "mkfs", then zeros the superblock at sb and flushes.
func mkfsJournal(t *testing.T, size int64, sb int64, mkfs ...string) string {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs[0], append(mkfs[1:], img)...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", mkfs, err, out)
	}
	jf, err := os.Create(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	w, err := journal.NewWriter(jf, 512)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		for k := 0; k < len(buf); k += 4096 {
			if blk := buf[k : k+4096]; !digest.IsZero(blk) {
				if err := w.Write(uint64(off+int64(k))/512, blk, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, err := range []error{w.Flush(), w.Mark("mkfs"), w.Write(uint64(sb/512), make([]byte, 4096), 0), w.Flush(), w.Close()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return jf.Name()
}

// TestPresets: each preset passes a freshly made file system and fails it
// once its superblock is gone, naming the step that failed.
func TestPresets(t *testing.T) {
	for _, tt := range []struct {
		preset string
		size   int64
		sb     int64
		mkfs   []string
		fails  string
	}{
		{"ext4", 64 << 20, 0, []string{"mkfs.ext4", "-q", "-F"}, "e2fsck"},
		{"xfs", 320 << 20, 0, []string{"mkfs.xfs", "-q", "-f"}, "log recovery"},
		{"btrfs", 256 << 20, 64 << 10, []string{"mkfs.btrfs", "-q", "-f"}, "log recovery"},
	} {
		t.Run(tt.preset, func(t *testing.T) {
			if _, err := exec.LookPath(tt.mkfs[0]); err != nil && testing.Short() {
				t.Skipf("%s: %v (scripts/vm-deps.sh installs it)", tt.mkfs[0], err)
			}
			check, err := crashtest.Preset(tt.preset, 0)
			if err != nil {
				t.Fatal(err)
			}
			j := mkfsJournal(t, tt.size, tt.sb, tt.mkfs...)
			var res []crashtest.Result
			_, err = crashtest.Crashtest(t.Context(), j, crashtest.Options{Check: check, Jobs: 2, KeepGoing: true,
				Size: tt.size, WorkDir: t.TempDir(), Report: func(r crashtest.Result) { res = append(res, r) }})
			var pe *crashtest.PointError
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want the last point to fail", err)
			}
			if len(res) != 3 || res[0].Err != nil || res[1].Err != nil || res[2].Err == nil || pe.Failed != 1 {
				for _, r := range res {
					t.Logf("%s: %v\n%s", r.Point, r.Err, r.Output)
				}
				t.Fatalf("%d points, first failure %s; want the first two to pass, the third to fail", len(res), pe.Result.Point)
			}
			if msg := res[2].Err.Error(); !contains(msg, tt.fails) {
				t.Errorf("failure %q does not name %q", msg, tt.fails)
			}
		})
	}
	if _, err := crashtest.Preset("zfs", 0); !errors.Is(err, crashtest.ErrBadOptions) {
		t.Errorf("Preset(zfs): %v, want ErrBadOptions", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := crashtest.Preset("xfs", 0); !errors.Is(err, crashtest.ErrNoTool) || !contains(err.Error(), "Debian package xfsprogs") {
		t.Errorf("Preset(xfs) without xfs_repair: %v, want ErrNoTool naming xfsprogs", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
