package replica

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/control"
	"github.com/logship/logship/parallel"
)

// Sentinel errors. Errors of this package wrap one of them (or an I/O
// error) so that callers can test with errors.Is.
var (
	// ErrTaskName: a task name that is not [A-Za-z0-9._-]{1,64}, or "."
	// or "..", or starts with '.'.
	ErrTaskName = errors.New("replica: invalid task name")
	// ErrTaskBusy: another session (or process) is using the task.
	ErrTaskBusy = errors.New("replica: task in use")
	// ErrNoTask: the task does not exist and no size was given to create it.
	ErrNoTask = errors.New("replica: no such task")
	// ErrMismatch: the task exists with another size or sector size.
	ErrMismatch = errors.New("replica: task mismatch")
	// ErrBadRequest: a call the server does not understand.
	ErrBadRequest = errors.New("replica: bad request")
	// ErrNotOpen: a window before the task was opened.
	ErrNotOpen = errors.New("replica: task not open")
	// ErrBadEntry: an entry frame that is malformed, outside the image or
	// out of place.
	ErrBadEntry = errors.New("replica: bad entry")
	// ErrSequence: a window or entry out of sequence.
	ErrSequence = errors.New("replica: out of sequence")
	// ErrShutdown: the server is shutting down.
	ErrShutdown = errors.New("replica: server shutting down")
	// ErrCorrupt: a state file or staging log that cannot be right.
	ErrCorrupt = errors.New("replica: corrupt task state")
	// ErrDirBusy: another server uses the directory.
	ErrDirBusy = errors.New("replica: directory in use by another server")
	// ErrNoHistory: an open at a mark the retained staging logs cannot
	// rebuild: the mark is not in them, or they do not reach back to the
	// task's creation.
	ErrNoHistory = errors.New("replica: no history to the mark")
	// ErrReadOnly: a window on a session that opened a task at a mark.
	ErrReadOnly = errors.New("replica: task opened read-only at a mark")
	// ErrForbidden: the session's identity is not granted the task
	// (Grants), or the session does not hold the task it reports for. It
	// reaches the client as parallel.CodeForbidden, which matches
	// parallel.ErrForbidden.
	ErrForbidden = errors.New("replica: forbidden")
)

// codeOf is the code that tells the client about err, as the transport
// sends it.
func codeOf(err error) parallel.Code { return parallel.Code(errCode(err)) }

// errCode is the code (control.Code*, or the transport's FORBIDDEN) that
// tells the client about err.
func errCode(err error) control.Code {
	switch {
	case errors.Is(err, ErrTaskName):
		return control.CodeBadTask
	case errors.Is(err, ErrTaskBusy):
		return control.CodeTaskBusy
	case errors.Is(err, ErrNoTask):
		return control.CodeNoTask
	case errors.Is(err, ErrMismatch):
		return control.CodeMismatch
	case errors.Is(err, ErrBadEntry): // before ErrMalformed, which it may wrap
		return control.CodeBadEntry
	case errors.Is(err, ErrSequence):
		return control.CodeSequence
	case errors.Is(err, ErrBadRequest), errors.Is(err, control.ErrMalformed):
		return control.CodeBadRequest
	case errors.Is(err, ErrNotOpen):
		return control.CodeNotOpen
	case errors.Is(err, ErrShutdown):
		return control.CodeShutdown
	case errors.Is(err, ErrNoHistory):
		return control.CodeNoHistory
	case errors.Is(err, ErrReadOnly):
		return control.CodeReadOnly
	case errors.Is(err, ErrCorrupt):
		return control.CodeCorrupt
	case errors.Is(err, ErrForbidden):
		return control.Code(parallel.CodeForbidden)
	case isNoSpace(err):
		return control.CodeNoSpace
	}
	return control.CodeIO
}

// isNoSpace reports whether err is a full disk or an exhausted quota.
func isNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}

// remote turns err into the error a call handler returns, so that the
// client sees its code.
func remote(err error) error {
	return &parallel.RemoteError{Code: codeOf(err), Msg: err.Error()}
}

// ioErr names the file of a failed operation.
func ioErr(op, path string, err error) error {
	return fmt.Errorf("replica: %s %s: %w", op, path, err)
}
