package campaign

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/devio"
)

// smallFS is a fresh ext4 file system on a loop device over a sparse
// file, mounted: the disk the fault campaign fills.
type smallFS struct {
	dir     string // holds the backing file and the mount point
	mnt     string
	loop    *devio.Loop
	ballast string
}

// newSmallFS makes and mounts an ext4 file system of size bytes under
// dir. It needs root and mkfs.ext4 (Debian package e2fsprogs).
func newSmallFS(dir string, size int64) (_ *smallFS, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("bench: the disk-full fault needs root (a loop device and a mount)")
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return nil, errors.New("bench: the disk-full fault needs mkfs.ext4: apt-get install e2fsprogs")
	}
	fs := &smallFS{dir: dir, mnt: filepath.Join(dir, "mnt")}
	backing := filepath.Join(dir, "fs.img")
	f, err := os.Create(backing)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return nil, err
	}
	// -m 0: no blocks reserved for root (the server runs as root).
	if out, err := exec.Command(mkfs, "-q", "-F", "-m", "0", backing).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mkfs.ext4 %s: %v: %s", backing, err, out)
	}
	if fs.loop, err = devio.AttachLoop(backing, devio.LoopOptions{}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			fs.loop.Detach()
		}
	}()
	if err := os.MkdirAll(fs.mnt, 0o700); err != nil {
		return nil, err
	}
	if err := unix.Mount(fs.loop.Path(), fs.mnt, "ext4", 0, ""); err != nil {
		return nil, fmt.Errorf("mount %s on %s: %w", fs.loop.Path(), fs.mnt, err)
	}
	fs.ballast = filepath.Join(fs.mnt, "ballast")
	return fs, nil
}

// fill takes all the free space of the file system with a ballast file.
func (fs *smallFS) fill() error {
	f, err := os.OpenFile(fs.ballast, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(fs.mnt, &st); err != nil {
			return err
		}
		free := int64(st.Bavail) * st.Bsize
		if free < 4096 {
			return nil
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		// Ask for all of it; the file system's own metadata may need a
		// little, so shrink until it fits.
		for n := free; n >= 4096; n /= 2 {
			if err = unix.Fallocate(int(f.Fd()), 0, fi.Size(), n); err == nil {
				break
			}
			if !errors.Is(err, unix.ENOSPC) {
				return fmt.Errorf("filling %s: %w", fs.mnt, err)
			}
		}
		if err != nil {
			return nil
		}
	}
}

// free removes the ballast.
func (fs *smallFS) free() error {
	if err := os.Remove(fs.ballast); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// close unmounts and detaches.
func (fs *smallFS) close() error {
	var err error
	for i := 0; ; i++ {
		if err = unix.Unmount(fs.mnt, 0); err == nil || i == 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if derr := fs.loop.Detach(); err == nil {
		err = derr
	}
	return err
}
