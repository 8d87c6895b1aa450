// Package snapdiff turns two snapshots of a device into a journal: the
// entries whose replay onto OLD yields NEW exactly (`logship diff`). Test
// benches use it to make a replayable journal from two images.
package snapdiff

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/logship/logship/digest"
	"github.com/logship/logship/journal"
)

// Stats counts what a Diff wrote.
type Stats struct {
	Written, Discarded int64 // bytes
}

// Diff compares old and new, size bytes each, sector by sector (the
// sector size of w) and appends to w what turns old into new: the
// differing ranges as coalesced writes, ranges that became zero as
// discards, in order. It reads chunk bytes of each image at a time (a
// multiple of the sector size), which bounds its memory. The caller ends
// the journal (a FLUSH and a MARK, for `logship diff`).
func Diff(ctx context.Context, w *journal.Writer, old, new io.ReaderAt, size, chunk int64) (Stats, error) {
	ss := int64(w.SectorSize())
	if size%ss != 0 {
		return Stats{}, fmt.Errorf("snapdiff: size %d is not a multiple of the %d-byte sector", size, ss)
	}
	if chunk < ss || chunk%ss != 0 {
		return Stats{}, fmt.Errorf("snapdiff: chunk %d is not a multiple of the %d-byte sector", chunk, ss)
	}
	d := differ{w: w, ss: ss}
	a, b := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		if err := ctx.Err(); err != nil {
			return d.st, err
		}
		n := min(chunk, size-off)
		if _, err := old.ReadAt(a[:n], off); err != nil && err != io.EOF {
			return d.st, err
		}
		if _, err := new.ReadAt(b[:n], off); err != nil && err != io.EOF {
			return d.st, err
		}
		for s := int64(0); s < n; s += d.ss {
			x, y := a[s:s+d.ss], b[s:s+d.ss]
			var err error
			switch {
			case bytes.Equal(x, y):
				err = d.flushRun()
			case digest.IsZero(y):
				err = d.add(off+s, nil)
			default:
				err = d.add(off+s, y)
			}
			if err != nil {
				return d.st, err
			}
		}
		if err := d.flushRun(); err != nil { // runs never span chunks: their data is reused
			return d.st, err
		}
	}
	return d.st, nil
}

// differ coalesces consecutive differing sectors into one write (or one
// discard, for sectors that became zero).
type differ struct {
	w     *journal.Writer
	ss    int64
	start int64  // byte offset of the open run, -1 if none
	n     int64  // bytes in the open run
	zero  bool   // the open run is a discard
	data  []byte // the open run's bytes (a write)
	st    Stats
}

func (d *differ) add(off int64, sector []byte) error {
	zero := sector == nil
	if d.n > 0 && (off != d.start+d.n || zero != d.zero) {
		if err := d.flushRun(); err != nil {
			return err
		}
	}
	if d.n == 0 {
		d.start, d.zero, d.data = off, zero, d.data[:0]
	}
	d.n += d.ss
	if !zero {
		d.data = append(d.data, sector...)
	}
	return nil
}

func (d *differ) flushRun() error {
	if d.n == 0 {
		return nil
	}
	sector := uint64(d.start / d.ss)
	var err error
	if d.zero {
		err = d.w.Discard(sector, uint64(d.n/d.ss))
		d.st.Discarded += d.n
	} else {
		err = d.w.Write(sector, d.data, 0)
		d.st.Written += d.n
	}
	d.n = 0
	return err
}
