package devio

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// sysLoop reads /sys/block/loopN/loop/ATTR; ok is false when the device is
// not bound (the loop directory exists only while it is).
func sysLoop(t testing.TB, l *Loop, attr string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/loop/%s", l.Number(), attr))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)), true
}

func TestAttachLoop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		o      LoopOptions
		lbs    int
		legacy bool // force the LOOP_SET_FD path of kernels before 5.8
	}{
		{"default", LoopOptions{}, 512, false},
		{"512", LoopOptions{BlockSize: 512}, 512, false},
		{"4096", LoopOptions{BlockSize: 4096}, 4096, false},
		{"4096/direct", LoopOptions{BlockSize: 4096, Direct: true}, 4096, false},
		{"read-only", LoopOptions{ReadOnly: true}, 512, false},
		{"legacy/4096/direct", LoopOptions{BlockSize: 4096, Direct: true}, 4096, true},
		{"legacy/read-only", LoopOptions{ReadOnly: true}, 512, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.legacy {
				loopConfigure = func(int, *unix.LoopConfig) error { return unix.ENOTTY }
				t.Cleanup(func() { loopConfigure = unix.IoctlLoopConfigure })
			}
			const size = 4 << 20
			l, backing := newLoop(t, size, tc.o)
			if !strings.HasPrefix(l.Path(), "/dev/loop") || l.Path() != fmt.Sprintf("/dev/loop%d", l.Number()) || l.Backing() != backing {
				t.Fatalf("path %s number %d backing %s", l.Path(), l.Number(), l.Backing())
			}
			if got, ok := sysLoop(t, l, "backing_file"); !ok || got != backing {
				t.Errorf("sysfs backing_file %q (bound %v), want %q", got, ok, backing)
			}
			if got, _ := sysLoop(t, l, "autoclear"); got != "1" {
				t.Errorf("autoclear %q, want 1", got)
			}
			if got, _ := sysLoop(t, l, "dio"); (got == "1") != tc.o.Direct {
				t.Errorf("dio %q, want %v", got, tc.o.Direct)
			}
			d := mustOpen(t, l.Path(), Options{})
			if d.Kind() != Block || d.LogicalBlockSize() != tc.lbs || d.Size() != size {
				t.Errorf("kind %v lbs %d size %d, want block %d %d", d.Kind(), d.LogicalBlockSize(), d.Size(), tc.lbs, size)
			}
			ro, err := unix.IoctlGetInt(int(d.Fd()), unix.BLKROGET)
			if err != nil || (ro == 1) != tc.o.ReadOnly {
				t.Errorf("BLKROGET %d, %v, want read-only %v", ro, err, tc.o.ReadOnly)
			}
			if tc.o.ReadOnly {
				if w, err := Open(l.Path(), Options{Write: true}); !errors.Is(err, ErrReadOnly) {
					t.Errorf("read-write open of a read-only loop device: %v, want ErrReadOnly", err)
					if err == nil {
						w.Close()
					}
				}
			}
			d.Close()
			if err := l.Detach(); err != nil {
				t.Fatal(err)
			}
			if _, ok := sysLoop(t, l, "backing_file"); ok {
				t.Error("still bound after Detach")
			}
			if err := l.Detach(); err != nil {
				t.Errorf("second Detach: %v", err)
			}
		})
	}
}

func TestAttachLoopErrors(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name    string
		backing string
		o       LoopOptions
		wantErr error
	}{
		{"missing", "/nonexistent/devio-backing", LoopOptions{}, os.ErrNotExist},
		{"directory", t.TempDir(), LoopOptions{}, ErrNotBlock},
		{"block size 1024+1", sparseFile(t, 1<<20), LoopOptions{BlockSize: 1025}, nil},
		{"block size 256", sparseFile(t, 1<<20), LoopOptions{BlockSize: 256}, nil},
		{"block size 64K", sparseFile(t, 1<<20), LoopOptions{BlockSize: 64 << 10}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := AttachLoop(tc.backing, tc.o)
			if err == nil {
				l.Detach()
				t.Fatal("AttachLoop succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("AttachLoop: %v, want %v", err, tc.wantErr)
			}
			var e *Error
			if !errors.As(err, &e) || e.Path != tc.backing {
				t.Errorf("error %v does not name %s", err, tc.backing)
			}
		})
	}
}

// TestLoopAutoclear closes the loop device without LOOP_CLR_FD, as a crashed
// process would, and checks that the kernel unbinds it.
func TestLoopAutoclear(t *testing.T) {
	l, _ := newLoop(t, 1<<20, LoopOptions{})
	if _, ok := sysLoop(t, l, "backing_file"); !ok {
		t.Fatal("not bound")
	}
	l.mu.Lock()
	l.dev.Close()
	l.dev = nil
	l.mu.Unlock()
	if got, ok := sysLoop(t, l, "backing_file"); ok {
		t.Errorf("still bound to %s after its last opener closed", got)
	}
}

// TestAttachLoopConcurrent races several attaches for the same free device:
// the losers retry on EBUSY, and every one ends up with its own device.
func TestAttachLoopConcurrent(t *testing.T) {
	requireRoot(t)
	const n = 6
	loops := make([]*Loop, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		backing := sparseFile(t, 1<<20)
		wg.Go(func() { loops[i], errs[i] = AttachLoop(backing, LoopOptions{}) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, l := range loops {
		if errs[i] != nil {
			t.Errorf("attach %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { l.Detach() })
		if seen[l.Path()] {
			t.Errorf("%s handed out twice", l.Path())
		}
		seen[l.Path()] = true
		if got, _ := sysLoop(t, l, "backing_file"); got != l.Backing() {
			t.Errorf("%s bound to %q, want %q", l.Path(), got, l.Backing())
		}
	}
}
