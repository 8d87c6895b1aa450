//go:build !linux

package bench

type smallFS struct{ mnt string }

func newSmallFS(dir string, size int64) (*smallFS, error) { return nil, errLinuxOnly }
func (fs *smallFS) fill() error                           { return errLinuxOnly }
func (fs *smallFS) free() error                           { return errLinuxOnly }
func (fs *smallFS) close() error                          { return errLinuxOnly }
