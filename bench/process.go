package bench

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
	"sync"
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

// proc is a logship process the bench started.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer // what it printed (a summary; small)
	stderr *tailBuffer  // the end of its log

	done  chan struct{} // closed once it exited and its output was read
	err   error         // its exit status
	usage Usage
}

// startProc runs bin with args; onLine, if set, sees every line of its
// stderr (from another goroutine), and echo, if set, gets a copy of every
// line prefixed with the process's name.
func startProc(name, bin string, args []string, onLine func(string), echo io.Writer) (*proc, error) {
	p := &proc{name: name, cmd: exec.Command(bin, args...), stderr: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
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

// wait waits for the process to exit, or kills it when ctx ends.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("%s: %w", p.name, context.Cause(ctx))
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to grace for the exit, then kills.
func (p *proc) stop(grace time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		p.kill()
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, grace)
	}
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes how the process failed, with the end of its log.
func (p *proc) failure(err error) error {
	return fmt.Errorf("%s: %w\n--- %s stderr (end) ---\n%s", p.name, err, p.name, strings.TrimRight(string(p.stderr.bytes()), "\n"))
}

// errNotListening: a server exited or stayed silent instead of listening.
var errNotListening = errors.New("bench: logship serve did not start listening")

// serveProc is a running `logship serve`.
type serveProc struct {
	*proc
	addr string
	dir  string
}

// startServe runs `logship serve --listen 127.0.0.1:0 --dir dir --insecure
// extra...` and waits until it listens (it has recovered every task by
// then). echo is as for startProc.
func startServe(ctx context.Context, bin, dir string, extra []string, echo io.Writer) (*serveProc, error) {
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir, "--insecure"}, extra...)
	addr := make(chan string, 1)
	p, err := startProc("logship serve", bin, args, func(line string) {
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
		return &serveProc{proc: p, addr: a, dir: dir}, nil
	case <-p.done:
		return nil, p.failure(fmt.Errorf("%w: %v", errNotListening, p.err))
	case <-t.C:
		p.kill()
		return nil, p.failure(fmt.Errorf("%w within a minute", errNotListening))
	case <-ctx.Done():
		p.kill()
		return nil, context.Cause(ctx)
	}
}

// executable is the logship binary to run: bin, or this program.
func executable(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	return os.Executable()
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
