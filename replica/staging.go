package replica

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
)

// The staging log (group commit) is a series of journals in the
// dm-log-writes format, DIR/TASK/staging-NNNNNN.log, numbered from 1. Each
// starts with a mark "logship-staging journal=ID" naming the source
// journal its windows belong to; then come windows, each as its entries
// (one per DATA frame, as received) followed by a mark
//
//	logship-window seq=S first=F next=N n=K xxh=H
//
// S is the window's sequence, [F, N) its source entry indexes, K the number
// of staging entries before the mark that belong to it and H the xxhash64
// of those entries (entryHash). A window never spans two files. The
// superblock is rewritten before every fsync; after a crash, a window
// counts only if its mark is there and matches its entries, so a torn tail
// is recognized whatever the superblock says.
const (
	stagingPrefix = "staging-"
	stagingSuffix = ".log"
	beginLabel    = "logship-staging journal="
	windowPrefix  = "logship-window "
	windowFormat  = "logship-window seq=%d first=%d next=%d n=%d xxh=%016x"
)

func stagingName(n uint64) string { return fmt.Sprintf("%s%06d%s", stagingPrefix, n, stagingSuffix) }

func parseStagingName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, stagingPrefix)
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, stagingSuffix); !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || stagingName(n) != name {
		return 0, false
	}
	return n, true
}

// stagingFiles lists the numbers of the staging logs in dir, in order.
func stagingFiles(dir string) ([]uint64, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, ioErr("listing", dir, err)
	}
	var ns []uint64
	for _, de := range des {
		if n, ok := parseStagingName(de.Name()); ok {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// removeStaging removes the staging logs of dir numbered below before
// (all of them when before is 0).
func removeStaging(dir string, before uint64) error {
	ns, err := stagingFiles(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, n := range ns {
		if before != 0 && n >= before {
			break
		}
		p := filepath.Join(dir, stagingName(n))
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return ioErr("removing", p, err)
		}
		removed = true
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

// windowMark is the label of the mark that closes a window in the staging
// log.
type windowMark struct {
	seq         uint64
	first, next int64
	n           int64
	sum         uint64
}

func (m windowMark) String() string {
	return fmt.Sprintf(windowFormat, m.seq, m.first, m.next, m.n, m.sum)
}

// parseWindowMark parses a window mark's label; only the exact form
// windowMark.String writes is accepted.
func parseWindowMark(label string) (windowMark, bool) {
	if !strings.HasPrefix(label, windowPrefix) {
		return windowMark{}, false
	}
	var m windowMark
	if _, err := fmt.Sscanf(label, windowFormat, &m.seq, &m.first, &m.next, &m.n, &m.sum); err != nil {
		return windowMark{}, false
	}
	if m.String() != label || m.first < 0 || m.next < m.first || m.n < 0 {
		return windowMark{}, false
	}
	return m, true
}

// stagingLog appends windows to the staging logs of a task. It is used by
// one goroutine (the committer). Errors are sticky.
type stagingLog struct {
	dir     string
	journal string // the source journal of the windows
	ss      int    // sector size
	rotate  int64  // start a new file once one holds this many bytes

	num  uint64          // current file number
	f    *os.File        // current file
	w    *journal.Writer // over f
	done []*os.File      // files rotated out since the last sync
	dirt bool            // a file was created since the last sync
	h    *entryHash
	err  error
}

// createStaging starts staging log number num in dir for windows of the
// given journal and makes it durable (file, first mark, directory entry).
func createStaging(dir string, num uint64, journalID string, sectorSize int, rotate int64) (*stagingLog, error) {
	l := &stagingLog{dir: dir, journal: journalID, ss: sectorSize, rotate: rotate, h: newEntryHash()}
	if err := l.open(num); err != nil {
		return nil, err
	}
	if err := l.sync(); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *stagingLog) fail(err error) error {
	if l.err == nil {
		l.err = err
	}
	return l.err
}

func (l *stagingLog) path() string { return filepath.Join(l.dir, stagingName(l.num)) }

func (l *stagingLog) open(num uint64) error {
	p := filepath.Join(l.dir, stagingName(num))
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return l.fail(ioErr("creating", p, err))
	}
	w, err := journal.NewWriter(f, l.ss)
	if err == nil {
		err = w.Mark(beginLabel + l.journal)
	}
	if err != nil {
		f.Close()
		return l.fail(ioErr("starting", p, err))
	}
	l.num, l.f, l.w, l.dirt = num, f, w, true
	return nil
}

// append adds a window and its closing mark, rotating to a new file first
// when the current one is full. Nothing is durable before sync.
func (l *stagingLog) append(win *window) error {
	if l.err != nil {
		return l.err
	}
	if l.w.Size() >= l.rotate && l.w.Entries() > 1 {
		if err := l.w.Close(); err != nil {
			return l.fail(ioErr("closing", l.path(), err))
		}
		l.done = append(l.done, l.f)
		if err := l.open(l.num + 1); err != nil {
			return err
		}
	}
	l.h.reset()
	for i, e := range win.entries {
		l.h.header(e)
		l.h.payload(win.data[i])
		if err := l.w.Append(e, win.data[i]); err != nil {
			return l.fail(ioErr("appending to", l.path(), err))
		}
	}
	m := windowMark{seq: win.seq, first: win.first, next: win.next, n: l.h.n, sum: l.h.sum()}
	if err := l.w.Mark(m.String()); err != nil {
		return l.fail(ioErr("appending to", l.path(), err))
	}
	win.stagingFile, win.stagingNext = l.num, int64(l.w.Entries())
	return nil
}

// sync makes everything appended durable: files rotated out, the current
// file with its superblock, and the directory when a file was created.
func (l *stagingLog) sync() error {
	if l.err != nil {
		return l.err
	}
	for len(l.done) > 0 {
		f := l.done[0]
		err := unix.Fdatasync(int(f.Fd()))
		f.Close()
		l.done = l.done[1:]
		if err != nil {
			return l.fail(ioErr("syncing", f.Name(), os.NewSyscallError("fdatasync", err)))
		}
	}
	if err := l.w.WriteSuper(); err != nil {
		return l.fail(ioErr("writing the superblock of", l.path(), err))
	}
	if err := unix.Fdatasync(int(l.f.Fd())); err != nil {
		return l.fail(ioErr("syncing", l.path(), os.NewSyscallError("fdatasync", err)))
	}
	if l.dirt {
		if err := syncDir(l.dir); err != nil {
			return l.fail(err)
		}
		l.dirt = false
	}
	return nil
}

// close closes the files. What was not synced may or may not be there.
func (l *stagingLog) close() {
	for _, f := range l.done {
		f.Close()
	}
	l.done = nil
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	l.fail(errors.New("replica: staging log closed"))
}

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
}

// scanStaging walks the staging logs of dir from checkpoint cp, whose
// position is start, and finds the windows that are intact: closed by
// their mark, with the right entry count and checksum, in sequence. It
// reads payloads only to check them and keeps none. A torn tail (a cut
// entry, a missing or mismatched mark, a file that is not there) ends the
// walk; a window out of sequence is ErrCorrupt, and so is an I/O error.
func scanStaging(dir string, cp Checkpoint, start control.Position) (stagingScan, error) {
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
		if err != nil || !more {
			return sc, err
		}
	}
}

// scanFile walks one staging log; more says whether the walk goes on with
// the next file.
func (sc *stagingScan) scanFile(p string, num uint64, cp Checkpoint, h *entryHash, buf []byte) (more bool, err error) {
	name := filepath.Base(p)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		sc.stop = "no " + name
		return false, nil
	}
	if err != nil {
		return false, ioErr("opening", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, ioErr("stat", p, err)
	}
	r, err := journal.NewReader(f, fi.Size())
	if err != nil {
		sc.stop = fmt.Sprintf("%s: %v", name, err)
		return false, nil
	}
	if sc.sectorSize != 0 && uint32(r.SectorSize()) != sc.sectorSize {
		return false, fmt.Errorf("%w: %s has %d-byte sectors, the staging log before it %d", ErrCorrupt, p, r.SectorSize(), sc.sectorSize)
	}
	e, err := r.Next()
	if err != nil || !e.IsMark() || !strings.HasPrefix(e.Label, beginLabel) {
		sc.stop = fmt.Sprintf("%s: no %q mark at entry 0 (%v)", name, beginLabel, err)
		return false, nil
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
	for {
		e, err := r.Next()
		if err == io.EOF {
			if h.n > 0 {
				sc.stop = fmt.Sprintf("%s: ends inside a window (%d entries after entry %d)", name, h.n, seg.to)
				return false, nil
			}
			return true, nil
		}
		if err != nil {
			var ee *journal.EntryError
			if !errors.As(err, &ee) || errors.Is(err, journal.ErrCorrupt) || errors.Is(err, io.ErrUnexpectedEOF) {
				sc.stop = fmt.Sprintf("%s: %v", name, err)
				return false, nil
			}
			return false, ioErr("reading", p, err)
		}
		if m, ok := parseWindowMark(e.Label); ok && e.IsMark() && m.n == h.n && m.sum == h.sum() {
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
