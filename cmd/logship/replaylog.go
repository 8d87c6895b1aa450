package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// `logship replay-log ARGS`, and the binary run through a link named
// replay-log, answer as xfstests' replay-log does with ARGS: same options,
// same output, same exit statuses (0, 1, and 255 for a malformed journal in
// --find), the --fsck command run on the same states. It walks the journal
// entry by entry with replay-log's own reading rules (replaylog_log.go), not
// with package journal's, so that a journal that replay-log accepts is
// accepted here and one it calls malformed is called malformed at the same
// entry. The rules, and where the native commands differ, are written down in
// docs/xfstests.md.

func init() {
	register(command{name: "replay-log", summary: "xfstests' replay-log, option for option (also: logship run as replay-log)", raw: runReplayLog})
}

// replayLogProg is the program name getopt's messages start with: argv[0]
// when run through the link.
var replayLogProg = "replay-log"

// runReplayLog runs replay-log with args and returns its exit status. It
// prints replay-log's messages itself, nothing of logship's.
func runReplayLog(ctx context.Context, e *env, args []string) int {
	out := bufio.NewWriterSize(e.stdout, 64<<10)
	err := replayLog(ctx, out, e.stdout, e.stderr, replayLogProg, args)
	out.Flush()
	var x rlExit
	switch {
	case err == nil:
		return 0
	case errors.As(err, &x):
		return int(x)
	}
	fmt.Fprintf(e.stderr, "replay-log: %v\n", err)
	return 1
}

// replayLog is replay-log's main: options, then positioning, then one of
// find, the entry count, the log summary or the replay.
func replayLog(ctx context.Context, out *bufio.Writer, stdout, stderr io.Writer, prog string, args []string) error {
	a, err := parseReplayLogArgs(prog, args, stderr)
	if err != nil {
		return err
	}
	if !a.haveLog {
		return rlUsage(stderr)
	}
	l, err := rlOpen(a.log, a.replay, a.haveReplay, out, stdout, stderr)
	if err != nil {
		return err
	}
	defer l.close()
	l.verbose = a.verbose
	l.ignoreDiscard = a.noDiscard
	l.startSector, l.endSector = a.startSector, a.endSector

	if a.haveStartMark {
		err = l.seekToMark(a.startMark)
	} else {
		err = l.seekEntry(a.startEntry)
	}
	if err != nil {
		return rlExit(1)
	}
	// replay-log checks this pair only now, after the seek.
	if a.haveFsck != (a.check != checkNone) {
		return rlUsage(stderr)
	}

	var stopFlags uint64
	if a.nextFlush {
		stopFlags |= rlFlush
	}
	if a.nextFUA {
		stopFlags |= rlFUA
	}
	if a.haveEndMark {
		stopFlags |= rlMark
	}
	stops := func(e rlEntry, walked uint64) bool {
		return (a.limit != 0 && walked == a.limit) || e.stops(stopFlags, a.endMark)
	}

	switch {
	case a.find:
		for walked := uint64(1); ; walked++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e, err := l.seekNextEntry()
			if err == io.EOF {
				fmt.Fprintf(stderr, "Couldn't find entry\n")
				return rlExit(1)
			}
			if err != nil {
				return rlExit(255) // main returns -1
			}
			if stops(e, walked) {
				fmt.Fprintf(out, "%d@%d\n", l.cur-1, uint64(l.pos)/l.ss)
				return nil
			}
		}
	case a.numEntries:
		fmt.Fprintf(out, "%d\n", l.nr)
		return nil
	case !a.haveReplay:
		fmt.Fprintf(out, "Log version=%d, sectorsize=%d, entries=%d\n", 1, l.ss, l.nr)
		return nil
	}

	failed := false
	for walked := uint64(1); ; walked++ {
		if ctx.Err() != nil {
			l.target.Sync()
			return ctx.Err()
		}
		e, err := l.replayNextEntry()
		if err == io.EOF {
			break
		}
		if err != nil {
			failed = true
			break
		}
		if a.haveFsck && a.check.at(e, walked, a.checkNumber) {
			if err := l.runFsck(ctx, a.fsck); err != nil {
				fmt.Fprintf(stderr, "Fsck errored out on entry %d\n", l.cur-1)
				failed = true
				break
			}
		}
		if stops(e, walked) {
			break
		}
	}
	l.target.Sync() // replay-log does not look at this fsync's result
	if failed {
		return rlExit(1)
	}
	return nil
}

// at reports whether --check runs the fsck command after e, the walked-th
// entry replayed. It is asked of every entry replayed, the one that stops
// the replay included, and of no other: a stop that is no check point gets
// no check.
func (c rlCheck) at(e rlEntry, walked, every uint64) bool {
	switch c {
	case checkNumber:
		return walked%every == 0
	case checkFUA:
		return e.flags&rlFUA != 0
	case checkFlush:
		return e.flags&rlFlush != 0
	case checkDiscard:
		return e.flags&rlDiscard != 0
	}
	return false
}

// runFsck syncs the target and runs cmdline through sh, as system(3) does;
// a non-zero exit status is a failure. Like replay-log, which reads the
// status with WEXITSTATUS, a command killed by a signal counts as passing.
func (l *rlLog) runFsck(ctx context.Context, cmdline string) error {
	if err := l.target.Sync(); err != nil {
		return err
	}
	l.out.Flush()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, l.stdout, l.stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == -1 && ctx.Err() == nil {
		return nil // killed by a signal: WEXITSTATUS is 0
	}
	return err
}
