package control

import (
	"errors"
	"fmt"

	"github.com/logship/logship/parallel"
)

// Code is an error code of the protocol: the code of an ERROR frame (which
// ends the session) or of an error reply to a call (which does not). It is
// the one type that names every code: the transport's (parallel.Code,
// below parallel.CodeApplication, docs/protocol.md section 8) and the
// application's the server sends, defined here (section 7.2).
// Code(re.Code).String() names the code of a parallel.RemoteError, for
// messages, metrics labels, reports and the fault campaign; CodeOf finds
// it in an error chain.
type Code uint16

// Application error codes (frozen), from parallel.CodeApplication up.
const (
	CodeBadRequest Code = 0x101 // a call body or op the server does not understand
	CodeBadTask    Code = 0x102 // the task name in the hello is not a valid task name
	CodeTaskBusy   Code = 0x103 // another session is using the task (retryable)
	CodeNoTask     Code = 0x104 // open without a size of a task that does not exist
	CodeMismatch   Code = 0x105 // open: the task exists with another size or sector size
	CodeNotOpen    Code = 0x106 // a window arrived before a successful open
	CodeBadEntry   Code = 0x107 // an entry frame that is malformed, outside the image or out of place
	CodeSequence   Code = 0x108 // a window or entry out of sequence: a gap, a duplicate, a wrong start
	CodeNoSpace    Code = 0x109 // the server's disk is full (retryable)
	CodeIO         Code = 0x10A // another I/O error on the server (retryable)
	CodeShutdown   Code = 0x10B // the server is shutting down (retryable)
	CodeNoHistory  Code = 0x10C // open at a mark: the mark is not in the retained staging logs, or they do not reach back to the task's creation
	CodeReadOnly   Code = 0x10D // a window on a session opened at a mark
	// CodeCorrupt: the task's state on the server is damaged (a staging
	// log damaged where a crash cannot have damaged it, a state file that
	// does not parse): the task stays closed until an operator decides.
	CodeCorrupt Code = 0x10E
)

// appCodeNames are the application codes' names in docs/protocol.md
// section 7.2; parallel.Code names the transport's.
var appCodeNames = map[Code]string{
	CodeBadRequest: "BAD_REQUEST", CodeBadTask: "BAD_TASK", CodeTaskBusy: "TASK_BUSY",
	CodeNoTask: "NO_TASK", CodeMismatch: "MISMATCH", CodeNotOpen: "NOT_OPEN",
	CodeBadEntry: "BAD_ENTRY", CodeSequence: "SEQUENCE", CodeNoSpace: "NO_SPACE",
	CodeIO: "IO", CodeShutdown: "SHUTDOWN", CodeNoHistory: "NO_HISTORY", CodeReadOnly: "READ_ONLY",
	CodeCorrupt: "CORRUPT",
}

// String is the code's protocol name (NO_TASK, FORBIDDEN), or "code 0x..."
// for a code the protocol does not define.
func (c Code) String() string {
	if c < Code(parallel.CodeApplication) {
		return parallel.Code(c).String()
	}
	if n, ok := appCodeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code %#x", uint16(c))
}

// Defined reports whether the protocol defines c, in the transport's
// range or the application's.
func (c Code) Defined() bool {
	if c < Code(parallel.CodeApplication) {
		return parallel.Code(c).Defined()
	}
	_, ok := appCodeNames[c]
	return ok
}

// Retryable reports whether an error with this application code may go
// away by itself: the source should open a new session after a pause and
// resume from the durable position. Other application codes mean the
// source is sending something wrong. It is false for the transport's
// codes, which retry.Classify sorts.
func (c Code) Retryable() bool {
	switch c {
	case CodeTaskBusy, CodeNoSpace, CodeIO, CodeShutdown:
		return true
	}
	return false
}

// CodeOf returns the code of the first parallel.RemoteError in err's
// chain, and false if there is none.
func CodeOf(err error) (Code, bool) {
	var re *parallel.RemoteError
	if !errors.As(err, &re) {
		return 0, false
	}
	return Code(re.Code), true
}

// Remote is an error reply or ERROR frame with code c, as the server
// sends it: a *parallel.RemoteError.
func (c Code) Remote(msg string) *parallel.RemoteError {
	return &parallel.RemoteError{Code: parallel.Code(c), Msg: msg}
}
