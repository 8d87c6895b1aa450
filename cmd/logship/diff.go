package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/snapdiff"
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
		chunkS = fs.String("chunk", sizeDefault(4<<20), "bytes read from each image at a time")
	)
	pf := addProgressFlags(fs, "print nothing on success (no progress either)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || *out == "" {
		return usagef("want OLD NEW -o DELTA")
	}
	if err := pf.check(); err != nil {
		return err
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
	var read atomic.Int64
	stop := pf.start(e, "diff", bytesUnit, func() (int64, int64, string) {
		return read.Load(), newD.Size(), "compared"
	})
	st, err := snapdiff.Diff(ctx, w, oldD, readCounter{newD, &read}, oldD.Size(), int64(chunk))
	stop()
	if err != nil {
		return err
	}
	for _, err := range []error{w.Flush(), w.Mark(*label), w.Close(), tmp.Sync(), tmp.Close(), os.Rename(tmp.Name(), *out)} {
		if err != nil {
			return fmt.Errorf("%s: %w", *out, err)
		}
	}
	if *pf.quiet {
		return nil
	}
	fmt.Fprintf(e.stderr, "%s: %d entries: %s written, %s discarded\n", *out, w.Entries(),
		humanize.IBytes(uint64(st.Written)), humanize.IBytes(uint64(st.Discarded)))
	return nil
}
