package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
)

func init() {
	register(command{name: "diff", summary: "write a journal whose replay turns OLD into NEW (snapshot-diff)", run: runDiff})
}

func runDiff(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "diff", "OLD NEW -o DELTA [flags]",
		`Compares two images (files or block devices) of the same size and writes
DELTA, a dm-log-writes journal whose replay onto a copy of OLD yields NEW
exactly: the differing ranges as coalesced writes, ranges that became zero
as discards, then a FLUSH and a MARK (--mark). Test benches use it to turn
two snapshots into a replayable journal. Memory is bounded by --chunk.`)
	var (
		out    = fs.StringP("output", "o", "", "the journal to write (required)")
		ss     = fs.Int("sector-size", 4096, "journal sector size: the granularity of the comparison (512..65536, a power of two)")
		label  = fs.String("mark", "diff", "label of the mark at the end")
		chunkS = fs.String("chunk", "4MiB", "bytes read from each image at a time")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || *out == "" {
		return usagef("want OLD NEW -o DELTA")
	}
	if !journal.ValidSectorSize(*ss) {
		return usagef("--sector-size %d: want a power of two from 512 to 65536", *ss)
	}
	chunk, err := humanize.ParseBytes(*chunkS)
	if err != nil || chunk < uint64(*ss) {
		return usagef("--chunk %q: want a size of at least one sector", *chunkS)
	}
	chunk -= chunk % uint64(*ss)
	oldD, err := devio.Open(fs.Arg(0), devio.Options{})
	if err != nil {
		return err
	}
	defer oldD.Close()
	newD, err := devio.Open(fs.Arg(1), devio.Options{})
	if err != nil {
		return err
	}
	defer newD.Close()
	if oldD.Size() != newD.Size() {
		return fmt.Errorf("%s holds %d bytes and %s %d: diff needs images of the same size", fs.Arg(0), oldD.Size(), fs.Arg(1), newD.Size())
	}
	if oldD.Size()%int64(*ss) != 0 {
		return fmt.Errorf("%s: size %d is not a multiple of the %d-byte sector", fs.Arg(0), oldD.Size(), *ss)
	}
	// Write to a temporary file beside DELTA and rename it at the end, so
	// that a failed diff never leaves a half-written journal behind.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".logship-diff-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	w, err := journal.NewWriter(tmp, *ss)
	if err != nil {
		return err
	}
	d := differ{w: w, ss: int64(*ss)}
	a, b := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < oldD.Size(); off += int64(chunk) {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(chunk), oldD.Size()-off)
		if _, err := oldD.ReadAt(a[:n], off); err != nil && err != io.EOF {
			return err
		}
		if _, err := newD.ReadAt(b[:n], off); err != nil && err != io.EOF {
			return err
		}
		for s := int64(0); s < n; s += d.ss {
			x, y := a[s:s+d.ss], b[s:s+d.ss]
			switch {
			case bytes.Equal(x, y):
				err = d.flushRun()
			case isZero(y):
				err = d.add(off+s, nil)
			default:
				err = d.add(off+s, y)
			}
			if err != nil {
				return err
			}
		}
		if err := d.flushRun(); err != nil { // runs never span chunks: their data is reused
			return err
		}
	}
	for _, err := range []error{w.Flush(), w.Mark(*label), w.Close(), tmp.Sync(), tmp.Close(), os.Rename(tmp.Name(), *out)} {
		if err != nil {
			return fmt.Errorf("%s: %w", *out, err)
		}
	}
	fmt.Fprintf(e.stderr, "%s: %d entries: %s written, %s discarded\n", *out, w.Entries(),
		humanize.IBytes(uint64(d.written)), humanize.IBytes(uint64(d.discarded)))
	return nil
}

// differ coalesces consecutive differing sectors into one write (or one
// discard, for sectors that became zero).
type differ struct {
	w                  *journal.Writer
	ss                 int64
	start              int64  // byte offset of the open run, -1 if none
	n                  int64  // bytes in the open run
	zero               bool   // the open run is a discard
	data               []byte // the open run's bytes (a write)
	written, discarded int64
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
		d.discarded += d.n
	} else {
		err = d.w.Write(sector, d.data, 0)
		d.written += d.n
	}
	d.n = 0
	return err
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
