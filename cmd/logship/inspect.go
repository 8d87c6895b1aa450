package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/journal"
)

func init() {
	register(command{name: "inspect", summary: "print a journal's superblock, entries, marks and windows", run: runInspect})
}

// stopFlags are replay-log's positioning and stop conditions, shared by
// inspect --find and replay.
type stopFlags struct {
	startEntry int64
	startMark  string
	stop       journal.Stop
}

func (s *stopFlags) register(fs interface {
	Int64Var(*int64, string, int64, string)
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}, withStartMark bool) {
	fs.Int64Var(&s.startEntry, "start-entry", 0, "start at entry `N` (counting from 0)")
	if withStartMark {
		fs.StringVar(&s.startMark, "start-mark", "", "start just after the first mark labelled `LABEL` (takes precedence over --start-entry)")
	}
	fs.Int64Var(&s.stop.Limit, "limit", 0, "stop after `N` entries counted from the start position (the N-th is included)")
	fs.StringVar(&s.stop.EndMark, "end-mark", "", "stop at the mark labelled `LABEL` (exact match; the mark is included)")
	fs.BoolVar(&s.stop.NextFlush, "next-flush", false, "stop at the next entry with the FLUSH bit (included)")
	fs.BoolVar(&s.stop.NextFUA, "next-fua", false, "stop at the next entry with the FUA bit (included)")
}

// position moves r to the start position the flags ask for.
func (s *stopFlags) position(r *journal.Reader) error {
	if s.startMark != "" {
		_, err := r.SeekMark(s.startMark)
		return err
	}
	if s.startEntry < 0 || s.startEntry >= r.Len() {
		return fmt.Errorf("%w: start entry %d, the journal has %d entries", journal.ErrRange, s.startEntry, r.Len())
	}
	return r.SeekEntry(s.startEntry)
}

type entryJSON struct {
	Type      string `json:"type"`
	Index     int64  `json:"index"`
	Offset    int64  `json:"offset"`
	Sector    uint64 `json:"sector"`
	NrSectors uint64 `json:"sectors"`
	Flags     string `json:"flags"`
	Label     string `json:"label,omitempty"`
}

func runInspect(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "inspect", "JOURNAL [flags]",
		`Prints the superblock of a dm-log-writes journal (a log device or a file
holding one), then every entry (index, byte offset in the journal, sector,
sectors, flags, mark label) and the marks. Sectors are in units of the
journal's sector size. --windows prints the barrier windows instead of the
entries. --find walks to the entry that meets the stop condition and prints
it as replay-log --find does: INDEX@SECTOR, SECTOR being the journal sector
where the next entry starts; exit 1 if no entry meets it.

--start-entry, --start-mark, --limit, --end-mark, --next-flush and
--next-fua select what the listing and --windows show too: the entries from
the start to the one that meets the stop condition, included (with
--end-mark, --next-* count for nothing, as in replay-log). An --end-mark the
walk never meets is an error (exit 3) once the rest is printed.`)
	var sf stopFlags
	sf.register(fs, true)
	var (
		asJSON  = fs.Bool("json", false, "one JSON object per line")
		windows = fs.Bool("windows", false, "print the window summary instead of entries")
		find    = fs.Bool("find", false, "print the index of the entry that meets the stop condition (replay-log --find)")
		maxEnt  = fs.Int("window-entries", barrier.DefaultMaxEntries, "window cap in entries")
		maxB    = fs.String("window-bytes", sizeDefault(barrier.DefaultMaxBytes), "window cap in payload bytes")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one JOURNAL, got %d arguments", fs.NArg())
	}
	if err := sf.check(); err != nil {
		return err
	}
	j, err := openJournal(fs.Arg(0))
	if err != nil {
		return err
	}
	defer j.Close()
	out := bufio.NewWriterSize(e.stdout, 64<<10)
	defer out.Flush()
	r := j.r
	sb := r.Super()

	if *find {
		if err := sf.position(r); err != nil {
			return j.wrap(err)
		}
		if sf.stop.IsZero() {
			return usagef("--find needs a stop condition (--limit, --end-mark, --next-flush, --next-fua)")
		}
		for walked := int64(1); ; walked++ {
			ent, err := r.Next()
			if err == io.EOF {
				return checkFailed{"couldn't find entry"}
			}
			if err != nil {
				return j.wrap(err)
			}
			if sf.stop.Hit(ent, walked) {
				if *asJSON {
					return writeJSON(out, toEntryJSON(ent))
				}
				fmt.Fprintf(out, "%d@%d\n", ent.Index, ent.NextOffset()/int64(sb.SectorSize))
				return nil
			}
		}
	}

	if *asJSON {
		if err := writeJSON(out, map[string]any{"type": "super", "path": j.path, "version": journal.Version,
			"sector_size": sb.SectorSize, "entries": sb.NrEntries, "size": j.size}); err != nil {
			return err
		}
	} else {
		how := ""
		if j.compressed != "" {
			how = " (" + j.compressed + "-compressed file, decompressed)"
		}
		fmt.Fprintf(out, "journal %s: version %d, sector size %d, %d entries, %s%s\n",
			j.path, journal.Version, sb.SectorSize, sb.NrEntries, humanize.IBytes(uint64(j.size)), how)
	}

	var limits barrier.Limits
	limits.MaxEntries = *maxEnt
	if *maxEnt < 1 {
		return usagef("--window-entries %d: want at least 1", *maxEnt)
	}
	if *maxB != "" {
		n, err := humanize.ParseBytes(*maxB)
		if err != nil || n == 0 {
			return usagef("--window-bytes %q: want a size", *maxB)
		}
		limits.MaxBytes = int64(n)
	}
	// The selection: from the start position to the stop entry.
	if sf.startEntry != 0 || sf.startMark != "" {
		if err := sf.position(r); err != nil {
			return j.wrap(err)
		}
	}
	sel := &selection{r: r, stop: sf.stop}
	if *windows {
		err = inspectWindows(ctx, out, j, sel, limits, *asJSON)
	} else {
		err = inspectEntries(ctx, out, j, sel, *asJSON)
	}
	if err == nil && sf.stop.EndMark != "" && !sel.hit {
		out.Flush()
		return j.wrap(fmt.Errorf("%w: --end-mark %q", journal.ErrNoMark, sf.stop.EndMark))
	}
	return err
}

// selection walks the entries inspect shows: from the reader's position to
// the entry that meets stop, included, or the end.
type selection struct {
	r      *journal.Reader
	stop   journal.Stop
	walked int64
	hit    bool // stop was met
}

// All iterates over the selected entries, as journal.Reader.All does.
func (s *selection) All() func(yield func(journal.Entry, error) bool) {
	return func(yield func(journal.Entry, error) bool) {
		for !s.hit {
			e, err := s.r.Next()
			if err == io.EOF {
				return
			}
			if err == nil {
				s.walked++
				s.hit = s.stop.Hit(e, s.walked)
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// inspectEntries prints the selected entries, then their counts and marks.
func inspectEntries(ctx context.Context, out *bufio.Writer, j *journalFile, sel *selection, asJSON bool) error {

	var marks []journal.Entry
	var counts [6]int64 // writes, discards, flushes, fua, marks, metadata
	var bytes int64
	if !asJSON {
		fmt.Fprintf(out, "%10s %14s %12s %8s  %s\n", "index", "offset", "sector", "sectors", "flags")
	}
	for ent, err := range sel.All() {
		if err != nil {
			out.Flush()
			return j.wrap(err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if asJSON {
			if err := writeJSON(out, toEntryJSON(ent)); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(out, "%10d %14d %12d %8d  %s", ent.Index, ent.Offset, ent.Sector, ent.NrSectors, ent.Flags)
			if ent.IsMark() {
				fmt.Fprintf(out, " %q", ent.Label)
			}
			out.WriteByte('\n')
		}
		switch {
		case ent.IsMark():
			counts[4]++
			marks = append(marks, ent)
		case ent.IsDiscard():
			counts[1]++
		case ent.IsWrite():
			counts[0]++
			bytes += ent.PayloadLen()
		}
		if ent.Flags&journal.FlagFlush != 0 {
			counts[2]++
		}
		if ent.Flags&journal.FlagFUA != 0 {
			counts[3]++
		}
		if ent.Flags&journal.FlagMetadata != 0 {
			counts[5]++
		}
	}
	if asJSON {
		return nil
	}
	fmt.Fprintf(out, "\n%d writes (%s), %d discards, %d flushes, %d FUA, %d metadata, %d marks\n",
		counts[0], humanize.IBytes(uint64(bytes)), counts[1], counts[2], counts[3], counts[5], counts[4])
	for _, m := range marks {
		fmt.Fprintf(out, "mark %q at entry %d\n", m.Label, m.Index)
	}
	return nil
}

// inspectWindows prints the windows of the selected entries; the last one
// ends at the stop entry (or the journal's end).
func inspectWindows(ctx context.Context, out io.Writer, j *journalFile, sel *selection, l barrier.Limits, asJSON bool) error {
	if !asJSON {
		fmt.Fprintf(out, "%8s %10s %10s %8s %12s  %s\n", "window", "first", "last", "entries", "bytes", "closed by")
	}
	var n, total int64
	print := func(w *barrier.Window) error {
		n++
		total += w.Bytes
		if asJSON {
			return writeJSON(out, map[string]any{"type": "window", "seq": w.Seq, "first": w.First(), "last": w.Last(),
				"entries": len(w.Entries), "bytes": w.Bytes, "reason": w.Reason.String()})
		}
		_, err := fmt.Fprintf(out, "%8d %10d %10d %8d %12d  %s\n", w.Seq, w.First(), w.Last(), len(w.Entries), w.Bytes, w.Reason)
		return err
	}
	s := barrier.NewSplitter(l)
	for e, err := range sel.All() {
		if err != nil {
			return j.wrap(err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, w := range s.Add(e) {
			if err := print(w); err != nil {
				return err
			}
		}
	}
	if w := s.Close(); w != nil {
		if err := print(w); err != nil {
			return err
		}
	}
	if !asJSON {
		fmt.Fprintf(out, "\n%d windows, %s of payload\n", n, humanize.IBytes(uint64(total)))
	}
	return nil
}

func toEntryJSON(e journal.Entry) entryJSON {
	return entryJSON{Type: "entry", Index: e.Index, Offset: e.Offset, Sector: e.Sector, NrSectors: e.NrSectors, Flags: e.Flags.String(), Label: e.Label}
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}
