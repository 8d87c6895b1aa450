package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/blocksync"
	"github.com/logship/logship/devio"
)

func init() {
	register(command{name: "recover", summary: "restore a task's image onto a device: only what differs, or all of it", run: runRecover})
}

func runRecover(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "recover", "--to ADDR --task NAME TARGET (--tls-cert F --tls-key F [--ca F] | --psk-file F | --insecure) [flags]",
		`Restores the image of task NAME on a logship server into TARGET, a block
device or a file (paper section 3). TARGET is locked first: a block device is
opened exclusively (O_EXCL), so a mounted or otherwise busy device is refused;
a file is locked (flock) and created when missing. Then both sides compare
xxhash64 digests hierarchically down to --granularity, only the pieces that
differ are pulled (pieces of zeros do not travel: they are discarded in
TARGET), written, and TARGET is synced and unlocked. --full pulls everything
without comparing (the default for a new or empty file). A file TARGET is cut
or extended to the image's size; a block device must be at least that large
(bytes past the image are left alone).

--at MARK restores the state of the image at a mark instead: everything the
source wrote before the first mark with that label it shipped (a mark put
with 'logship mark', sync --mark-first, or one in a journal file), nothing
after. The server rebuilds it from its staging logs, in a temporary file
beside the image (as large as the image at most), which needs the task's
whole history: 'logship serve --retain' (with group commit) from the task's
creation on. A server that ever ran the task without --retain refuses.

Stop shipping to the task first: recover needs the task (a ship session
holding it makes recover wait, then fail with TASK_BUSY).`)
	cf := addClientFlags(fs)
	cf.addFromAlias(fs)
	bf := addBlockFlags(fs, blocksync.DefaultSyncGranularity, "unit of reading, a power of two",
		"unit of comparison and transfer, a power of two from 512 bytes", "blocks read and pieces fetched at once")
	var (
		full    = fs.Bool("full", false, "pull the whole image without comparing")
		at      = fs.String("at", "", "recover the state at this mark (needs serve --retain since the task was created)")
		jsonOut = fs.Bool("json", false, "print the summary as a JSON object")
	)
	pf := addProgressFlags(fs)
	a, err := parseBlockArgs(fs, args, "TARGET", cf, bf, pf)
	if err != nil {
		return err
	}
	cfg := blocksync.RecoverConfig{Target: a.path, Addr: a.addr, Client: a.client, BlockSize: a.blockSize, Granularity: a.granularity,
		Parallel: a.parallel, Full: *full, At: *at, Progress: &blocksync.Progress{}}
	stop := pf.startBlocks(e, "recover", "received", cfg.Progress)
	st, err := blocksync.Recover(ctx, cfg)
	stop()
	if errors.Is(err, devio.ErrBusy) {
		return fmt.Errorf("%s is mounted or in use (an exclusive open was refused); unmount it, or stop what holds it, and retry: %w", cfg.Target, err)
	}
	if err != nil {
		return err
	}
	wire := st.WireOut + st.WireIn
	if *jsonOut {
		b, _ := json.Marshal(struct {
			Task       string  `json:"task"`
			Target     string  `json:"target"`
			Size       int64   `json:"size"`
			Full       bool    `json:"full"`
			Ranges     int64   `json:"ranges"`
			DataBytes  int64   `json:"data_bytes"`
			ZeroBytes  int64   `json:"zero_bytes"`
			Calls      int64   `json:"calls"`
			WireBytes  int64   `json:"wire_bytes"`
			Seconds    float64 `json:"seconds"`
			TargetSize int64   `json:"target_size"`
		}{st.Task, cfg.Target, st.Size, st.Full, st.Ranges, st.DataBytes, st.ZeroBytes, st.Calls, wire, st.Elapsed.Seconds(), st.TargetSize})
		fmt.Fprintf(e.stdout, "%s\n", b)
		return nil
	}
	how := "differing pieces"
	if st.Full {
		how = "everything"
	}
	fmt.Fprintf(e.stdout, "recover done: task %s into %s, %s of image, %s pulled: %d ranges, %s of data, %s zeroed; %s on the wire in %v\n",
		st.Task, cfg.Target, humanize.IBytes(uint64(st.Size)), how, st.Ranges, humanize.IBytes(uint64(st.DataBytes)),
		humanize.IBytes(uint64(st.ZeroBytes)), humanize.IBytes(uint64(wire)), st.Elapsed.Round(time.Millisecond))
	return nil
}
