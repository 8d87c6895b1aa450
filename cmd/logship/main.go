// Command logship keeps a remote, crash-consistent copy of a block device
// from the journal of the kernel's dm-log-writes target, and replays,
// inspects and tests such journals locally.
//
// Exit status: 0 success; 1 a check found a difference or a failure
// (verify, crashtest, replay --check); 2 usage error (found before
// anything was tried); 3 runtime error, including a server's refusal that
// will not change (a bad task name, AUTH, FORBIDDEN, MISMATCH) and a
// server that stayed unreachable for --retry-for.
// `logship replay-log`, or the binary run through a link named replay-log,
// exits as xfstests' replay-log does instead (docs/xfstests.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/logship/logship/retry"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // a check found a difference or failure
	exitUsage   = 2
	exitRuntime = 3
)

// command is one subcommand: it parses its own flags and runs.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
	// raw, when set, runs instead of run: the command prints its own
	// messages and picks its own exit status (replay-log's).
	raw func(ctx context.Context, env *env, args []string) int
}

// env is what a command may touch: its output streams.
type env struct {
	stdout, stderr io.Writer
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// checkFailed means a check ran and found a problem (exit 1); the command
// has already printed the details.
type checkFailed struct{ msg string }

func (e checkFailed) Error() string { return e.msg }

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

func main() {
	args := os.Args[1:]
	if filepath.Base(os.Args[0]) == "replay-log" {
		// Run through a link named replay-log: be xfstests' replay-log.
		args = append([]string{"replay-log"}, args...)
		replayLogProg = os.Args[0]
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdout: stdout, stderr: stderr}
	switch {
	case len(args) == 0:
		printUsage(stderr)
		return exitUsage
	case args[0] == "--version" || args[0] == "-V":
		args = []string{"version"}
	case args[0] == "help" && len(args) > 1:
		// logship help CMD: CMD's own help.
		if _, ok := commands[args[1]]; ok {
			args = []string{args[1], "--help"}
		}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			fmt.Fprintf(stderr, "logship: unknown command %q\n\n", args[1])
			printUsage(stderr)
			return exitUsage
		}
		printUsage(stderr)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "logship: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return exitUsage
	}
	if c.raw != nil {
		return c.raw(ctx, e, args[1:])
	}
	err := c.run(ctx, e, args[1:])
	var ue usageError
	var cf checkFailed
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "logship %s: %v\nRun 'logship help %s' for usage.\n", c.name, err, c.name)
		return exitUsage
	case errors.As(err, &cf):
		fmt.Fprintf(stderr, "logship %s: %s\n", c.name, retry.Text(err))
		return exitFailed
	default:
		// Runtime errors may carry what a peer said (an error reply).
		fmt.Fprintf(stderr, "logship %s: %s\n", c.name, peer(retry.Text(err)))
		return exitRuntime
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "logship keeps a remote, crash-consistent copy of a block device from its dm-log-writes journal.\n\nUsage: logship COMMAND [flags] [args]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'logship help COMMAND' (or 'logship COMMAND --help') for a command's flags; 'logship --version' for the version.\nExit status: 0 success, 1 a check found a difference, 2 usage error, 3 runtime error.\n")
}

// newFlags makes a flag set whose --help prints the synopsis and description.
func newFlags(e *env, name, synopsis, description string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard) // errors are reported once, by run
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: logship %s %s\n\n%s\n\nFlags:\n%s", name, synopsis, description, fs.FlagUsages())
	}
	return fs
}

// parse parses args, turning flag errors into usage errors.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// named is one value a flag may name.
type named[T any] struct {
	name  string
	value T
}

// choose returns the value of the choice named s, or a usage error for
// --flag that lists the names in order ("want a, b or c").
func choose[T any](flag, s string, choices []named[T]) (T, error) {
	names := make([]string, len(choices))
	for i, c := range choices {
		if c.name == s {
			return c.value, nil
		}
		names[i] = c.name
	}
	var zero T
	want := names[len(names)-1]
	if len(names) > 1 {
		want = strings.Join(names[:len(names)-1], ", ") + " or " + want
	}
	return zero, usagef("--%s %q: want %s", flag, s, want)
}
