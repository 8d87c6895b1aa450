package replica

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

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
//	logship-window seq=S first=F next=N n=K synced=D xxh=H
//
// S is the window's sequence, [F, N) its source entry indexes, K the number
// of staging entries before the mark that belong to it and H the xxhash64
// of those entries (entryHash). D is the number of entries of this file
// that were durable (their fsync had returned) when the mark was appended:
// it lets a scan tell damage to entries that were durable from a torn tail
// (scan.go). Marks written before D existed lack "synced=D" and are read
// with D = 0. A window never spans two files. The superblock is rewritten
// before every fsync; after a crash, a window counts only if its mark is
// there and matches its entries, so a torn tail is recognized whatever the
// superblock says.
const (
	stagingPrefix  = "staging-"
	stagingSuffix  = ".log"
	beginLabel     = "logship-staging journal="
	windowPrefix   = "logship-window "
	windowFormat   = "logship-window seq=%d first=%d next=%d n=%d synced=%d xxh=%016x"
	windowFormatV1 = "logship-window seq=%d first=%d next=%d n=%d xxh=%016x"
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
	synced      int64 // entries of the file durable when the mark was appended
	sum         uint64
	v1          bool // the form without synced
}

func (m windowMark) String() string {
	if m.v1 {
		return fmt.Sprintf(windowFormatV1, m.seq, m.first, m.next, m.n, m.sum)
	}
	return fmt.Sprintf(windowFormat, m.seq, m.first, m.next, m.n, m.synced, m.sum)
}

// parseWindowMark parses a window mark's label; only the exact forms
// windowMark.String writes are accepted.
func parseWindowMark(label string) (windowMark, bool) {
	if !strings.HasPrefix(label, windowPrefix) {
		return windowMark{}, false
	}
	var m windowMark
	if _, err := fmt.Sscanf(label, windowFormat, &m.seq, &m.first, &m.next, &m.n, &m.synced, &m.sum); err != nil {
		m = windowMark{v1: true}
		if _, err := fmt.Sscanf(label, windowFormatV1, &m.seq, &m.first, &m.next, &m.n, &m.sum); err != nil {
			return windowMark{}, false
		}
	}
	if m.String() != label || m.first < 0 || m.next < m.first || m.n < 0 || m.synced < 0 {
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
	// synced is the number of entries of the current file durable as of
	// the last sync that returned (0 in a file not synced yet); each
	// window mark carries it (windowMark.synced).
	synced int64
	h      *entryHash
	err    error
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
	l.num, l.f, l.w, l.dirt, l.synced = num, f, w, true, 0
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
	m := windowMark{seq: win.seq, first: win.first, next: win.next, n: l.h.n, synced: l.synced, sum: l.h.sum()}
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
	n := int64(l.w.Entries())
	if err := unix.Fdatasync(int(l.f.Fd())); err != nil {
		return l.fail(ioErr("syncing", l.path(), os.NewSyscallError("fdatasync", err)))
	}
	if l.dirt {
		if err := syncDir(l.dir); err != nil {
			return l.fail(err)
		}
		l.dirt = false
	}
	l.synced = n
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
