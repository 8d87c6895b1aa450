//go:build !linux

package main

import (
	"errors"
	"os"
)

// blkDiscard: BLKDISCARD is Linux's; elsewhere every discard becomes zeros,
// as replay-log's does on a target that refuses the ioctl.
func blkDiscard(f *os.File, start, n uint64) error {
	return errors.New("BLKDISCARD: not on this platform")
}
