package netbench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/logship/logship/bench/internal/proc"
	"github.com/logship/logship/fixtures/vm"
)

// A vm link is a netns link (netns.go) built in the Debian kernel of
// fixtures/vm, booted under qemu (TCG): the figures are that kernel's TCP,
// not this host's. All of a link's runs happen in one boot: the guest runs
// `logship bench --link netns:...` over the journal (a file of the guest's
// RAM, so at most 64 MiB), with the server's directory on an ext4 file
// system of its own virtio disk, and prints one JSON object per run, which
// is what the host reports. The guest has one emulated CPU, on which the
// source, the server and both ends of every TCP connection run: choose a
// rate it can carry (docs/bench.md).

// vmMemory is the guest's RAM in MiB: the journal, the guest's
// `logship bench` and both processes.
const vmMemory = 1024

// vmServerDisk is the size of the guest's disk for the servers' directories.
const vmServerDisk = 2 << 30

// measureVM runs every variant and stream count of the vm link l (Repeat
// times each) in one boot of the kernel VM and returns the measurements in
// the order a Sweep reports them.
func measureVM(ctx context.Context, sw Sweep, l Link, variants []Variant) ([]Measurement, error) {
	bin, err := proc.Executable(sw.Setup.Binary)
	if err != nil {
		return nil, err
	}
	j, err := os.ReadFile(sw.Setup.Journal)
	if err != nil {
		return nil, err
	}
	repeat := max(sw.Repeat, 1)
	runs := len(sw.Streams) * len(variants) * repeat
	timeout := sw.Setup.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	h, err := vm.Prepare(ctx, vm.Config{LogshipBinary: bin, Memory: vmMemory, Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", l, err)
	}
	cmd := vmBenchCommand(sw, l, variants, repeat)
	if sw.Progress != nil {
		rel, ver := h.Kernel()
		fmt.Fprintf(sw.Progress, "bench: %s: %d runs in the kernel VM (Linux %s, Debian %s)\n", l, runs, rel, ver)
	}
	dir, err := os.MkdirTemp(sw.Setup.Dir, "vm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res, err := h.Capture(ctx, vm.Run{
		Scenario:   "netlink",
		Dir:        dir,
		DataSize:   1 << 20,
		LogSize:    1 << 20,
		ExtraDisks: []int64{vmServerDisk},
		Files:      map[string][]byte{"journal.log": j},
		Env:        map[string]string{"LOGSHIP_CMD": cmd},
	})
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", l, err)
	}
	var all []Measurement
	for _, line := range res.Output {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m Measurement
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("bench: %s: the guest printed %q: %w", l, line, err)
		}
		m.Link = l.String()
		all = append(all, m)
		if sw.Progress != nil {
			fmt.Fprintf(sw.Progress, "bench: %s %s %d streams: %.1f MiB/s in %.2fs\n", l, m.Variant, m.Streams, m.ThroughputBytesPerSec/(1<<20), m.Seconds)
		}
	}
	if len(all) != runs {
		return nil, fmt.Errorf("bench: %s: the guest reported %d runs of %d\n%s", l, len(all), runs, strings.Join(res.Output, "\n"))
	}
	if sw.ReportAll {
		return all, nil
	}
	var out []Measurement
	for g := range slices.Chunk(all, repeat) {
		g = slices.Clone(g)
		slices.SortFunc(g, func(a, b Measurement) int { return cmpFloat(a.ThroughputBytesPerSec, b.ThroughputBytesPerSec) })
		out = append(out, g[len(g)/2])
	}
	return out, nil
}

// vmBenchCommand is the guest's shell command: logship bench over the
// netns form of l, every run its own (the host takes the median), JSON
// on stdout.
func vmBenchCommand(sw Sweep, l Link, variants []Variant, repeat int) string {
	var streams []string
	for _, n := range sw.Streams {
		for range repeat {
			streams = append(streams, strconv.Itoa(n))
		}
	}
	guest := l
	guest.Kind = LinkNetns
	args := []string{"/bin/logship", "bench", "--journal", "/in/journal.log", "--link", guest.String(),
		"--streams", strings.Join(streams, ","), "--json", "--quiet", "--dir", "/srv"}
	var names []string
	for _, v := range variants {
		if v.Name != "" {
			names = append(names, v.Name)
		}
	}
	if len(names) > 0 {
		args = append(args, "--compare", strings.Join(names, ","))
	}
	if sw.Setup.Size > 0 {
		args = append(args, "--task-size", strconv.FormatInt(sw.Setup.Size, 10))
	}
	if len(sw.Setup.ServeArgs) > 0 {
		args = append(args, "--serve-args", strings.Join(sw.Setup.ServeArgs, " "))
	}
	if len(sw.Setup.ShipArgs) > 0 {
		args = append(args, "--ship-args", strings.Join(sw.Setup.ShipArgs, " "))
	}
	if sw.Setup.Verify {
		args = append(args, "--verify")
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
