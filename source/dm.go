package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/logship/logship/devio"
)

// ErrLoggingDisabled: the log-writes target stopped logging (its log
// device is full or failed). Writes to the protected device now pass
// through unlogged, so the image can no longer follow it; the target must
// be reloaded with a fresh log and the image resynced.
var ErrLoggingDisabled = errors.New("source: the log-writes target reports logging_disabled")

// TickLabel is the label of the marks a Shipper sends every Config.Tick.
const TickLabel = "logship-tick"

// TargetStatus is the status of a log-writes target (`dmsetup status`).
type TargetStatus struct {
	Entries  uint64 // entries logged so far (allocated, in memory)
	Sector   uint64 // highest allocated sector of the log, in 512-byte units
	Disabled bool   // logging_disabled: the log is full or failed
}

// ParseTargetStatus parses the status line of a log-writes target:
// "<logged entries> <highest sector>[ logging_disabled]".
func ParseTargetStatus(s string) (TargetStatus, error) {
	f := strings.Fields(s)
	var st TargetStatus
	if len(f) < 2 || len(f) > 3 {
		return st, fmt.Errorf("source: log-writes status %q: want \"<entries> <sector> [logging_disabled]\"", s)
	}
	var err error
	if st.Entries, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return st, fmt.Errorf("source: log-writes status %q: entries: %w", s, err)
	}
	if st.Sector, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return st, fmt.Errorf("source: log-writes status %q: sector: %w", s, err)
	}
	if len(f) == 3 {
		if f[2] != "logging_disabled" {
			return st, fmt.Errorf("source: log-writes status %q: unknown word %q", s, f[2])
		}
		st.Disabled = true
	}
	return st, nil
}

// dmTarget is what the watcher needs of the device-mapper: devio in
// production, a fake in tests.
type dmTarget interface {
	Status(name string) (string, error)
	Mark(name, label string) error
}

type devioDM struct{}

func (devioDM) Status(name string) (string, error) { return devio.DMStatus(name) }
func (devioDM) Mark(name, label string) error      { return devio.Mark(name, label) }

// DeviceSize returns the size in bytes of the device-mapper device name
// (the sum of its table's target lengths): for a log-writes target, the
// size of the data device it protects.
func DeviceSize(name string) (int64, error) {
	ts, err := devio.DMTargets(name)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range ts {
		n += int64(t.Length) * 512
	}
	if n == 0 {
		return 0, fmt.Errorf("source: device-mapper device %s has no table", name)
	}
	return n, nil
}

// watchTarget checks the target's status every tick until ctx ends, and
// sends a mark when entries were logged since the last mark (so that the
// kernel rewrites the superblock and the Tailer sees them). mark=false
// only checks the status. It returns ErrLoggingDisabled as soon as the
// status says so, and other errors after they persist for 10 ticks.
func watchTarget(ctx context.Context, dm dmTarget, name string, tick time.Duration, mark bool, log *slog.Logger) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	var (
		marked   uint64 // entries logged when the last mark was counted
		failures int
		marks    int
	)
	for {
		s, err := dm.Status(name)
		var st TargetStatus
		if err == nil {
			st, err = ParseTargetStatus(s)
		}
		switch {
		case err == nil && st.Disabled:
			return fmt.Errorf("%w: device-mapper device %s (status %q): the log device is full or failed, writes now pass through unlogged; reload the target with a fresh log and resync the image", ErrLoggingDisabled, name, s)
		case err == nil:
			failures = 0
			if mark && st.Entries > marked {
				if err = dm.Mark(name, TickLabel); err == nil {
					marks++
					marked = st.Entries + 1 // the mark itself
				}
			}
		}
		if err != nil {
			failures++
			log.Warn("log-writes target", "device", name, "err", err, "failures", failures)
			if failures >= 10 {
				return fmt.Errorf("source: log-writes target %s: %w", name, err)
			}
		}
		select {
		case <-ctx.Done():
			log.Debug("stopped watching the log-writes target", "device", name, "marks", marks)
			return nil
		case <-t.C:
		}
	}
}
