package parallel

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of them (or a
// net/io error) so that callers can test with errors.Is.
var (
	// ErrSessionClosed: the session was closed, locally or by the peer in
	// order. Reconnect to continue.
	ErrSessionClosed = errors.New("parallel: session closed")
	// ErrMalformed: a frame or hello field is not well formed.
	ErrMalformed = errors.New("parallel: malformed frame")
	// ErrChecksum: a payload does not match its xxhash64.
	ErrChecksum = errors.New("parallel: checksum mismatch")
	// ErrFrameTooLarge: a payload over MaxPayload.
	ErrFrameTooLarge = errors.New("parallel: frame too large")
	// ErrUnknownType: a frame type not in the protocol.
	ErrUnknownType = errors.New("parallel: unknown frame type")
	// ErrProtocol: a frame out of place, a credit return or call the
	// protocol does not allow.
	ErrProtocol = errors.New("parallel: protocol violation")
	// ErrWindow: frames of a window lost, duplicated or out of order.
	ErrWindow = errors.New("parallel: window incomplete or inconsistent")
	// ErrCredit: the peer sent more bytes than it had credit for.
	ErrCredit = errors.New("parallel: credit exceeded")
	// ErrVersion: the peer speaks another protocol version.
	ErrVersion = errors.New("parallel: unsupported protocol version")
	// ErrAuth: authentication failed (PSK proof, TLS certificate, mode
	// mismatch).
	ErrAuth = errors.New("parallel: authentication failed")
	// ErrTimeout: a handshake, session assembly or keepalive deadline passed.
	ErrTimeout = errors.New("parallel: timeout")
	// ErrBusy: the server has too many pending connections.
	ErrBusy = errors.New("parallel: server busy")
	// ErrForbidden: the peer authenticated but its identity is not granted
	// the task it asked for (ServerConfig.Authorize).
	ErrForbidden = errors.New("parallel: forbidden")
	// ErrInsecure: insecure (plaintext) mode on an address that is not
	// loopback, or a configuration that mixes auth modes.
	ErrInsecure = errors.New("parallel: insecure mode needs a loopback address")
	// ErrWindowOrder: SendFrame/EndWindow called for a window that is not
	// the open one.
	ErrWindowOrder = errors.New("parallel: window out of order")
	// ErrWindowTooLarge: a window would cost more than the session's
	// credit and could never complete; split it.
	ErrWindowTooLarge = errors.New("parallel: window larger than the credit")
	// ErrWrongSide: a client method called on a server session or the
	// other way round.
	ErrWrongSide = errors.New("parallel: method not available on this side of the session")
)

// Code is the code of an ERROR frame or error reply (docs/protocol.md §8).
type Code uint16

// Error codes (frozen). Codes from CodeApplication up belong to the upper
// layers (control.Code).
const (
	CodeClosed      Code = 0
	CodeProtocol    Code = 1
	CodeMalformed   Code = 2
	CodeChecksum    Code = 3
	CodeTooLarge    Code = 4
	CodeUnknownType Code = 5
	CodeWindow      Code = 6
	CodeCredit      Code = 7
	CodeVersion     Code = 8
	CodeAuth        Code = 9
	CodeTimeout     Code = 10
	CodeBusy        Code = 11
	CodeStreamLost  Code = 12
	CodeUnsupported Code = 13
	CodeInternal    Code = 14
	CodeForbidden   Code = 15
	CodeApplication Code = 0x100
)

var codeNames = map[Code]string{
	CodeClosed: "CLOSED", CodeProtocol: "PROTOCOL", CodeMalformed: "MALFORMED",
	CodeChecksum: "CHECKSUM", CodeTooLarge: "TOO_LARGE", CodeUnknownType: "UNKNOWN_TYPE",
	CodeWindow: "WINDOW", CodeCredit: "CREDIT", CodeVersion: "VERSION", CodeAuth: "AUTH",
	CodeTimeout: "TIMEOUT", CodeBusy: "BUSY", CodeStreamLost: "STREAM_LOST",
	CodeUnsupported: "UNSUPPORTED", CodeInternal: "INTERNAL", CodeForbidden: "FORBIDDEN",
}

// String is the code's name in docs/protocol.md section 8 (CHECKSUM), or
// "code 0x..." for another code. control.Code names the application's
// codes too.
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code %#x", uint16(c)) // hex, as docs/protocol.md lists them
}

// Defined reports whether c is one of the transport's codes above
// (CodeApplication itself is the start of a range, not a code).
func (c Code) Defined() bool {
	_, ok := codeNames[c]
	return ok
}

// codeSentinels maps codes to the sentinel a RemoteError matches.
var codeSentinels = map[Code]error{
	CodeClosed: ErrSessionClosed, CodeProtocol: ErrProtocol, CodeMalformed: ErrMalformed,
	CodeChecksum: ErrChecksum, CodeTooLarge: ErrFrameTooLarge, CodeUnknownType: ErrUnknownType,
	CodeWindow: ErrWindow, CodeCredit: ErrCredit, CodeVersion: ErrVersion, CodeAuth: ErrAuth,
	CodeTimeout: ErrTimeout, CodeBusy: ErrBusy, CodeForbidden: ErrForbidden,
}

// codeOf picks the code to send to the peer for a local error.
func codeOf(err error) Code {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	var se *StreamError
	if errors.As(err, &se) {
		return CodeStreamLost
	}
	for c, s := range codeSentinels {
		if errors.Is(err, s) {
			return c
		}
	}
	return CodeInternal
}

// RemoteError is an error the peer reported in an ERROR frame (which ends
// the session) or in an error reply to a Call (which does not).
// errors.Is matches it against the sentinel of its code, e.g. a RemoteError
// with CodeAuth matches ErrAuth and one with CodeClosed ErrSessionClosed.
type RemoteError struct {
	Code Code
	Msg  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("parallel: peer reported %v: %s", e.Code, e.Msg)
}

// Is reports whether target is the sentinel for e's code.
func (e *RemoteError) Is(target error) bool {
	s, ok := codeSentinels[e.Code]
	return ok && s == target
}

// FrameError is a frame that was refused. It names the stream and the
// frame and wraps the reason (ErrChecksum, ErrFrameTooLarge, ...).
type FrameError struct {
	Stream  int  // stream index, -1 if not known
	Type    Type // 0 if the header itself was unreadable
	Window  uint64
	Entry   uint64
	Ordinal uint32
	Err     error
}

func (e *FrameError) Error() string {
	var where string
	switch {
	case e.Type == 0:
		where = "frame header"
	case e.Type == TypeData:
		where = fmt.Sprintf("DATA frame (window %d, entry %d, ordinal %d)", e.Window, e.Entry, e.Ordinal)
	case e.Type == TypeWindowEnd:
		where = fmt.Sprintf("WINDOW_END frame (window %d)", e.Window)
	case e.Type == TypeCall || e.Type == TypeReply:
		where = fmt.Sprintf("%v frame (call %d)", e.Type, e.Entry)
	default:
		where = fmt.Sprintf("%v frame (window %d, entry %d)", e.Type, e.Window, e.Entry)
	}
	if e.Stream >= 0 {
		return fmt.Sprintf("parallel: stream %d: %s: %v", e.Stream, where, e.Err)
	}
	return fmt.Sprintf("parallel: %s: %v", where, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// StreamError is an I/O failure on one stream of a session (a dropped
// connection, a deadline). It wraps the net or io error.
type StreamError struct {
	Stream int
	Op     string // "read", "write", "dial", "handshake"
	Err    error
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("parallel: stream %d: %s: %v", e.Stream, e.Op, e.Err)
}

func (e *StreamError) Unwrap() error { return e.Err }

// redactPaths shortens every absolute file path in msg to ".../" and its
// last element: the messages of ERROR frames and error replies tell a
// peer what failed, not where the server keeps its files.
func redactPaths(msg string) string {
	if !strings.Contains(msg, "/") {
		return msg
	}
	var b strings.Builder
	for i := 0; i < len(msg); {
		start := msg[i] == '/' && (i == 0 || strings.IndexByte(" \t\n\"'(=[", msg[i-1]) >= 0)
		if !start {
			b.WriteByte(msg[i])
			i++
			continue
		}
		j := i
		for j < len(msg) && strings.IndexByte(" \t\n\"'),;]:", msg[j]) < 0 {
			j++
		}
		p := msg[i:j]
		if strings.Count(strings.TrimSuffix(p, "/"), "/") >= 2 {
			b.WriteString(".../")
			b.WriteString(path.Base(p))
		} else {
			b.WriteString(p)
		}
		i = j
	}
	return b.String()
}
