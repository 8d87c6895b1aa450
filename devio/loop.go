package devio

import (
	"os"
	"sync"
)

// LoopOptions says how AttachLoop sets up a loop device.
type LoopOptions struct {
	// ReadOnly makes the loop device read-only (and opens the backing file
	// read-only).
	ReadOnly bool
	// BlockSize is the loop device's logical block size: a power of two from
	// 512 to the page size (512 and 4096 in practice). 0 means 512.
	BlockSize int
	// Direct makes the loop driver use direct I/O on the backing file, which
	// bypasses the page cache twice over. The kernel silently keeps buffered
	// I/O where the backing file system cannot do direct I/O at BlockSize.
	Direct bool
}

// Loop is a loop device bound to a backing file. It keeps the device open
// until Detach: the device is set up with LO_FLAGS_AUTOCLEAR, so the kernel
// unbinds it when its last opener closes it, and a process that dies without
// calling Detach leaks no loop device (unless something else, such as a
// mount, still holds it; then it goes when that lets go).
type Loop struct {
	path    string // /dev/loopN
	backing string
	number  int

	mu  sync.Mutex
	dev *os.File // held open until Detach; nil after
}

// Path returns the device node, /dev/loopN.
func (l *Loop) Path() string { return l.path }

// Number returns N of /dev/loopN.
func (l *Loop) Number() int { return l.number }

// Backing returns the path of the backing file as given to AttachLoop.
func (l *Loop) Backing() string { return l.backing }
