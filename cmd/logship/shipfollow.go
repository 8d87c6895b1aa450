package main

// ship --follow across log rotations: --log (the log devices of the
// target), --rotate-at, --resync-on-gap. With any of them, ship runs a
// source.Follower instead of a single Shipper.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/logship/logship/source"
)

type followFlags struct {
	logs     *[]string
	rotateAt *string
	resync   *bool
	wait     *time.Duration
}

func addFollowFlags(fs *pflag.FlagSet) followFlags {
	return followFlags{
		logs:     fs.StringArray("log", nil, "a log device of the target (repeat: the current log and those rotation swaps in); with --follow, ship follows the logs across rotations"),
		rotateAt: fs.String("rotate-at", "", "with --dm-name and two --log or more: rotate to the oldest other log when the target has used this much of the current one (e.g. 75%)"),
		resync:   fs.Bool("resync-on-gap", false, "with --dm-name: when the target reports logging_disabled, rotate to a fresh log and repair the image with a differential sync of /dev/mapper/NAME"),
		wait:     fs.Duration("rotation-wait", 10*time.Second, "without --dm-name: how long to wait for the next log after one ends"),
	}
}

// on reports whether ship must follow a rotation of logs.
func (f followFlags) on() bool { return len(*f.logs) > 0 || *f.rotateAt != "" || *f.resync }

// journal is the first journal: the argument, else the first --log.
func (f followFlags) journal(arg string) string {
	if arg == "" && len(*f.logs) > 0 {
		return (*f.logs)[0]
	}
	return arg
}

// parseFraction reads "75%" or "0.75".
func parseFraction(s string) (float64, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		return v / 100, err
	}
	return strconv.ParseFloat(s, 64)
}

// followSummary is the --json summary of a ship that followed rotations.
type followSummary struct {
	source.Summary
	Logs      int   `json:"logs"`
	Rotations int64 `json:"rotations"`
	Rotated   int64 `json:"rotated"`
	Resyncs   int64 `json:"resyncs"`
}

// logList is the logs to follow: the argument, then the --log ones.
func (f followFlags) logList(arg string) []string {
	var logs []string
	if arg != "" {
		logs = append(logs, arg)
	}
	for _, l := range *f.logs {
		if l != arg {
			logs = append(logs, l)
		}
	}
	return logs
}

// check refuses flags that do not go together.
func (f followFlags) check(follow bool, dmName, arg string) error {
	if !f.on() {
		return nil
	}
	if !follow {
		return usagef("--log, --rotate-at and --resync-on-gap go with --follow")
	}
	if *f.rotateAt != "" {
		v, err := parseFraction(*f.rotateAt)
		if err != nil || v <= 0 || v >= 1 {
			return usagef("--rotate-at %q: want a fraction of the log between 0 and 100%%, e.g. 75%%", *f.rotateAt)
		}
		if dmName == "" || len(f.logList(arg)) < 2 {
			return usagef("--rotate-at needs --dm-name and two logs or more (--log)")
		}
	}
	if *f.resync && dmName == "" {
		return usagef("--resync-on-gap needs --dm-name")
	}
	if *f.wait <= 0 {
		return usagef("--rotation-wait %v: want a positive duration", *f.wait)
	}
	return nil
}

func runFollow(ctx context.Context, e *env, cfg source.Config, ff followFlags, arg string, pf progressFlags, jsonOut bool, sm *shipMetrics) error {
	fc := source.FollowConfig{Ship: cfg, Logs: ff.logList(arg), ResyncOnGap: *ff.resync, SuccessorWait: *ff.wait}
	if *ff.rotateAt != "" {
		fc.RotateAt, _ = parseFraction(*ff.rotateAt)
	}
	f, err := source.NewFollower(fc)
	if err != nil {
		return err
	}
	stats := func() source.Stats { return f.Stats().Stats }
	if sm != nil {
		sm.setStats(stats, func() (int64, int64) { st := f.Stats(); return st.Rotations, st.Resyncs })
	}
	stop := shipProgress(e, pf, stats, true)
	st, err := f.Run(ctx)
	stop()
	stopped := err != nil && errors.Is(err, context.Canceled)
	state := "done"
	switch {
	case stopped:
		state = "stopped"
	case err != nil:
		state = "failed"
	}
	if err == nil || stopped || st.Windows > 0 {
		printFollowSummary(e, st, jsonOut, state)
	}
	if stopped {
		return nil
	}
	return err
}

func printFollowSummary(e *env, st source.FollowStats, asJSON bool, state string) {
	if !asJSON {
		printShipSummary(e.stdout, st.Stats, false, state)
		fmt.Fprintf(e.stdout, "logs: %d shipped, %d rotations followed (%d made here), %d resyncs; now log %s (rotation %d)\n",
			st.Logs, st.Rotations, st.Rotated, st.Resyncs, st.Log, st.Seq)
		return
	}
	b, _ := json.Marshal(followSummary{
		Summary: st.Stats.Summary(state),
		Logs:    st.Logs, Rotations: st.Rotations, Rotated: st.Rotated, Resyncs: st.Resyncs,
	})
	fmt.Fprintf(e.stdout, "%s\n", b)
}
