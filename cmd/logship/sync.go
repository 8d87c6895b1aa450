package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/logship/logship/blocksync"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/parallel"
)

func init() {
	register(command{name: "sync", summary: "copy a device to a task's image: in full, or only what differs", run: runSync})
}

// blockFlags are the digest-tree flags of sync, verify and recover.
type blockFlags struct {
	blockSize, granularity *string
	parallel               *int
}

// addBlockFlags adds --block-size, --granularity (default granularity) and
// --parallel, with the command's help texts.
func addBlockFlags(fs *pflag.FlagSet, granularity int64, bsHelp, gHelp, parHelp string) blockFlags {
	return blockFlags{
		blockSize:   fs.String("block-size", sizeDefault(blocksync.DefaultBlockSize), bsHelp),
		granularity: fs.String("granularity", sizeDefault(granularity), gHelp),
		parallel:    fs.Int("parallel", blocksync.DefaultParallel, parHelp),
	}
}

// config checks the flags and returns the block size, the granularity and
// the parallelism.
func (f blockFlags) config() (bs, g int64, par int, err error) {
	b, err := humanize.ParseBytes(*f.blockSize)
	if err != nil || b == 0 || b&(b-1) != 0 || b > digest.MaxBlockSize {
		return 0, 0, 0, usagef("--block-size %q: want a power of two up to %s", *f.blockSize, humanize.IBytes(digest.MaxBlockSize))
	}
	gr, err := humanize.ParseBytes(*f.granularity)
	if err != nil || gr < digest.MinGranularity || gr&(gr-1) != 0 || gr > b {
		return 0, 0, 0, usagef("--granularity %q: want a power of two from 512 bytes to the block size", *f.granularity)
	}
	if *f.parallel < 1 || *f.parallel > 256 {
		return 0, 0, 0, usagef("--parallel %d: want 1 to 256", *f.parallel)
	}
	return int64(b), int64(gr), *f.parallel, nil
}

// blockArgs are what sync, verify and recover share, parsed and checked:
// the one device or file operand, the server and session (clientFlags) and
// the digest tree (blockFlags).
type blockArgs struct {
	path                   string
	addr                   string
	client                 parallel.ClientConfig
	blockSize, granularity int64
	parallel               int
}

// parseBlockArgs parses the flags of sync, verify or recover and checks
// what they share: one operand (named in the usage error), the client,
// block and progress flags. The command checks its own flags after.
func parseBlockArgs(fs *pflag.FlagSet, args []string, operand string, cf clientFlags, bf blockFlags, pf progressFlags) (blockArgs, error) {
	var a blockArgs
	if err := parse(fs, args); err != nil {
		return a, err
	}
	if fs.NArg() != 1 {
		return a, usagef("want one %s, got %d arguments", operand, fs.NArg())
	}
	a.path = fs.Arg(0)
	var err error
	if a.addr, a.client, err = cf.config(); err != nil {
		return a, err
	}
	if a.blockSize, a.granularity, a.parallel, err = bf.config(); err != nil {
		return a, err
	}
	return a, pf.check()
}

func runSync(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "sync", "SOURCE --to ADDR --task NAME [--mode full|diff] (--tls-cert F --tls-key F [--ca F] | --psk-file F | --insecure) [flags]",
		`Copies the device (or image file) SOURCE to the image of task NAME on a
logship server (paper section 4). The task is created, with SOURCE's size,
when it does not exist.

--mode full sends every block. --mode diff (the default) first compares
xxhash64 digests of both sides, hierarchically: a digest per span of blocks,
then per block inside the spans that differ, then per --granularity piece
inside the blocks that differ; only the pieces that differ are sent, so an
unchanged device costs a few bytes per 256 MiB on the wire and a changed 4 KiB
piece about 4 KiB. A new task is always synced in full. --block-size is the
unit of reading and scheduling; pieces that hold only zeros are sent as
discards (the image may hold old data there), never skipped.

Blocks go over --streams TCP streams as windows of entries whose index is the
block number (the paper's HEAD = {task, block number}); the server makes them
durable and acks them like shipped windows. An interrupted sync (lost
connection, server restart, logship stopped) resumes after the last durable
block: sync reconnects by itself for --retry-for, and a new 'logship sync'
with the same --block-size resumes too (--restart starts over). Resuming
assumes SOURCE did not change in between, or that the journal is shipped
from the sync's mark.

A consistent copy needs a quiet SOURCE: a snapshot, an unmounted file system,
a frozen one (--freeze MOUNTPOINT freezes it with FIFREEZE for the whole sync
and thaws it after: its writers wait meanwhile), or a mark: with --mark-first --dm-name NAME, sync first puts a mark in
the journal of the log-writes target NAME and prints its label; shipping that
journal with 'logship ship --from-mark LABEL' then brings the image to the
device's state whatever was written during the sync.

Progress goes to stderr when stdout and stderr are terminals; the summary to
stdout.`)
	cf := addClientFlags(fs)
	bf := addBlockFlags(fs, blocksync.DefaultSyncGranularity, "unit of reading and scheduling, a power of two",
		"unit of comparison and transfer, a power of two from 512 bytes", "blocks read at once")
	var (
		mode      = fs.String("mode", "diff", "full (every block) or diff (only what differs)")
		markFirst = fs.Bool("mark-first", false, "put a mark in the journal before syncing (with --dm-name)")
		dmName    = fs.String("dm-name", "", "device-mapper name of the log-writes target over SOURCE")
		freeze    = fs.String("freeze", "", "freeze the file system mounted here (FIFREEZE) for the whole sync")
		restart   = fs.Bool("restart", false, "start over instead of resuming an interrupted sync")
		retryFor  = fs.Duration("retry-for", blocksync.DefaultRetryFor, "give up after this long without an acked window (0: never retry)")
		jsonOut   = fs.Bool("json", false, "print the summary as a JSON object")
		verbose   = fs.BoolP("verbose", "v", false, "log what happens on stderr")
	)
	pf := addProgressFlags(fs)
	a, err := parseBlockArgs(fs, args, "SOURCE", cf, bf, pf)
	if err != nil {
		return err
	}
	cfg := blocksync.SyncConfig{Source: a.path, Addr: a.addr, Client: a.client, BlockSize: a.blockSize, Granularity: a.granularity,
		Parallel: a.parallel, MarkFirst: *markFirst, DMName: *dmName, Freeze: *freeze, Restart: *restart, RetryFor: *retryFor,
		Progress: &blocksync.Progress{}}
	if cfg.Mode, err = choose("mode", *mode, []named[blocksync.SyncMode]{{"full", blocksync.SyncFull}, {"diff", blocksync.SyncDiff}}); err != nil {
		return err
	}
	if *markFirst && *dmName == "" {
		return usagef("--mark-first needs --dm-name")
	}
	if *retryFor == 0 {
		cfg.RetryFor = -1
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	stop := pf.startBlocks(e, "sync", "sent", cfg.Progress)
	st, err := blocksync.Sync(ctx, cfg)
	stop()
	if err != nil {
		if st.Sessions > 0 {
			printSyncSummary(e.stdout, st, *jsonOut, "failed")
		}
		return err
	}
	printSyncSummary(e.stdout, st, *jsonOut, "done")
	return nil
}

// syncSummary is the --json summary of sync.
type syncSummary struct {
	State        string  `json:"state"`
	Task         string  `json:"task"`
	Mode         string  `json:"mode"`
	Journal      string  `json:"journal"`
	Mark         string  `json:"mark,omitempty"`
	Size         int64   `json:"size"`
	Blocks       int64   `json:"blocks"`
	StartBlock   int64   `json:"start_block"`
	Resumed      bool    `json:"resumed"`
	BlocksSent   int64   `json:"blocks_sent"`
	Frames       int64   `json:"frames"`
	WriteBytes   int64   `json:"write_bytes"`
	DiscardBytes int64   `json:"discard_bytes"`
	Windows      int64   `json:"windows"`
	Calls        int64   `json:"calls"`
	CallBytes    int64   `json:"call_bytes"`
	WireOut      int64   `json:"wire_out"`
	WireIn       int64   `json:"wire_in"`
	WireBytes    int64   `json:"wire_bytes"`
	Sessions     int     `json:"sessions"`
	Seconds      float64 `json:"seconds"`
}

func printSyncSummary(w io.Writer, st blocksync.SyncStats, asJSON bool, state string) {
	wire := st.WireOut + st.WireIn
	if asJSON {
		b, _ := json.Marshal(syncSummary{
			State: state, Task: st.Task, Mode: st.Mode.String(), Journal: st.Journal, Mark: st.Mark, Size: st.Size,
			Blocks: st.Blocks, StartBlock: st.StartBlock, Resumed: st.Resumed, BlocksSent: st.BlocksSent, Frames: st.Frames,
			WriteBytes: st.WriteBytes, DiscardBytes: st.DiscardBytes, Windows: st.Windows, Calls: st.Calls, CallBytes: st.CallBytes,
			WireOut: st.WireOut, WireIn: st.WireIn, WireBytes: wire, Sessions: st.Sessions, Seconds: st.Elapsed.Seconds(),
		})
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "sync %s: task %s, %s sync of %s (%d blocks", state, st.Task, st.Mode, humanize.IBytes(uint64(st.Size)), st.Blocks)
	if st.StartBlock > 0 {
		fmt.Fprintf(w, ", from block %d", st.StartBlock)
		if st.Resumed {
			fmt.Fprint(w, ", resumed")
		}
	}
	pct := 0.0
	if st.Size > 0 {
		pct = 100 * float64(wire) / float64(st.Size)
	}
	fmt.Fprintf(w, "): %d blocks sent, %s written, %s discarded, %d windows; %s on the wire (%.3f%% of the device) in %v\n",
		st.BlocksSent, humanize.IBytes(uint64(st.WriteBytes)), humanize.IBytes(uint64(st.DiscardBytes)), st.Windows,
		humanize.IBytes(uint64(wire)), pct, st.Elapsed.Round(time.Millisecond))
	if st.Mark != "" {
		fmt.Fprintf(w, "mark %s: ship the journal with --from-mark %s\n", st.Mark, st.Mark)
	}
}
