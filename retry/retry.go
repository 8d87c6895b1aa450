// Package retry sorts the failures of a client session (ship, sync,
// verify, recover) into those a new session may cure and those it cannot,
// and words both for a person.
//
// Only four things are worth another session: the server could not be
// reached (connection refused, no route, a dial that timed out), the
// server took the connection but never finished the handshake, an
// established session lost its connection, and the server said it is busy
// or full (BUSY, TASK_BUSY, NO_SPACE, IO, SHUTDOWN). Everything else is a
// verdict that will not change: a bad task name, an address without a
// port, a refused key (AUTH), a task the peer may not use (FORBIDDEN), a
// task of another size (MISMATCH), another protocol version. A client
// stops at once on those.
//
// [Text] is the message a person reads: protocol codes by name
// (MISMATCH, not 261), no Go package prefixes, at most one hint.
package retry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/parallel"
)

// Kind is what a failure is, for deciding whether to try again.
type Kind int

// Kinds of failure.
const (
	// Permanent: another session gets the same answer.
	Permanent Kind = iota
	// Unreachable: no connection could be made (refused, no route, the
	// dial timed out, a name that did not resolve).
	Unreachable
	// NoAnswer: the server took the connection but never answered the
	// handshake.
	NoAnswer
	// Lost: an established session lost its connection or broke.
	Lost
	// Busy: the server answered that it is busy or full for now.
	Busy
)

var kindNames = [...]string{Permanent: "permanent", Unreachable: "unreachable", NoAnswer: "no_answer", Lost: "lost", Busy: "busy"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind %d", int(k))
}

// Transient reports whether another session may get past a failure of
// this kind.
func (k Kind) Transient() bool { return k != Permanent }

// Classify sorts err. Callers check their own permanent failures (a
// journal that does not parse, a local device error) first: Classify
// knows only the transport and the server's verdicts, and takes an error
// it does not recognize for a broken session (Lost), as a session that
// fails in an unexpected way is worth one more try.
func Classify(err error) Kind {
	var re *parallel.RemoteError
	var se *parallel.StreamError
	var fe *parallel.FrameError
	var ae *net.AddrError
	var pe *net.ParseError
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return Permanent
	case errors.As(err, &re):
		return remoteKind(re.Code)
	case errors.As(err, &fe) && !errors.Is(err, parallel.ErrAuth) && !errors.Is(err, parallel.ErrVersion):
		return Lost // a frame damaged or out of place on the way: a new session may get past it
	case errors.Is(err, parallel.ErrAuth), errors.Is(err, parallel.ErrVersion), errors.Is(err, parallel.ErrInsecure),
		errors.Is(err, parallel.ErrForbidden), errors.Is(err, parallel.ErrWrongSide), errors.Is(err, parallel.ErrWindowOrder),
		errors.Is(err, parallel.ErrWindowTooLarge), errors.Is(err, parallel.ErrFrameTooLarge):
		return Permanent
	case errors.As(err, &ae), errors.As(err, &pe):
		return Permanent // an address without a port, a bad port
	case errors.Is(err, control.ErrMalformed):
		return Permanent // the server answered nonsense
	case errors.As(err, &se):
		switch se.Op {
		case "dial":
			return Unreachable
		case "handshake":
			return NoAnswer
		}
		return Lost
	case errors.Is(err, parallel.ErrMalformed):
		// Outside a stream: the session's own settings (the task name).
		return Permanent
	}
	return Lost
}

// remoteKind sorts a code the server sent.
func remoteKind(c parallel.Code) Kind {
	if c >= parallel.CodeApplication {
		if control.Code(c).Retryable() {
			return Busy
		}
		return Permanent
	}
	switch c {
	case parallel.CodeBusy:
		return Busy
	case parallel.CodeAuth, parallel.CodeVersion, parallel.CodeForbidden, parallel.CodeUnsupported:
		return Permanent
	}
	return Lost // the session broke (a frame lost or damaged on the way, a timeout)
}

// Waiting is the line a client logs before it tries again: what went
// wrong, in words that say which of the transient kinds it is, and how
// long it keeps trying ("cannot connect to ADDR: connection refused;
// retrying for 4m59s"; "lost the connection to ADDR: ...; reconnecting
// for 4m59s").
func Waiting(addr string, err error, left time.Duration) string {
	left = left.Round(time.Second)
	verb := "retrying"
	if Classify(err) == Lost {
		verb = "reconnecting"
	}
	return fmt.Sprintf("%s; %s for %v", Describe(addr, err), verb, left)
}

// Describe words a failure of a session with the server at addr.
func Describe(addr string, err error) string {
	switch Classify(err) {
	case Unreachable:
		return fmt.Sprintf("cannot connect to %s: %s", addr, cause(err))
	case NoAnswer:
		return fmt.Sprintf("%s took the connection but did not answer: %s", addr, cause(err))
	case Lost:
		return fmt.Sprintf("lost the connection to %s: %s", addr, Text(err))
	case Busy:
		return fmt.Sprintf("%s is busy: %s", addr, Text(err))
	}
	return Text(err)
}

// cause is the innermost reason of a dial or handshake failure:
// "connection refused", "i/o timeout", "no such host".
func cause(err error) string {
	var errno syscall.Errno
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return dns.Err + " (" + dns.Name + ")"
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, parallel.ErrTimeout), errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "no answer in time"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return Text(oe.Err)
	}
	return Text(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// prefixes are the Go package prefixes of the project's error strings: a
// person reading a message has no use for them.
var prefixes = regexp.MustCompile(`(^|: |\()(parallel|devio|replica|source|bench|blocksync|control|journal|barrier|replay|snapdiff|digest|crashtest|campaign|netbench): `)

// hint matches a trailing parenthesized hint of a server message.
var hint = regexp.MustCompile(` \([^()]*\)$`)

// Text is err as a person should read it: a code the server sent by its
// protocol name (MISMATCH: ...), no package prefixes, and one hint at most
// (the client's, which knows the command, over the server's).
func Text(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	var gu *GaveUp
	var se *parallel.StreamError
	var oe *net.OpError
	if !errors.As(err, &gu) && errors.As(err, &se) && (se.Op == "dial" || se.Op == "handshake") && errors.As(se, &oe) && oe.Addr != nil {
		// A one-shot call (status) that could not connect: say so, in
		// whatever context the caller gave.
		s = strings.Replace(s, se.Error(), Describe(oe.Addr.String(), se), 1)
	}
	var re *parallel.RemoteError
	if errors.As(err, &re) {
		msg := re.Msg
		var te *control.TaskError
		if errors.As(err, &te) && te.Hint != "" {
			msg = hint.ReplaceAllString(msg, "")
		}
		msg = prefixes.ReplaceAllString(msg, "$1")
		name := control.Code(re.Code).String()
		// A server message often begins with its sentinel, which says the
		// code again ("task mismatch: ..."): say it once.
		if first, rest, ok := strings.Cut(msg, ": "); ok && strings.Contains(first, strings.ToLower(strings.ReplaceAll(name, "_", " "))) {
			msg = rest
		}
		s = strings.Replace(s, re.Error(), name+": "+msg, 1)
	}
	for {
		t := prefixes.ReplaceAllString(s, "$1")
		if t == s {
			break
		}
		s = t
	}
	return s
}

// GaveUp is the error a client returns when a transient failure lasted
// longer than it was willing to retry (--retry-for).
type GaveUp struct {
	Addr  string
	After time.Duration // how long it tried without progress
	Err   error         // the last failure
}

func (e *GaveUp) Error() string {
	return fmt.Sprintf("%s; gave up after %v without progress (--retry-for)", Describe(e.Addr, e.Err), e.After.Round(time.Millisecond))
}

func (e *GaveUp) Unwrap() error { return e.Err }
