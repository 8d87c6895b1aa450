package crashtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/logship/logship/bench/internal/proc"
)

// State is a crash state, materialized for a check.
type State struct {
	Point
	Image  string // the check image file that holds the state
	Device string // a loop device over Image, or "" when there is none
	Target string // what {} stands for in a Command: Device or Image
	Dir    string // an empty directory of this job's, e.g. for a mount point
}

// Checker checks a crash state. It returns what it printed, and a non-nil
// error when the state fails the check. It may write to the state: its
// writes never reach the next state.
type Checker interface {
	Check(ctx context.Context, s *State) (output []byte, err error)
}

// CheckFunc adapts a function to a Checker.
type CheckFunc func(ctx context.Context, s *State) ([]byte, error)

// Check calls f.
func (f CheckFunc) Check(ctx context.Context, s *State) ([]byte, error) { return f(ctx, s) }

// Command is a Checker that runs a shell command line (sh -c) in which {}
// stands for State.Target. The state fails when the command exits non-zero
// or runs longer than Timeout. The command sees LOGSHIP_ENTRY (the point's
// entry index), LOGSHIP_KIND (its flags), LOGSHIP_EXPLORE (0 for the point,
// k for its k-th explored state), LOGSHIP_IMAGE and LOGSHIP_DEVICE.
type Command struct {
	Line    string
	Timeout time.Duration // 0: none
}

// maxOutput bounds the output kept of one check: the tail is kept.
const maxOutput = 64 << 10

// Check runs the command on s.
func (c Command) Check(ctx context.Context, s *State) ([]byte, error) {
	line := strings.ReplaceAll(c.Line, "{}", shellQuote(s.Target))
	var cancel context.CancelFunc = func() {}
	if c.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Env = append(os.Environ(),
		"LOGSHIP_ENTRY="+strconv.FormatInt(s.Entry.Index, 10),
		"LOGSHIP_KIND="+s.Entry.Flags.String(),
		"LOGSHIP_EXPLORE="+strconv.Itoa(s.Explore),
		"LOGSHIP_IMAGE="+s.Image,
		"LOGSHIP_DEVICE="+s.Device,
	)
	out := proc.NewTail(maxOutput)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.Bytes(), nil
	case ctx.Err() != nil && c.Timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return out.Bytes(), fmt.Errorf("%w: %q timed out after %v", errCheck, c.Line, c.Timeout)
	case ctx.Err() != nil:
		return out.Bytes(), ctx.Err()
	case errors.As(err, &ee):
		return out.Bytes(), fmt.Errorf("%w: %q: %v", errCheck, c.Line, err)
	}
	return out.Bytes(), fmt.Errorf("%w: %q: %w", errNotRun, c.Line, err)
}

// errCheck marks an error from a Command as a failing state; errNotRun as
// a check that could not run, which stops Crashtest.
var (
	errCheck  = errors.New("check failed")
	errNotRun = errors.New("check could not run")
)

// shellQuote quotes s for sh unless it is made of safe characters only.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,=@", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
