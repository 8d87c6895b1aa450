package crashtest

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// punchHole deallocates [off, off+n) of f, keeping its size.
func punchHole(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// copyFileRange is copy_file_range(2).
func copyFileRange(src *os.File, roff *int64, dst *os.File, woff *int64, n int) (int, error) {
	return unix.CopyFileRange(int(src.Fd()), roff, int(dst.Fd()), woff, n, 0)
}

// flushBuffers writes a block device's dirty cache and drops its cache
// (BLKFLSBUF).
func flushBuffers(f *os.File) error {
	return unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
}

// unmount unmounts dir, retrying while it is busy.
func unmount(dir string) error {
	var err error
	for range 50 {
		if err = unix.Unmount(dir, 0); !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return &os.PathError{Op: "unmount", Path: dir, Err: err}
	}
	return nil
}

// mountFS mounts dev at dir as fstype with the options opts.
func mountFS(dev, dir, fstype, opts string) error {
	return unix.Mount(dev, dir, fstype, 0, opts)
}
