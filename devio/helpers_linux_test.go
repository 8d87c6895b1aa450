package devio

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/fixtures/prereq"
)

// requireRoot skips a test that needs root under -short and fails it
// otherwise (prereq.Root).
func requireRoot(t testing.TB) { t.Helper(); prereq.Root(t) }

// requireCmd skips under -short a test whose external tool is missing and
// fails it otherwise, naming the Debian package to install (prereq.Tool).
func requireCmd(t testing.TB, name, pkg string) string { t.Helper(); return prereq.Tool(t, name, pkg) }

// sparseFile creates a sparse file of size bytes in a new temp dir.
func sparseFile(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backing")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// newLoop attaches a loop device over a new sparse file of size bytes and
// detaches it at cleanup. It returns the loop and the backing file's path.
func newLoop(t testing.TB, size int64, o LoopOptions) (*Loop, string) {
	t.Helper()
	requireRoot(t)
	backing := sparseFile(t, size)
	l, err := AttachLoop(backing, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Detach(); err != nil {
			t.Error(err)
		}
	})
	return l, backing
}

// mountExt4 makes an ext4 file system on a new loop device of size bytes and
// mounts it on a temp dir; cleanup unmounts it, then detaches the loop.
func mountExt4(t testing.TB, size int64) (*Loop, string) {
	t.Helper()
	l, _ := newLoop(t, size, LoopOptions{})
	mkfs := requireCmd(t, "mkfs.ext4", "e2fsprogs")
	if out, err := exec.Command(mkfs, "-q", "-F", l.Path()).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", l.Path(), err, out)
	}
	dir := t.TempDir()
	if err := unix.Mount(l.Path(), dir, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", l.Path(), dir, err)
	}
	t.Cleanup(func() { // registered after newLoop's Detach, so it runs first
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return l, dir
}

// pattern returns n bytes that differ from block to block and from run to
// run of seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i/512) ^ byte(i) ^ seed | 1 // never zero
	}
	return b
}

// readBack reads n bytes at off through a fresh buffered handle on path,
// independent of the Device under test.
func readBack(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read back %s at %d: %v", path, off, err)
	}
	return b
}

func stBlocks(t testing.TB, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}

func mustOpen(t testing.TB, path string, o Options) *Device {
	t.Helper()
	d, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
