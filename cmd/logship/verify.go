package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/blocksync"
	"github.com/logship/logship/devio"
)

func init() {
	register(command{name: "verify", summary: "compare a device with a task's image by digests; print what differs", run: runVerify})
}

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "verify", "SOURCE --to ADDR --task NAME (--tls-cert F --tls-key F [--ca F] | --psk-file F | --insecure) [flags]",
		`Compares the device (or image file) SOURCE with the image of task NAME on a
logship server (paper section 6): both sides compute xxhash64 digests of the
same tree and compare them hierarchically (spans of blocks, blocks, then
smaller pieces inside the blocks that differ, down to --granularity, 512 bytes
by default as in the paper), so that only the digests of what differs travel.
Prints every differing byte range ("offset N length M", adjacent pieces
merged) or "equal"; with --json one object per range, then a summary object.
Exit status 1 when anything differs (also a different size: the bytes past
the smaller one are the last range).

SOURCE must not change while it is read, and the image must be where SOURCE
is. With --freeze MOUNTPOINT the file system on SOURCE is frozen (FIFREEZE)
while SOURCE is read and thawed (FITHAW) after, even when verify fails or is
interrupted.

Without --at-mark, stop shipping to the task first (verify needs the task: a
ship session holding it makes verify fail with TASK_BUSY). With --at-mark
--dm-name NAME, the ship goes on: once SOURCE is frozen, verify puts a mark
in the journal of the log-writes target NAME (whose data device is SOURCE),
the server waits until the running ship has applied that mark to the image
(--mark-wait), and the image is compared with SOURCE as it is. Nothing is
paused; the comparison means "the image equals SOURCE as of the mark" only
if nothing writes to SOURCE after the mark: use --freeze on a mounted file
system (its writers wait while verify reads), or an unmounted, quiet
device.`)
	cf := addClientFlags(fs)
	bf := addBlockFlags(fs, blocksync.DefaultVerifyGranularity, "unit of reading, a power of two",
		"size of the pieces compared and reported, a power of two from 512 bytes", "blocks read at once")
	var (
		freeze  = fs.String("freeze", "", "freeze the file system mounted here (FIFREEZE) while SOURCE is read")
		atMark  = fs.Bool("at-mark", false, "compare as of a mark put in the journal of a running ship (with --dm-name)")
		dmName  = fs.String("dm-name", "", "device-mapper name of the log-writes target over SOURCE (for --at-mark)")
		wait    = fs.Duration("mark-wait", blocksync.DefaultMarkWait, "with --at-mark: how long to wait for the ship to apply the mark")
		jsonOut = fs.Bool("json", false, "print JSON objects, one per line")
	)
	pf := addProgressFlags(fs)
	a, err := parseBlockArgs(fs, args, "SOURCE", cf, bf, pf)
	if err != nil {
		return err
	}
	if *atMark != (*dmName != "") {
		return usagef("--at-mark and --dm-name go together")
	}
	cfg := blocksync.VerifyConfig{Source: a.path, Addr: a.addr, Client: a.client, BlockSize: a.blockSize, Granularity: a.granularity,
		Parallel: a.parallel, Freeze: *freeze, MarkWait: *wait, Progress: &blocksync.Progress{}}
	if *atMark {
		name := *dmName
		cfg.AtMark = func(label string) error { return devio.Mark(name, label) }
	}
	stop := pf.startBlocks(e, "verify", "of digests", cfg.Progress)
	res, err := blocksync.Verify(ctx, cfg)
	stop()
	if err != nil {
		return err
	}
	wire := res.WireOut + res.WireIn
	if *jsonOut {
		for _, r := range res.Ranges {
			b, _ := json.Marshal(r)
			fmt.Fprintf(e.stdout, "%s\n", b)
		}
		b, _ := json.Marshal(struct {
			Equal          bool    `json:"equal"`
			Task           string  `json:"task"`
			Mark           string  `json:"mark,omitempty"`
			Size           int64   `json:"size"`
			ImageSize      int64   `json:"image_size"`
			Ranges         int     `json:"ranges"`
			DifferingBytes int64   `json:"differing_bytes"`
			Calls          int64   `json:"calls"`
			WireBytes      int64   `json:"wire_bytes"`
			Seconds        float64 `json:"seconds"`
		}{res.Equal(), res.Task, res.Mark, res.Size, res.ImageSize, len(res.Ranges), res.DifferingBytes, res.Calls, wire, res.Elapsed.Seconds()})
		fmt.Fprintf(e.stdout, "%s\n", b)
	} else {
		for _, r := range res.Ranges {
			fmt.Fprintf(e.stdout, "%s\n", r)
		}
		if res.Equal() {
			fmt.Fprintln(e.stdout, "equal")
		}
		if res.Mark != "" {
			fmt.Fprintf(e.stderr, "verify: compared as of mark %s\n", res.Mark)
		}
		fmt.Fprintf(e.stderr, "verify: task %s, %s compared in %v, %d differing ranges (%s), %s on the wire\n",
			res.Task, humanize.IBytes(uint64(min(res.Size, res.ImageSize))), res.Elapsed.Round(time.Millisecond),
			len(res.Ranges), humanize.IBytes(uint64(res.DifferingBytes)), humanize.IBytes(uint64(wire)))
	}
	if !res.Equal() {
		return checkFailed{fmt.Sprintf("%s differs from the image of task %s in %d ranges (%d bytes)", cfg.Source, res.Task, len(res.Ranges), res.DifferingBytes)}
	}
	return nil
}
