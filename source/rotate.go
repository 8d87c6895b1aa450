package source

// Log rotation: the kernel's log is linear and stops logging when it is
// full (logging_disabled), so a long-running capture swaps the target's log
// device for a fresh one now and then. The target keeps its data device;
// only its table is reloaded, and the old table's destructor writes the old
// log's end mark before the swap returns. Each log then starts with a
// rotation mark naming its place in the sequence, which orders the logs
// for the Follower and makes each one its own journal (see JournalID).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
)

// LogLabelPrefix begins the label of a rotation mark:
// "logship-log.SEQ.NONCE", SEQ the log's place in the rotation (decimal,
// from 1; a log without such a mark is 0), NONCE 16 random hex digits.
const LogLabelPrefix = "logship-log."

// LogLabel returns a new rotation mark label for the seq-th log.
func LogLabel(seq uint64) string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s%d.%s", LogLabelPrefix, seq, hex.EncodeToString(b[:]))
}

// ParseLogLabel returns the sequence number in a rotation mark label.
func ParseLogLabel(label string) (seq uint64, ok bool) {
	rest, ok := strings.CutPrefix(label, LogLabelPrefix)
	if !ok {
		return 0, false
	}
	n, nonce, ok := strings.Cut(rest, ".")
	if !ok || nonce == "" {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil && seq > 0
}

// isLogMark reports whether e is a rotation mark.
func isLogMark(e journal.Entry) bool {
	if !e.IsMark() {
		return false
	}
	_, ok := ParseLogLabel(e.Label)
	return ok
}

// logMarkScan bounds how far into a log ScanLog looks for its rotation
// mark: the writes queued while the target was suspended are logged
// before it.
const (
	logMarkScanEntries = 1 << 16
	logMarkScanBytes   = 256 << 20
)

// LogInfo is what a log device holds, as ScanLog found it.
type LogInfo struct {
	Path string
	// Blank: no valid superblock (a zeroed log, or one the kernel has not
	// written a superblock to yet).
	Blank bool
	// Entries is the superblock's count.
	Entries int64
	// Seq is the log's place in the rotation (its rotation mark), 0 when
	// it carries none; Label is that mark's label.
	Seq   uint64
	Label string
	// ID is the journal's identity (JournalID), "" if Blank.
	ID string
}

// ScanLog reads what the log at path holds: superblock, rotation mark,
// identity. A block device is read with O_DIRECT.
func ScanLog(path string) (LogInfo, error) {
	info := LogInfo{Path: path}
	j, err := openJournal(path, false)
	if err != nil {
		return info, err
	}
	defer j.Close()
	r, err := journal.NewReader(j.r, j.dev.Size())
	if err != nil {
		if errors.Is(err, journal.ErrFormat) || errors.Is(err, journal.ErrCorrupt) {
			info.Blank = true
			return info, nil
		}
		return info, j.wrap(err)
	}
	info.Entries = r.Len()
	if info.Entries == 0 {
		info.Blank = true
		return info, nil
	}
	for i := int64(0); i < logMarkScanEntries; i++ {
		e, err := r.NextHeader()
		if err == io.EOF || err == nil && e.Offset > logMarkScanBytes {
			break
		}
		if err != nil {
			return info, j.wrap(err)
		}
		if seq, ok := ParseLogLabel(e.Label); ok && e.IsMark() {
			info.Seq, info.Label = seq, e.Label
			break
		}
	}
	if info.ID, _, err = IdentifyReader(j.r, j.dev.Size()); err != nil {
		return info, j.wrap(err)
	}
	return info, nil
}

// rotateDM is what Rotate needs of the device-mapper: devio in
// production, a fake in tests.
type rotateDM interface {
	Table(name string) ([]devio.DMTarget, error)
	Reload(name string, targets []devio.DMTarget) error
	Mark(name, label string) error
}

type devioRotateDM struct{}

func (devioRotateDM) Table(name string) ([]devio.DMTarget, error) { return devio.DMTable(name) }
func (devioRotateDM) Reload(name string, ts []devio.DMTarget) error {
	return devio.DMReload(name, ts)
}
func (devioRotateDM) Mark(name, label string) error { return devio.Mark(name, label) }

// RotateConfig configures Rotate.
type RotateConfig struct {
	// DMName names the device-mapper device of the log-writes target.
	DMName string
	// NextLog is the block device to log to from now on. Its start is
	// zeroed (the kernel writes no superblock until the first FUA or
	// mark, so an old one would be read).
	NextLog string
	// Check, if set, is asked before NextLog is overwritten, with what it
	// holds and what the current log holds; an error refuses the
	// rotation (nothing changed). Use it to make sure that NextLog's
	// journal has been shipped (see Follower and `logship rotate`).
	Check func(next, current LogInfo) error
	// Reuse allows NextLog to be the current log (zeroed and started
	// again): only for a resync, where the current log's content is no
	// longer needed.
	Reuse bool
	// ZeroBytes is how much of NextLog's start is zeroed (1 MiB if 0,
	// never more than the device).
	ZeroBytes int64
	// Log receives what happens (slog.Default() if nil).
	Log *slog.Logger

	dm rotateDM // devio if nil
}

// RotateResult says what Rotate did.
type RotateResult struct {
	DMName string
	// Data is the data device, Previous the log the target used before
	// (paths under /dev, or major:minor when no node was found).
	Data, Previous string
	// PreviousSeq and Seq are the old and the new log's places in the
	// rotation; Label the new log's rotation mark.
	PreviousSeq, Seq uint64
	Next, Label      string
	Elapsed          time.Duration // from the table load to the mark
}

// Sentinel errors of Rotate.
var (
	// ErrNotLogWrites: the device-mapper device is not a single
	// log-writes target.
	ErrNotLogWrites = errors.New("source: not a log-writes target")
	// ErrSameLog: the next log is the target's data device or its
	// current log.
	ErrSameLog = errors.New("source: the next log is in use by the target")
)

// Rotate swaps the log device of the log-writes target DMName for
// NextLog: it zeroes NextLog's start, loads a table with NextLog as the
// log and swaps it in (suspend, resume: the file system on the device is
// frozen meanwhile, and the old target writes its end mark to the old log
// as it is torn down), then sends the rotation mark
// "logship-log.SEQ.NONCE" so that the new log is identified and ordered at
// once. A Follower given both logs drains the old one to its end mark and
// goes on with the new one.
func Rotate(ctx context.Context, cfg RotateConfig) (RotateResult, error) {
	res := RotateResult{DMName: cfg.DMName, Next: cfg.NextLog}
	dm := cfg.dm
	if dm == nil {
		dm = devioRotateDM{}
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if cfg.ZeroBytes <= 0 {
		cfg.ZeroBytes = 1 << 20
	}
	if err := devio.CheckDMName(cfg.DMName); err != nil {
		return res, err
	}
	unlock, err := lockRotation(ctx, cfg.DMName)
	if err != nil {
		return res, err
	}
	defer unlock()
	t, err := logWritesTable(dm, cfg.DMName)
	if err != nil {
		return res, err
	}
	dataDev, curDev := t.data, t.log
	res.Data, res.Previous = devPath(dataDev), devPath(curDev)
	next, err := blockDev(cfg.NextLog)
	if err != nil {
		return res, err
	}
	switch {
	case next == dataDev:
		return res, fmt.Errorf("%w: %s is the data device of %s", ErrSameLog, cfg.NextLog, cfg.DMName)
	case next == curDev && !cfg.Reuse:
		return res, fmt.Errorf("%w: %s is the log %s writes now", ErrSameLog, cfg.NextLog, cfg.DMName)
	}
	if nl, dl := logicalBlockSize(next), logicalBlockSize(dataDev); nl > 0 && dl > 0 && nl > dl {
		return res, fmt.Errorf("source: %s has %d-byte logical blocks, more than the %d of the data device: the target would stop logging at the first write", cfg.NextLog, nl, dl)
	}
	cur, err := ScanLog(res.Previous)
	if err != nil {
		return res, fmt.Errorf("source: reading the current log %s of %s: %w", res.Previous, cfg.DMName, err)
	}
	res.PreviousSeq, res.Seq = cur.Seq, cur.Seq+1
	if cfg.Check != nil {
		nextInfo, err := ScanLog(cfg.NextLog)
		if err != nil {
			return res, fmt.Errorf("source: reading the next log %s: %w", cfg.NextLog, err)
		}
		if err := cfg.Check(nextInfo, cur); err != nil {
			return res, err
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := zeroStart(cfg.NextLog, cfg.ZeroBytes); err != nil {
		return res, err
	}
	res.Label = LogLabel(res.Seq)
	start := time.Now()
	targets := []devio.DMTarget{{Start: 0, Length: t.length, Type: "log-writes",
		Status: fmt.Sprintf("%d:%d %d:%d", unix.Major(dataDev), unix.Minor(dataDev), unix.Major(next), unix.Minor(next))}}
	if err := dm.Reload(cfg.DMName, targets); err != nil {
		return res, fmt.Errorf("source: swapping the log of %s for %s: %w", cfg.DMName, cfg.NextLog, err)
	}
	// The mark right away: until it is logged the new log has no
	// superblock. Retry briefly: the device was just resumed.
	for i := 0; ; i++ {
		err = dm.Mark(cfg.DMName, res.Label)
		if err == nil || i == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.Elapsed = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("source: %s now logs to %s, but its rotation mark failed (a Follower will not find the new log): %w", cfg.DMName, cfg.NextLog, err)
	}
	log.Info("rotated the log", "device", cfg.DMName, "from", res.Previous, "from_seq", res.PreviousSeq,
		"to", cfg.NextLog, "seq", res.Seq, "mark", res.Label, "took", res.Elapsed.Round(time.Microsecond))
	return res, nil
}

// RotateLockDir holds the lock files that serialize the rotations of a
// target (ship --rotate-at and logship rotate may both rotate it):
// RotateLockDir/rotate-NAME.lock, flocked for the whole rotation.
var RotateLockDir = "/run/logship"

// lockRotation takes the rotation lock of the target name.
func lockRotation(ctx context.Context, name string) (unlock func(), err error) {
	if err := os.MkdirAll(RotateLockDir, 0o755); err != nil {
		return nil, fmt.Errorf("source: rotation lock: %w", err)
	}
	p := filepath.Join(RotateLockDir, "rotate-"+name+".lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("source: rotation lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("source: rotation lock %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("source: waiting for the rotation lock %s: %w", p, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logWrites is the table of a log-writes target.
type logWrites struct {
	length    uint64 // sectors
	data, log uint64 // devices
}

// logWritesTable reads the table of name, which must be one log-writes
// target.
func logWritesTable(dm rotateDM, name string) (logWrites, error) {
	ts, err := dm.Table(name)
	if err != nil {
		return logWrites{}, err
	}
	if len(ts) != 1 || ts[0].Type != "log-writes" {
		return logWrites{}, fmt.Errorf("%w: %s has %d targets (%+v)", ErrNotLogWrites, name, len(ts), ts)
	}
	f := strings.Fields(ts[0].Status)
	if len(f) < 2 {
		return logWrites{}, fmt.Errorf("%w: %s: table parameters %q", ErrNotLogWrites, name, ts[0].Status)
	}
	data, err := parseDev(f[0])
	if err == nil {
		var lg uint64
		if lg, err = parseDev(f[1]); err == nil {
			return logWrites{length: ts[0].Length, data: data, log: lg}, nil
		}
	}
	return logWrites{}, fmt.Errorf("%w: %s: table parameters %q: %v", ErrNotLogWrites, name, ts[0].Status, err)
}

// parseDev reads a device as the kernel prints it in a table
// ("major:minor"), or a path to a block device.
func parseDev(s string) (uint64, error) {
	if ma, mi, ok := strings.Cut(s, ":"); ok {
		a, err1 := strconv.ParseUint(ma, 10, 32)
		b, err2 := strconv.ParseUint(mi, 10, 32)
		if err1 == nil && err2 == nil {
			return unix.Mkdev(uint32(a), uint32(b)), nil
		}
	}
	return blockDev(s)
}

// blockDev returns the device number of the block device at path.
func blockDev(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, fmt.Errorf("source: %s is not a block device", path)
	}
	return st.Rdev, nil
}

// devPath returns /dev/NAME for a device number (from sysfs), or
// "major:minor" when it has no node there.
func devPath(dev uint64) string {
	mm := fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
	b, err := os.ReadFile(filepath.Join("/sys/dev/block", mm, "uevent"))
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				p := "/dev/" + name
				if d, err := blockDev(p); err == nil && d == dev {
					return p
				}
			}
		}
	}
	return mm
}

// logicalBlockSize is the device's logical block size from sysfs, 0 if
// unknown.
func logicalBlockSize(dev uint64) int {
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/queue/logical_block_size", unix.Major(dev), unix.Minor(dev)))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// zeroStart zeroes the first n bytes of the block device at path (all of
// it if smaller) and syncs them.
func zeroStart(path string, n int64) error {
	d, err := devio.Open(path, devio.Options{Write: true, Direct: true})
	if err != nil {
		return err
	}
	defer d.Close()
	n = min(n, d.Size())
	lbs := int64(d.LogicalBlockSize())
	n = n / lbs * lbs
	buf := devio.AlignedBuffer(int(min(n, 1<<20)), int(lbs))
	for off := int64(0); off < n; off += int64(len(buf)) {
		p := buf[:min(int64(len(buf)), n-off)]
		if _, err := d.WriteAt(p, off); err != nil {
			return err
		}
	}
	return d.Sync()
}
