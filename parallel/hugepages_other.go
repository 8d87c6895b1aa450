//go:build !linux

package parallel

// hugepages does nothing outside Linux.
func hugepages([]byte) {}
