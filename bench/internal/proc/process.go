package proc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"syscall"
	"time"
)

// Usage is what a process cost: CPU time and peak resident memory
// (getrusage of the child once it exited).
type Usage struct {
	User    time.Duration `json:"user_ns"`
	System  time.Duration `json:"sys_ns"`
	PeakRSS int64         `json:"peak_rss_bytes"`
}

// CPU is user plus system time.
func (u Usage) CPU() time.Duration { return u.User + u.System }

// Proc is a logship process the bench started.
type Proc struct {
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer // what it printed (a summary; small)
	stderr *Tail        // the end of its log

	done  chan struct{} // closed once it exited and its output was read
	err   error         // its exit status
	usage Usage
}

// Start runs bin with args; onLine, if set, sees every line of its
// stderr (from another goroutine), and echo, if set, gets a copy of every
// line prefixed with the process's name.
func Start(name, bin string, args []string, onLine func(string), echo io.Writer) (*Proc, error) {
	p := &Proc{name: name, cmd: exec.Command(bin, args...), stderr: NewTail(16 << 10), done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	p.cmd.SysProcAttr = childAttr()
	pr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { // owned by p: done is closed when it ends, after Wait
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.Write([]byte(line + "\n"))
			if echo != nil {
				fmt.Fprintf(echo, "%s: %s\n", name, line)
			}
			if onLine != nil {
				onLine(line)
			}
		}
		io.Copy(io.Discard, pr)
		p.err = p.cmd.Wait()
		if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.usage = Usage{User: time.Duration(ru.Utime.Nano()), System: time.Duration(ru.Stime.Nano()), PeakRSS: ru.Maxrss << 10}
		}
		close(p.done)
	}()
	return p, nil
}

// Wait waits for the process to exit, or kills it when ctx ends.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		p.Kill()
		return fmt.Errorf("%s: %w", p.name, context.Cause(ctx))
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to grace for the exit, then kills.
func (p *Proc) Stop(grace time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		p.Kill()
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, grace)
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Failure describes how the process failed, with the end of its log.
func (p *Proc) Failure(err error) error {
	return fmt.Errorf("%s: %w\n--- %s stderr (end) ---\n%s", p.name, err, p.name, strings.TrimRight(string(p.stderr.Bytes()), "\n"))
}

// errNotListening: a server exited or stayed silent instead of listening.
var errNotListening = errors.New("bench: logship serve did not start listening")

// Serve is a running `logship serve`.
type Serve struct {
	*Proc
	Addr string // where it listens
}

// StartServe runs `logship serve --listen 127.0.0.1:0 --dir dir --insecure
// extra...` and waits until it listens (it has recovered every task by
// then). echo is as for Start.
func StartServe(ctx context.Context, bin, dir string, extra []string, echo io.Writer) (*Serve, error) {
	return StartServeIn(ctx, nil, bin, "127.0.0.1:0", dir, nil, extra, echo)
}

// StartServeIn is StartServe listening on listen, authenticating with the
// flags auth (--insecure if empty), run under the command wrap (such as ip
// netns exec NS), which must exec the server in its place so that its
// usage is the server's; wrap may be empty.
func StartServeIn(ctx context.Context, wrap []string, bin, listen, dir string, auth, extra []string, echo io.Writer) (*Serve, error) {
	if len(auth) == 0 {
		auth = []string{"--insecure"}
	}
	args := append(append([]string{"serve", "--listen", listen, "--dir", dir}, auth...), extra...)
	if len(wrap) > 0 {
		args = append(append(wrap[1:len(wrap):len(wrap)], bin), args...)
		bin = wrap[0]
	}
	addr := make(chan string, 1)
	p, err := Start("logship serve", bin, args, func(line string) {
		if _, a, ok := strings.Cut(line, "listening on "); ok {
			a, _, _ = strings.Cut(a, " ")
			select {
			case addr <- a:
			default:
			}
		}
	}, echo)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case a := <-addr:
		return &Serve{Proc: p, Addr: a}, nil
	case <-p.done:
		return nil, p.Failure(fmt.Errorf("%w: %v", errNotListening, p.err))
	case <-t.C:
		p.Kill()
		return nil, p.Failure(fmt.Errorf("%w within a minute", errNotListening))
	case <-ctx.Done():
		p.Kill()
		return nil, context.Cause(ctx)
	}
}

// Executable is the logship binary to run: bin, or this program.
func Executable(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	return os.Executable()
}

// Done is closed once the process exited and its output was read.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit status; valid once Done is closed.
func (p *Proc) Err() error { return p.err }

// Stdout is what the process printed on stdout; valid once Done is closed.
func (p *Proc) Stdout() []byte { return p.stdout.Bytes() }

// Usage is what the process cost; valid once Done is closed.
func (p *Proc) Usage() Usage { return p.usage }
