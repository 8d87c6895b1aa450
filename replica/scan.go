package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
)

// Scanning the staging logs after a crash (docs/architecture.md, "Torn
// tail or corruption").
//
// The walk from the checkpoint accepts windows while each is whole: its
// entries parse, its mark follows them and matches their count and
// checksum, and it comes next in sequence. The first thing that does not
// fit (a header that does not parse, an entry cut by the end of the file,
// a window whose mark does not match, entries after the last mark, a
// staging log that is not there) is the damage point: entry E of staging
// log N, at byte offset O. Everything from there on is in doubt; the
// question is whether it could be a crash's doing.
//
// A crash can only damage what was written after the last fsync that
// returned: the staging log is append-only and every file is new. So the
// damage is a torn tail unless something written later proves that entry
// E was durable before the crash. Window marks carry that proof: each
// says how many entries of its file were durable (synced=D) when it was
// appended. The damage is corruption when, anywhere after the damage
// point, the scan finds a window mark, in the same file with D > E, or in
// a later staging log with D ≥ 1 (a later file is synced only after every
// earlier one). Marks are found by looking at every 512-byte boundary
// after the damage point (framing may be lost there): a header with the
// MARK flag alone whose label parses as a window mark. The same look runs
// past the end the superblock counts, so a superblock whose count lost
// bits is caught too.
//
// A torn tail is recovered silently: the intact windows before it are
// replayed and the rest is dropped (none of it was acked). Corruption is
// a *StagingError: the task is not opened until an operator has decided
// (serve --truncate-staging, docs/production.md).

// segment is a run of staging entries to replay: [from, to) of file num,
// ending at position pos.
type segment struct {
	num      uint64
	from, to int64
	pos      control.Position
}

// stagingScan is what a walk of the staging logs from a checkpoint found.
type stagingScan struct {
	segments   []segment        // the intact windows, to replay in order
	pos        control.Position // the position after the last intact window
	sectorSize uint32           // of the staging logs (0 when none was read)
	windows    int64            // intact windows found
	stop       string           // where and why the walk ended
	// damage is where the walk ended when it ended on something other
	// than a clean end; corrupt is set when a later window mark proves
	// it is not a torn tail.
	damage  *damage
	corrupt *StagingError
}

// damage is the point where a walk of the staging logs stopped.
type damage struct {
	path   string // the staging log
	num    uint64 // its number
	entry  int64  // the first entry not accepted
	offset int64  // its byte offset
	why    string
}

func (d *damage) String() string {
	return fmt.Sprintf("%s: entry %d at byte offset %d: %s", filepath.Base(d.path), d.entry, d.offset, d.why)
}

// StagingError is a staging log damaged where a crash cannot have
// damaged it: entries that were durable (a window written after them
// says so) do not read back. It wraps ErrCorrupt. The task is not opened
// until an operator truncates the log (TruncateStaging) or restores it.
type StagingError struct {
	Path   string // the damaged staging log
	Entry  int64  // the first entry that does not read back
	Offset int64  // its byte offset in Path
	Why    string // what is wrong there
	// Proof is the window mark found after the damage that shows the
	// entry was durable.
	Proof string
}

func (e *StagingError) Error() string {
	return fmt.Sprintf("%v: staging log %s is damaged at entry %d (byte offset %d): %s; not a torn tail: %s. "+
		"The task stays closed until an operator decides (docs/production.md: logship serve --truncate-staging)",
		ErrCorrupt, e.Path, e.Entry, e.Offset, e.Why, e.Proof)
}

func (e *StagingError) Unwrap() error { return ErrCorrupt }

// scanStaging walks the staging logs of dir from checkpoint cp, whose
// position is start, and finds the windows that are intact. It reads
// payloads only to check them and keeps none. A torn tail ends the walk
// (sc.damage says where); damage that a later window mark shows was
// durable is a *StagingError; a window out of sequence is ErrCorrupt, and
// so is an I/O error.
func scanStaging(dir string, cp Checkpoint, start control.Position) (stagingScan, error) {
	sc, err := scanStagingAll(dir, cp, start)
	if err == nil && sc.corrupt != nil {
		err = sc.corrupt
	}
	return sc, err
}

// scanStagingAll is scanStaging that reports corruption in sc.corrupt
// instead of failing (TruncateStaging).
func scanStagingAll(dir string, cp Checkpoint, start control.Position) (stagingScan, error) {
	sc := stagingScan{pos: start}
	if cp.Staging == 0 {
		sc.stop = "no checkpoint in a staging log"
		return sc, nil
	}
	h := newEntryHash()
	buf := make([]byte, 1<<20)
	for num := cp.Staging; ; num++ {
		p := filepath.Join(dir, stagingName(num))
		more, err := sc.scanFile(p, num, cp, h, buf)
		if err != nil {
			return sc, err
		}
		if more {
			continue
		}
		if d := sc.damage; d != nil {
			sc.stop = d.String()
			proof, err := findProof(dir, d, buf)
			if err != nil {
				return sc, err
			}
			if proof != "" {
				sc.corrupt = &StagingError{Path: d.path, Entry: d.entry, Offset: d.offset, Why: d.why, Proof: proof}
			}
		}
		return sc, nil
	}
}

// scanFile walks one staging log; more says whether the walk goes on with
// the next file. Where it stops, it sets sc.damage (a missing file is
// damage at its entry 0 too: a later file may prove it was durable).
func (sc *stagingScan) scanFile(p string, num uint64, cp Checkpoint, h *entryHash, buf []byte) (more bool, err error) {
	stop := func(entry, offset int64, format string, args ...any) (bool, error) {
		sc.damage = &damage{path: p, num: num, entry: entry, offset: offset, why: fmt.Sprintf(format, args...)}
		return false, nil
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return stop(0, 0, "no such staging log")
	}
	if err != nil {
		return false, ioErr("opening", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, ioErr("stat", p, err)
	}
	// The superblock is rewritten before each fsync: after a crash it may
	// count entries whose data never made it.
	r, err := journal.NewReaderClamped(f, fi.Size())
	if err != nil {
		return stop(0, 0, "%v", err)
	}
	if sc.sectorSize != 0 && uint32(r.SectorSize()) != sc.sectorSize {
		return false, fmt.Errorf("%w: %s has %d-byte sectors, the staging log before it %d", ErrCorrupt, p, r.SectorSize(), sc.sectorSize)
	}
	e, err := r.Next()
	if err != nil || !e.IsMark() || !strings.HasPrefix(e.Label, beginLabel) {
		return stop(0, int64(r.SectorSize()), "no %q mark at entry 0 (%v)", beginLabel, err)
	}
	sc.sectorSize = uint32(r.SectorSize())
	jid := strings.TrimPrefix(e.Label, beginLabel)
	if num == cp.Staging && cp.Entry > 1 {
		if err := r.SeekEntry(cp.Entry); err != nil {
			return false, fmt.Errorf("%w: %s: checkpoint at entry %d: %w", ErrCorrupt, p, cp.Entry, err)
		}
	}
	seg := segment{num: num, from: r.Index(), to: r.Index()}
	defer func() {
		if seg.to > seg.from {
			sc.segments = append(sc.segments, seg)
		}
	}()
	h.reset()
	winOff := r.Offset() // byte offset of the window being read
	for {
		e, err := r.Next()
		if err == io.EOF {
			if h.n > 0 {
				return stop(seg.to, winOff, "%d entries after the last window's mark, without a mark", h.n)
			}
			// A clean end where the superblock says; past it there
			// should be nothing.
			d := &damage{path: p, num: num, entry: r.Index(), offset: r.Offset(), why: "the superblock counts no more entries, but window marks follow"}
			proof, err := findMark(p, d.offset, func(m windowMark) bool { return m.synced > d.entry }, buf)
			if err != nil {
				return false, err
			}
			if proof != "" {
				sc.damage = d
				return false, nil
			}
			return true, nil
		}
		if err != nil {
			var ee *journal.EntryError
			if !errors.As(err, &ee) || !(errors.Is(err, journal.ErrCorrupt) || errors.Is(err, io.ErrUnexpectedEOF)) {
				return false, ioErr("reading", p, err)
			}
			if h.n > 0 {
				return stop(seg.to, winOff, "the window from here is cut short: %v", err)
			}
			return stop(ee.Index, ee.Offset, "%v", ee.Err)
		}
		m, isWindow := parseWindowMark(e.Label)
		isWindow = isWindow && e.Flags == journal.FlagMark
		if isWindow && (m.n != h.n || m.sum != h.sum()) {
			return stop(seg.to, winOff, "window %d (entries %d-%d of the source) does not match its mark at entry %d: %d entries with checksum %016x, the mark says %d with %016x",
				m.seq, m.first, m.next-1, e.Index, h.n, h.sum(), m.n, m.sum)
		}
		if isWindow {
			want := control.Position{Journal: jid, NextEntry: sc.pos.NextEntry, NextWindow: sc.pos.NextWindow}
			if jid != sc.pos.Journal {
				want.NextEntry = 0
			}
			if m.seq != want.NextWindow || m.first != want.NextEntry {
				return false, fmt.Errorf("%w: %s entry %d: window %d of entries %d-%d, expected window %d at entry %d of journal %s",
					ErrCorrupt, p, e.Index, m.seq, m.first, m.next-1, want.NextWindow, want.NextEntry, jid)
			}
			sc.pos = control.Position{Journal: jid, NextEntry: m.next, NextWindow: m.seq + 1}
			sc.windows++
			seg.to, seg.pos = r.Index(), sc.pos
			winOff = r.Offset()
			h.reset()
			continue
		}
		h.header(e)
		if n := e.PayloadLen(); n > 0 {
			if _, err := io.CopyBuffer(h.d, io.NewSectionReader(f, e.PayloadOffset(), n), buf); err != nil {
				return false, ioErr("reading", p, err)
			}
		}
	}
}

// proofStep is the alignment at which findProof looks for window marks:
// every sector size is a multiple of it.
const proofStep = journal.MinSectorSize

// findProof looks, after damage point d, for a window mark that was
// appended once entry d.entry of its staging log was durable: in the same
// file after d.offset with synced > d.entry, or in any later staging log
// of the directory with synced ≥ 1. It returns a description of the first
// one found, or "".
func findProof(dir string, d *damage, buf []byte) (string, error) {
	if p, err := findMark(d.path, d.offset+proofStep, func(m windowMark) bool { return m.synced > d.entry }, buf); p != "" || err != nil {
		return p, err
	}
	ns, err := stagingFiles(dir)
	if err != nil {
		return "", err
	}
	for _, n := range ns {
		if n <= d.num {
			continue
		}
		if p, err := findMark(filepath.Join(dir, stagingName(n)), proofStep, func(m windowMark) bool { return m.synced >= 1 }, buf); p != "" || err != nil {
			return p, err
		}
	}
	return "", nil
}

// findMark looks at every proofStep boundary of the file at p from byte
// offset from on for the header of a window mark for which ok holds, and
// describes the first one.
func findMark(p string, from int64, ok func(windowMark) bool, buf []byte) (string, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", ioErr("opening", p, err)
	}
	defer f.Close()
	from = (from + proofStep - 1) / proofStep * proofStep
	for base := from; ; {
		n, err := f.ReadAt(buf, base)
		if n < proofStep {
			if err != nil && !errors.Is(err, io.EOF) {
				return "", ioErr("reading", p, err)
			}
			return "", nil
		}
		last := n - proofStep // the last header that fits in what was read
		for o := 0; o <= last; o += proofStep {
			if m, ok2 := markAt(buf[o : o+proofStep]); ok2 && ok(m) {
				return fmt.Sprintf("the mark of window %d at byte offset %d of %s was written when %d of its entries were durable",
					m.seq, base+int64(o), filepath.Base(p), m.synced), nil
			}
		}
		base += int64(last + proofStep)
	}
}

// markAt parses h as the header of a window mark: the MARK flag alone and
// a label that parses.
func markAt(h []byte) (windowMark, bool) {
	const flagsAt, lenAt, labelAt = 16, 24, 32 // the entry header's layout (journal/format.go)
	if journal.Flags(binary.LittleEndian.Uint64(h[flagsAt:])) != journal.FlagMark {
		return windowMark{}, false
	}
	n := binary.LittleEndian.Uint64(h[lenAt:])
	if n > uint64(len(h)-labelAt) {
		return windowMark{}, false
	}
	label := h[labelAt : labelAt+int(n)]
	if i := strings.IndexByte(string(label), 0); i >= 0 {
		label = label[:i]
	}
	return parseWindowMark(string(label))
}

// Truncated says what TruncateStaging did.
type Truncated struct {
	// Damage is the StagingError that kept the task closed (nil when the
	// staging logs had none: nothing was changed).
	Damage *StagingError
	// Kept lists the files moved aside for inspection (names in the
	// task's directory); the server never reads them again.
	Kept []string
	// Windows is the number of intact windows left before the damage,
	// and Position where the task will stand once recovered.
	Windows  int64
	Position control.Position
}

// damagedPrefix names the staging logs TruncateStaging moves aside.
const damagedPrefix = "damaged-"

// TruncateStaging is the operator's way out of a StagingError for task
// name in the server directory dir, with no server running on it (it
// takes the directory's lock): it moves the damaged staging log and every
// later one aside, as DIR/TASK/damaged-staging-NNNNNN.log, for
// inspection (logship inspect reads them), and puts back a copy of the
// damaged log cut before the damaged window. The next open of the task
// recovers the windows before the damage; the source resends the rest
// from there, if it still has them. Windows after the damage that were
// acked are lost to the image unless the source resends them.
func TruncateStaging(dir, name string) (Truncated, error) {
	if err := CheckTask(name); err != nil {
		return Truncated{}, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return Truncated{}, err
	}
	defer lock.Close()
	tdir := filepath.Join(dir, name)
	st, err := loadState(tdir)
	if err != nil {
		return Truncated{}, err
	}
	sc, err := scanStagingAll(tdir, st.Checkpoint, st.Durable)
	if err != nil {
		return Truncated{}, err
	}
	res := Truncated{Damage: sc.corrupt, Windows: sc.windows, Position: sc.pos}
	if sc.corrupt == nil {
		return res, nil
	}
	d := sc.damage
	ns, err := stagingFiles(tdir)
	if err != nil {
		return res, err
	}
	for _, n := range ns {
		if n < d.num {
			continue
		}
		from := filepath.Join(tdir, stagingName(n))
		to := filepath.Join(tdir, damagedPrefix+stagingName(n))
		if _, err := os.Stat(to); err == nil {
			return res, fmt.Errorf("%s exists already: move it away first", to)
		}
		if err := os.Rename(from, to); err != nil {
			return res, ioErr("renaming", from, err)
		}
		res.Kept = append(res.Kept, filepath.Base(to))
		if n == d.num {
			if err := copyPrefix(to, from, d.offset, d.entry); err != nil {
				return res, err
			}
		}
	}
	return res, syncDir(tdir)
}

// copyPrefix writes to dst the first size bytes of the staging log src,
// with a superblock that counts entries entries, durably. A damaged first
// sector (size 0) leaves no copy.
func copyPrefix(src, dst string, size, entries int64) error {
	in, err := os.Open(src)
	if err != nil {
		return ioErr("opening", src, err)
	}
	defer in.Close()
	sb := make([]byte, journal.MinSectorSize)
	if _, err := in.ReadAt(sb, 0); err != nil {
		return ioErr("reading", src, err)
	}
	s, err := journal.ParseSuper(sb)
	if err != nil || size < int64(s.SectorSize) {
		return nil // nothing of it can be kept
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return ioErr("creating", dst, err)
	}
	_, err = io.Copy(out, io.NewSectionReader(in, 0, size))
	if err == nil {
		s.NrEntries = uint64(entries)
		var b []byte
		if b, err = s.AppendBinary(nil); err == nil {
			_, err = out.WriteAt(b, 0)
		}
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ioErr("writing", dst, err)
	}
	return nil
}
