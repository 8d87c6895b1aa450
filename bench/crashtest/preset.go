package crashtest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/logship/logship/bench/internal/proc"
)

// A preset checks a state of one file system the way a machine would find
// it after the crash: first the file system's own log is replayed into the
// copy (as mounting it would), then the file system's read-only check runs
// on the result. Checking without the replay gives false failures on
// states whose log is not replayed yet (explored states, most points):
// e2fsck -n, xfs_repair -n and btrfs check do not replay logs.
//
//	ext4   e2fsck -p -E journal_only DEV   replays the ext4 journal (exit 0 or 1 is fine)
//	       e2fsck -fn DEV                  full read-only check
//	xfs    mount -t xfs -o nouuid DEV DIR  log recovery by the kernel, then umount
//	       xfs_repair -n DEV               read-only check (the log is clean now)
//	btrfs  mount -t btrfs DEV DIR          log-tree replay by the kernel, then umount
//	       btrfs check --readonly DEV      read-only check
//
// A state fails when a step fails: the journal replay exits 4 or more
// (e2fsck could not replay it), the mount fails (the kernel could not
// recover the log: dmesg says why), or the read-only check exits non-zero
// (it found a problem; the output names it). The mounts need root and a
// loop device; xfs and btrfs mounts of the jobs' copies are taken one at a
// time, since the copies share their file system's UUID.

// Presets lists the names Preset knows.
var Presets = []string{"ext4", "xfs", "btrfs"}

// ErrNoTool: a program a preset runs is not installed.
var ErrNoTool = errors.New("bench: check tool not installed")

type presetStep struct {
	argv  []string // {} is the device
	okMax int      // the highest exit status that passes
	mount string   // instead of argv: mount the device with this type, then unmount
}

type preset struct {
	name    string
	pkg     string // the Debian package of its tools
	steps   []presetStep
	timeout time.Duration
}

var presets = map[string]preset{
	"ext4": {name: "ext4", pkg: "e2fsprogs", steps: []presetStep{
		{argv: []string{"e2fsck", "-p", "-E", "journal_only", "{}"}, okMax: 1},
		{argv: []string{"e2fsck", "-fn", "{}"}},
	}},
	"xfs": {name: "xfs", pkg: "xfsprogs", steps: []presetStep{
		{mount: "xfs"},
		{argv: []string{"xfs_repair", "-n", "{}"}},
	}},
	"btrfs": {name: "btrfs", pkg: "btrfs-progs", steps: []presetStep{
		{mount: "btrfs"},
		{argv: []string{"btrfs", "check", "--readonly", "{}"}},
	}},
}

// mountMu takes the presets' mounts one at a time.
var mountMu sync.Mutex

// Preset returns the Checker of a file-system preset (see Presets), each
// step limited to timeout (0: none). It fails with ErrNoTool, naming the
// Debian package, when a tool is missing.
func Preset(name string, timeout time.Duration) (Checker, error) {
	p, ok := presets[name]
	if !ok {
		return nil, fmt.Errorf("%w: no preset %q (want one of %s)", ErrBadOptions, name, strings.Join(Presets, ", "))
	}
	for _, s := range p.steps {
		if s.argv == nil {
			continue
		}
		if _, err := exec.LookPath(s.argv[0]); err != nil {
			return nil, fmt.Errorf("%w: %s (Debian package %s): %v", ErrNoTool, s.argv[0], p.pkg, err)
		}
	}
	p.timeout = timeout
	return p, nil
}

// PresetCommands lists the steps of preset name as command lines, DEV for
// the device and DIR for the mount point.
func PresetCommands(name string) []string {
	p := presets[name]
	var out []string
	for _, s := range p.steps {
		if s.mount != "" {
			out = append(out, fmt.Sprintf("mount -t %s%s DEV DIR && umount DIR", s.mount, mountOpts(s.mount)))
			continue
		}
		out = append(out, strings.ReplaceAll(strings.Join(s.argv, " "), "{}", "DEV"))
	}
	return out
}

// Check runs the preset's steps on s.Device.
func (p preset) Check(ctx context.Context, s *State) ([]byte, error) {
	if s.Device == "" {
		return nil, fmt.Errorf("%w: the %s preset needs a loop device (--device loop)", errNotRun, p.name)
	}
	out := proc.NewTail(maxOutput)
	for _, st := range p.steps {
		if st.mount != "" {
			if err := p.mount(ctx, st.mount, s, out); err != nil {
				return out.Bytes(), err
			}
			continue
		}
		argv := slices.Clone(st.argv)
		for i := range argv {
			argv[i] = strings.ReplaceAll(argv[i], "{}", s.Device)
		}
		fmt.Fprintf(out, "$ %s\n", strings.Join(argv, " "))
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if p.timeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, p.timeout)
		}
		cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = 5 * time.Second
		err := cmd.Run()
		timedOut := cctx.Err() != nil
		cancel()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return out.Bytes(), ctx.Err()
		case timedOut:
			return out.Bytes(), fmt.Errorf("%w: %s timed out after %v", errCheck, argv[0], p.timeout)
		case errors.As(err, &ee) && ee.ExitCode() >= 0 && ee.ExitCode() <= st.okMax:
		case errors.As(err, &ee):
			return out.Bytes(), fmt.Errorf("%w: %s preset: %s: %v", errCheck, p.name, strings.Join(argv, " "), err)
		default:
			return out.Bytes(), fmt.Errorf("%w: %s: %w", errNotRun, argv[0], err)
		}
	}
	return out.Bytes(), nil
}

func mountOpts(fstype string) string {
	if fstype == "xfs" {
		return " -o nouuid"
	}
	return ""
}

// mount mounts the state's device at its Dir, which replays the file
// system's log, and unmounts it.
func (p preset) mount(ctx context.Context, fstype string, s *State, out *proc.Tail) error {
	mountMu.Lock()
	defer mountMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	opts := strings.TrimPrefix(mountOpts(fstype), " -o ")
	fmt.Fprintf(out, "$ mount -t %s%s %s %s && umount %s\n", fstype, mountOpts(fstype), s.Device, s.Dir, s.Dir)
	if err := mountFS(s.Device, s.Dir, fstype, opts); err != nil {
		fmt.Fprintf(out, "mount: %v\n", err)
		return fmt.Errorf("%w: %s preset: mounting %s (log recovery) failed: %v", errCheck, p.name, s.Device, err)
	}
	if err := unmount(s.Dir); err != nil {
		return fmt.Errorf("%w: %w", errNotRun, err)
	}
	return nil
}
