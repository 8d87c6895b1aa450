//go:build !linux

package campaign

import "errors"

// errLinuxOnly: the disk-full fault needs a Linux loop device and mount.
var errLinuxOnly = errors.New("bench: Linux only")

type smallFS struct{ mnt string }

func newSmallFS(dir string, size int64) (*smallFS, error) { return nil, errLinuxOnly }
func (fs *smallFS) fill() error                           { return errLinuxOnly }
func (fs *smallFS) free() error                           { return errLinuxOnly }
func (fs *smallFS) close() error                          { return errLinuxOnly }
