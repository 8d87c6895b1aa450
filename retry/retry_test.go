package retry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/parallel"
)

func TestClassify(t *testing.T) {
	refused := &parallel.StreamError{Stream: 1, Op: "dial", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"refused", refused, Unreachable},
		{"handshake timeout", &parallel.StreamError{Op: "handshake", Err: fmt.Errorf("%w: read: i/o timeout", parallel.ErrTimeout)}, NoAnswer},
		{"read reset", &parallel.StreamError{Op: "read", Err: syscall.ECONNRESET}, Lost},
		{"session closed", fmt.Errorf("ship: %w", parallel.ErrSessionClosed), Lost},
		{"busy", &parallel.RemoteError{Code: parallel.CodeBusy, Msg: "3 pending"}, Busy},
		{"task busy", &control.TaskError{Task: "t", Err: control.CodeTaskBusy.Remote("")}, Busy},
		{"no space", control.CodeNoSpace.Remote(""), Busy},
		{"mismatch", &control.TaskError{Task: "t", Err: control.CodeMismatch.Remote("")}, Permanent},
		{"bad task", control.CodeBadTask.Remote(""), Permanent},
		{"auth", &parallel.RemoteError{Code: parallel.CodeAuth}, Permanent},
		{"auth local", &parallel.StreamError{Op: "handshake", Err: fmt.Errorf("%w: proof", parallel.ErrAuth)}, Permanent},
		{"forbidden", &parallel.RemoteError{Code: parallel.CodeForbidden}, Permanent},
		{"version", &parallel.RemoteError{Code: parallel.CodeVersion}, Permanent},
		{"no port", fmt.Errorf("parallel: %w", &net.AddrError{Err: "missing port in address", Addr: "h"}), Permanent},
		{"task name", fmt.Errorf("%w: task name %q", parallel.ErrMalformed, "a/b"), Permanent},
		{"frame damaged", &parallel.StreamError{Op: "read", Err: &parallel.FrameError{Err: parallel.ErrChecksum}}, Lost},
		{"frame malformed", &parallel.FrameError{Stream: 1, Err: fmt.Errorf("%w: bad magic", parallel.ErrMalformed)}, Lost},
		{"frame too large", &parallel.FrameError{Stream: 1, Err: parallel.ErrFrameTooLarge}, Lost},
		{"send too large", fmt.Errorf("%w: 9 MiB", parallel.ErrFrameTooLarge), Permanent},
		{"window too large", fmt.Errorf("%w: split it", parallel.ErrWindowTooLarge), Permanent},
		{"insecure", fmt.Errorf("%w: refusing to dial", parallel.ErrInsecure), Permanent},
		{"unknown", errors.New("something odd"), Lost},
		{"canceled", context.Canceled, Permanent},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	mismatch := &control.TaskError{Task: "db", Err: control.CodeMismatch.Remote("replica: task mismatch: task db is 64 MiB")}
	noTask := &control.TaskError{Task: "x", Hint: "sync the device to it first",
		Err: control.CodeNoTask.Remote("replica: no such task: x (open with a size to create it)")}
	tests := []struct {
		err       error
		want      string
		wantNot   []string
		retryWant string
	}{
		{err: mismatch, want: `task "db": MISMATCH: task db is 64 MiB`, wantNot: []string{"261", "replica:", "parallel:"}},
		{err: noTask, want: `task "x": NO_TASK: no such task: x (sync the device to it first)`, wantNot: []string{"open with a size"}},
		{err: fmt.Errorf("source: %w", fmt.Errorf("devio: read /dev/x: %w", errors.New("EIO"))), want: "read /dev/x: EIO"},
		{err: &parallel.StreamError{Op: "dial", Err: &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, Err: syscall.ECONNREFUSED}},
			want: "cannot connect to 127.0.0.1:9: connection refused"},
		{err: fmt.Errorf("not caught up within 2s: %w", &parallel.StreamError{Op: "dial", Err: &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, Err: syscall.ECONNREFUSED}}),
			want: "not caught up within 2s: cannot connect to 127.0.0.1:9: connection refused"},
	}
	for _, tt := range tests {
		got := Text(tt.err)
		if got != tt.want {
			t.Errorf("Text = %q, want %q", got, tt.want)
		}
		for _, n := range tt.wantNot {
			if strings.Contains(got, n) {
				t.Errorf("Text = %q, has %q", got, n)
			}
		}
	}
}

func TestWaiting(t *testing.T) {
	refused := &parallel.StreamError{Stream: 0, Op: "dial", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		err  error
		want string
	}{
		{refused, "cannot connect to h:1: connection refused; retrying for 4m59s"},
		{&parallel.StreamError{Op: "handshake", Err: fmt.Errorf("%w: read", parallel.ErrTimeout)}, "h:1 took the connection but did not answer: no answer in time; retrying for 4m59s"},
		{control.CodeTaskBusy.Remote("held by session 1"), "h:1 is busy: TASK_BUSY: held by session 1; retrying for 4m59s"},
	}
	for _, tt := range tests {
		if got := Waiting("h:1", tt.err, 4*time.Minute+59*time.Second+300*time.Millisecond); got != tt.want {
			t.Errorf("Waiting = %q, want %q", got, tt.want)
		}
	}
	g := &GaveUp{Addr: "h:1", After: 2 * time.Second, Err: refused}
	if !errors.Is(g, syscall.ECONNREFUSED) || !strings.HasPrefix(g.Error(), "cannot connect to h:1: connection refused") {
		t.Errorf("GaveUp: %v", g)
	}
}

func TestWaitingLost(t *testing.T) {
	err := &parallel.StreamError{Stream: 2, Op: "read", Err: syscall.ECONNRESET}
	want := "lost the connection to h:1: stream 2: read: connection reset by peer; reconnecting for 10s"
	if got := Waiting("h:1", err, 10*time.Second); got != want {
		t.Errorf("Waiting = %q, want %q", got, want)
	}
}
