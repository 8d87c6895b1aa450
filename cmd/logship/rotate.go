package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/control"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/source"
)

func init() {
	register(command{name: "rotate", summary: "swap the log device of a log-writes target for a fresh one", run: runRotate})
}

// errNotShipped: the next log holds a journal the server may not have.
var errNotShipped = errors.New("the next log holds a journal that may not be shipped yet")

func runRotate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "rotate", "--dm-name NAME --next-log DEV [--to ADDR --task TASK (auth flags) | --force] [--wait DUR] [--json]",
		`Swaps the log device of the log-writes target NAME for DEV, without losing a
write: zeroes DEV's first MiB (the kernel writes no superblock until the
first FUA or mark, so an old one would be read), loads a table with DEV as
the log, suspends the device (the file system on it is frozen, in-flight
I/O completes) and resumes it with the new table: the old target is torn
down and writes its end mark to the old log before the resume returns.
Then it sends the rotation mark logship-log.SEQ.NONCE to the new log, SEQ
being one more than the old log's (0 for a log without such a mark): a
'logship ship --follow --log OLD --log DEV' drains the old log to its end
mark and goes on with DEV, window numbers going on, each log its own
journal on the server.

DEV must not hold a journal the server does not have yet. A blank DEV is
always taken. Otherwise give the server (--to, --task and the
authentication flags): the rotation goes ahead only if the task's durable
position is in the current log (so the older DEV was shipped to its end) or
at the end of DEV's journal; --wait keeps asking until then. --force skips
the check (the image loses what DEV held and was not shipped).

Prints what it did; with --json one object. Exit status 3 when refused.`)
	var (
		dmName  = fs.String("dm-name", "", "device-mapper name of the log-writes target")
		nextLog = fs.String("next-log", "", "the block device to log to from now on")
		to      = fs.String("to", "", "the server the journal is shipped to, host:port (for the check)")
		task    = fs.String("task", "", "the task on it")
	)
	auth := addAuthFlags(fs)
	var (
		force   = fs.Bool("force", false, "rotate even if the next log holds a journal the server may not have")
		wait    = fs.Duration("wait", 0, "keep checking with the server this long for the next log to be shipped")
		zero    = fs.String("zero", sizeDefault(1<<20), "how much of the next log's start to zero")
		jsonOut = fs.Bool("json", false, "print the result as a JSON object")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *dmName == "" || *nextLog == "" {
		return usagef("--dm-name and --next-log are required")
	}
	if (*to == "") != (*task == "") {
		return usagef("--to and --task go together")
	}
	if *to != "" {
		if err := checkServer("to", *to, *task); err != nil {
			return err
		}
	}
	zb, err := humanize.ParseBytes(*zero)
	zeroBytes := int64(zb)
	if err != nil || zeroBytes < 4096 || zb > 1<<40 {
		return usagef("--zero %q: want a size of 4KiB or more", *zero)
	}
	var client parallel.ClientConfig
	if *to != "" {
		client = parallel.ClientConfig{Task: "", Streams: 1}
		if err := auth.apply(&client); err != nil {
			return err
		}
	}
	check := func(next, cur source.LogInfo) error {
		switch {
		case next.Blank:
			return nil
		case *force:
			fmt.Fprintf(e.stderr, "logship rotate: --force: %s holds journal %s (rotation %d, %d entries); overwriting it\n", next.Path, next.ID, next.Seq, next.Entries)
			return nil
		case *to == "":
			return fmt.Errorf("%w: %s holds journal %s (rotation %d, %d entries); give the server (--to, --task) to check that it was shipped, or --force", errNotShipped, next.Path, next.ID, next.Seq, next.Entries)
		}
		deadline := time.Now().Add(*wait)
		for {
			err := shippedCheck(ctx, *to, *task, client, next, cur)
			if err == nil || !errors.Is(err, errNotShipped) || time.Now().After(deadline) {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (%v)", err, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	res, err := source.Rotate(ctx, source.RotateConfig{DMName: *dmName, NextLog: *nextLog, Check: check, ZeroBytes: zeroBytes,
		Log: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	if *jsonOut {
		b, _ := json.Marshal(struct {
			DMName      string  `json:"dm_name"`
			Data        string  `json:"data"`
			Previous    string  `json:"previous"`
			PreviousSeq uint64  `json:"previous_seq"`
			Next        string  `json:"next"`
			Seq         uint64  `json:"seq"`
			Label       string  `json:"label"`
			Seconds     float64 `json:"seconds"`
		}{res.DMName, res.Data, res.Previous, res.PreviousSeq, res.Next, res.Seq, res.Label, res.Elapsed.Seconds()})
		fmt.Fprintf(e.stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(e.stdout, "rotated %s: log %s (rotation %d) -> %s (rotation %d), mark %s, swapped in %v\n",
		res.DMName, res.Previous, res.PreviousSeq, res.Next, res.Seq, res.Label, res.Elapsed.Round(time.Microsecond))
	return nil
}

// shippedCheck asks the server whether the journal in next has been
// shipped to its end: the task's durable position is in the current log
// (the logs are shipped in order), or at the end of next's journal.
func shippedCheck(ctx context.Context, addr, task string, client parallel.ClientConfig, next, cur source.LogInfo) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := fetchStatus(cctx, addr, client)
	if err != nil {
		return err
	}
	var ts *control.TaskStatus
	for i := range st.Tasks {
		if st.Tasks[i].Name == task {
			ts = &st.Tasks[i]
		}
	}
	switch {
	case ts == nil:
		return fmt.Errorf("%w: server %s has no task %q", errNotShipped, addr, task)
	case !cur.Blank && ts.Durable.Journal == cur.ID:
		return nil
	case ts.Durable.Journal == next.ID && ts.Durable.NextEntry >= next.Entries:
		return nil
	}
	return fmt.Errorf("%w: task %s is durable up to entry %d of journal %s; %s holds journal %s (rotation %d, %d entries), the current log %s",
		errNotShipped, task, ts.Durable.NextEntry, ts.Durable.Journal, next.Path, next.ID, next.Seq, next.Entries, cur.ID)
}
