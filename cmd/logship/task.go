package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/logship/logship/control"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/replica"
)

func init() {
	register(command{name: "task", summary: "list, remove or grow a server's tasks (task list|rm|resize)", run: runTask})
}

const taskHelp = `Manages the tasks of a logship server:

  logship task list   --to ADDR [--json]
  logship task rm     --to ADDR --task NAME --yes
  logship task resize --to ADDR --task NAME --size SIZE

with the authentication flags of every client command (--tls-cert F
--tls-key F [--ca F] | --psk-file F | --insecure). The server checks the
identity's grants for the task like for every call.

list prints each task's name, state (see 'logship status --help'), image
size and durable position; --json prints one object per line, as status
does.

rm removes the task: its image, state and staging logs, durably (once it
answers, a server restart or a crash does not bring the task back). It is
refused while a session holds the task (a ship, sync, verify or recover):
stop that first. --yes is required: nothing can undo it.

resize grows the task's image to SIZE (a multiple of 4 KiB): the new part
reads as zeros. Images only grow; a smaller SIZE is refused. Refused too
while a session holds the task. A ship with --size must then give the new
size (or none: the task exists).

With --dir DIR instead of --to, rm and resize work on a server directory
directly, while no server uses it (its lock is taken; refused while
'logship serve' runs on it).

Exit status: 0 done, 2 usage, 3 refused or failed (no such task, in use,
not granted, cannot shrink, server unreachable).`

// taskTimeout bounds a task call.
const taskTimeout = 30 * time.Second

func runTask(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("want list, rm or resize")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintf(e.stderr, "Usage: logship task list|rm|resize [flags]\n\n%s\n", taskHelp)
		return pflag.ErrHelp
	case "list":
		return runTaskList(ctx, e, args[1:])
	case "rm":
		return runTaskRemove(ctx, e, args[1:])
	case "resize":
		return runTaskResize(ctx, e, args[1:])
	}
	return usagef("unknown task command %q: want list, rm or resize", args[0])
}

// taskFlags are the flags every task command has.
type taskFlags struct {
	to, task, dir *string
	auth          authFlags
	timeout       *time.Duration
}

func newTaskFlags(fs *pflag.FlagSet, withTask bool) *taskFlags {
	f := &taskFlags{
		to:      fs.String("to", "", "server address, host:port"),
		auth:    addAuthFlags(fs),
		timeout: fs.Duration("timeout", taskTimeout, "give up after this long"),
	}
	if withTask {
		f.task = fs.String("task", "", "the task")
		f.dir = fs.String("dir", "", "work on this server directory (no server may be running on it) instead of --to")
	}
	return f
}

// parse parses the flags, checks them and returns the client
// configuration (nil with --dir).
func (f *taskFlags) parse(fs *pflag.FlagSet, args []string) (*parallel.ClientConfig, error) {
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, usagef("unexpected arguments %q", fs.Args())
	}
	if f.task != nil {
		if *f.task == "" {
			return nil, usagef("--task is required")
		}
		if err := checkTask(*f.task); err != nil {
			return nil, err
		}
		if *f.dir != "" {
			if *f.to != "" {
				return nil, usagef("--to and --dir exclude each other")
			}
			return nil, nil
		}
	}
	if *f.to == "" {
		if f.task != nil {
			return nil, usagef("--to (or --dir) is required")
		}
		return nil, usagef("--to is required")
	}
	if err := checkAddr("to", *f.to); err != nil {
		return nil, err
	}
	cfg := parallel.ClientConfig{Streams: 1}
	if f.task != nil {
		cfg.Task = *f.task
	}
	if err := f.auth.apply(&cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func runTaskList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "task list", "--to ADDR (auth flags) [--json]", taskHelp)
	f := newTaskFlags(fs, false)
	jsonOut := fs.Bool("json", false, "one JSON object per task per line (as status --json)")
	cfg, err := f.parse(fs, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	st, err := fetchStatus(ctx, *f.to, *cfg)
	if err != nil {
		return err
	}
	if *jsonOut {
		for _, ts := range st.Tasks {
			b, _ := json.Marshal(ts)
			fmt.Fprintf(e.stdout, "%s\n", b)
		}
		return nil
	}
	if len(st.Tasks) == 0 {
		fmt.Fprintf(e.stdout, "no tasks\n")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TASK\tSTATE\tIMAGE\tDURABLE\n")
	for _, ts := range st.Tasks {
		state := string(ts.State)
		if state == "" {
			state = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\tentry %d of %s\n", peer(ts.Name), peer(state), humanize.IBytes(uint64(max(ts.ImageSize, 0))),
			ts.Durable.NextEntry, orNone(peer(ts.Durable.Journal)))
	}
	return tw.Flush()
}

func runTaskRemove(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "task rm", "(--to ADDR (auth flags) | --dir DIR) --task NAME --yes", taskHelp)
	f := newTaskFlags(fs, true)
	yes := fs.Bool("yes", false, "yes, remove the task and its image for good")
	cfg, err := f.parse(fs, args)
	if err != nil {
		return err
	}
	if !*yes {
		return usagef("removing task %s deletes its image for good: add --yes", *f.task)
	}
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	var size int64
	if cfg == nil {
		size, err = replica.RemoveTask(ctx, *f.dir, *f.task)
		if err != nil {
			return offlineError(*f.dir, *f.task, err)
		}
	} else {
		var rm control.Removed
		if err := taskCall(ctx, *f.to, *cfg, control.Request{Op: control.OpRemove}, &rm); err != nil {
			return err
		}
		size = rm.ImageSize
	}
	fmt.Fprintf(e.stdout, "task %s removed (its image was %s)\n", *f.task, humanize.IBytes(uint64(max(size, 0))))
	return nil
}

func runTaskResize(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "task resize", "(--to ADDR (auth flags) | --dir DIR) --task NAME --size SIZE", taskHelp)
	f := newTaskFlags(fs, true)
	sizeS := fs.String("size", "", "the new image size, a multiple of 4 KiB (e.g. 2GiB); images only grow")
	cfg, err := f.parse(fs, args)
	if err != nil {
		return err
	}
	if *sizeS == "" {
		return usagef("--size is required")
	}
	size, err := parseImageSize("size", *sizeS)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	var old int64
	if cfg == nil {
		old, err = replica.ResizeTask(ctx, *f.dir, *f.task, size)
		if err != nil {
			return offlineError(*f.dir, *f.task, err)
		}
	} else {
		var rs control.Resized
		if err := taskCall(ctx, *f.to, *cfg, control.Request{Op: control.OpResize, Resize: &control.Resize{Size: size}}, &rs); err != nil {
			return err
		}
		old = rs.OldSize
	}
	if old == size {
		fmt.Fprintf(e.stdout, "task %s: image already %s, nothing to do\n", *f.task, humanize.IBytes(uint64(size)))
		return nil
	}
	fmt.Fprintf(e.stdout, "task %s: image grown from %s to %s\n", *f.task, humanize.IBytes(uint64(max(old, 0))), humanize.IBytes(uint64(size)))
	return nil
}

// taskCall makes one task call on a session that names the task and
// decodes its reply into reply.
func taskCall(ctx context.Context, addr string, cfg parallel.ClientConfig, req control.Request, reply any) error {
	sess, err := parallel.Dial(ctx, addr, cfg)
	if err != nil {
		return taskCallError(addr, cfg.Task, err)
	}
	defer sess.Close()
	resp, err := sess.Call(ctx, control.Marshal(req))
	if err != nil {
		return taskCallError(addr, cfg.Task, err)
	}
	if err := control.Unmarshal(resp, reply); err != nil {
		return fmt.Errorf("%s reply of %s: %w", req.Op, addr, err)
	}
	return nil
}

// taskCallError says why a task call failed, by the code's name.
func taskCallError(addr, task string, err error) error {
	if errors.Is(err, parallel.ErrForbidden) {
		return fmt.Errorf("%v: this identity is not granted task %q on %s", parallel.CodeForbidden, task, addr)
	}
	var re *parallel.RemoteError
	if !errors.As(err, &re) {
		return fmt.Errorf("server %s: %w", addr, err)
	}
	code := control.Code(re.Code)
	switch {
	case code == control.CodeTaskBusy:
		return fmt.Errorf("%v: task %s is in use: a session holds it (a ship, sync, verify or recover); stop it first", code, task)
	case code == control.CodeNoTask:
		return fmt.Errorf("%v: server %s has no task %q", code, addr, task)
	case code == control.CodeBadRequest && strings.Contains(re.Msg, "unknown op"):
		return fmt.Errorf("%v: server %s does not know task management calls (an older server): %s", code, addr, re.Msg)
	}
	return fmt.Errorf("%v: %s", code, serverMsg(re.Msg))
}

// serverMsg drops the package prefix and the sentinel's words that start
// a server's message ("replica: task mismatch: task db has ...").
func serverMsg(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "replica: "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			return after
		}
	}
	return msg
}

// offlineError says why a task command on a server directory failed.
func offlineError(dir, task string, err error) error {
	switch {
	case errors.Is(err, replica.ErrDirBusy):
		return fmt.Errorf("%s is in use by a running server: stop it, or use --to", dir)
	case errors.Is(err, replica.ErrNoTask):
		return fmt.Errorf("%v: %s has no task %q", control.CodeNoTask, dir, task)
	}
	return err
}
