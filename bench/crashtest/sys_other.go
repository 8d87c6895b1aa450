//go:build !linux

package crashtest

import "os"

func punchHole(*os.File, int64, int64) error { return errLinuxOnly }

func copyFileRange(*os.File, *int64, *os.File, *int64, int) (int, error) { return 0, errLinuxOnly }

func flushBuffers(*os.File) error { return errLinuxOnly }

func unmount(dir string) error { return errLinuxOnly }

func mountFS(dev, dir, fstype, opts string) error { return errLinuxOnly }
