package source

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/retry"
)

// ReportEvery is how often a Shipper tells the server how far its journal
// goes (control.OpReport), for `logship status`.
const ReportEvery = time.Second

// Hooks are told what a Shipper does as it happens, for metrics (logship
// ship --metrics). Nil fields are skipped. They may be called with the
// Shipper's lock held: they must be quick and must not call the Shipper.
type Hooks struct {
	// Acked: a window the Shipper sent is durable on the server, latency
	// after its end went out.
	Acked func(entries int64, latency time.Duration)
	// Error: a session failed (and is retried) or Run failed; kind is
	// ErrorKind(err).
	Error func(kind string, err error)
}

// ErrorKind names the kind of a Shipper's error, for metrics: logging_disabled,
// journal, outside_image, entry_too_large, task, auth, remote_<code> (the
// lower-case name of a code the protocol defines, control.Code, or
// remote_other), timeout, connection or other.
func ErrorKind(err error) string {
	var je *JournalError
	var te *TaskError
	var re *parallel.RemoteError
	var ne net.Error
	switch {
	case errors.Is(err, ErrLoggingDisabled):
		return "logging_disabled"
	case errors.As(err, &je):
		return "journal"
	case errors.Is(err, ErrOutsideImage):
		return "outside_image"
	case errors.Is(err, ErrEntryTooLarge):
		return "entry_too_large"
	case errors.As(err, &te):
		return "task"
	case errors.Is(err, parallel.ErrAuth), errors.Is(err, parallel.ErrInsecure):
		return "auth"
	case errors.As(err, &re):
		if c := control.Code(re.Code); c.Defined() {
			return "remote_" + strings.ToLower(c.String())
		}
		return "remote_other"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &ne), errors.Is(err, parallel.ErrSessionClosed):
		return "connection"
	}
	return "other"
}

// headOf returns how many entries src's journal is known to hold.
func headOf(src entrySource) int64 {
	switch s := src.(type) {
	case *journal.Tailer:
		sb, ok := s.Super()
		if ok {
			return int64(sb.NrEntries)
		}
	case restSource:
		return s.r.Len()
	}
	return 0
}

// noteRead records that entry e was read at t.
func (s *Shipper) noteRead(e journal.Entry, head int64, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Read = e.Index + 1
	s.st.ReadOffset = e.NextOffset()
	s.st.Head = max(s.st.Head, head, s.st.Read)
	if s.openFirst.IsZero() {
		s.openFirst = t
	}
}

// noteHead records that the journal is known to hold head entries.
func (s *Shipper) noteHead(head int64) {
	s.mu.Lock()
	s.st.Head = max(s.st.Head, head)
	s.mu.Unlock()
}

// noteTarget records the log-writes target's status.
func (s *Shipper) noteTarget(st TargetStatus) {
	s.mu.Lock()
	s.st.Target = st
	s.st.Head = max(s.st.Head, int64(st.Entries))
	s.mu.Unlock()
}

// seenDM passes the target statuses it reads to seen.
type seenDM struct {
	dmTarget
	seen func(TargetStatus)
}

func (d seenDM) Status(name string) (string, error) {
	s, err := d.dmTarget.Status(name)
	if err == nil {
		if st, perr := ParseTargetStatus(s); perr == nil {
			d.seen(st)
		}
	}
	return s, err
}

// noteError records a failure of Run or of a session and tells the hooks.
func (s *Shipper) noteError(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	s.st.LastError = retry.Text(err) // codes by name, no package prefixes: status shows it
	s.mu.Unlock()
	if h := s.cfg.Hooks.Error; h != nil {
		h(ErrorKind(err), err)
	}
}

// Report returns what the Shipper would tell the server about its journal
// now: how far it goes and how far the durable position lags behind.
func (st Stats) Report(now time.Time) control.Report {
	r := control.Report{
		Journal: st.Journal, Log: st.Log, Seq: st.Seq, Head: max(st.Head, st.Read, int64(st.Target.Entries)), Read: st.Read,
		LoggingDisabled: st.Target.Disabled, Error: st.LastError, Time: now,
	}
	head := st.ReadOffset
	if used := st.Target.Used(); used > head {
		head = used
	}
	if st.Durable.NextEntry < r.Head && st.DurableOffset > 0 {
		r.LagBytes = max(0, head-st.DurableOffset)
	}
	if !st.Oldest.IsZero() {
		r.LagSeconds = max(0, now.Sub(st.Oldest).Seconds())
	}
	r.LogSize, r.LogUsed = st.LogSize, st.Target.Used()
	return r
}

// Used is the number of log bytes the target has allocated: up to and
// including its highest allocated sector (0 for a fresh target).
func (t TargetStatus) Used() int64 {
	if t.Sector == 0 {
		return 0
	}
	return int64(t.Sector+1) * 512
}

// reportLoop reports to the server every ReportEvery until ctx ends. A
// server that does not know the call (an older one) is not asked again.
func (s *Shipper) reportLoop(ctx context.Context, sess *parallel.Session) {
	t := time.NewTicker(ReportEvery)
	defer t.Stop()
	report := func(ctx context.Context) bool {
		r := s.Stats().Report(time.Now())
		if r.Journal == "" {
			return true
		}
		cctx, cancel := context.WithTimeout(ctx, 10*ReportEvery)
		_, err := sess.Call(cctx, control.Marshal(control.Request{Op: control.OpReport, Report: &r}))
		cancel()
		if isCode(err, control.CodeBadRequest) {
			s.log.Debug("the server does not take reports", "err", err)
			return false
		}
		return true
	}
	for {
		if !report(ctx) {
			return
		}
		select {
		case <-ctx.Done():
			// A last report, so that status shows how it ended (the
			// target's logging_disabled, the last position read).
			if sess.Err() == nil {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				report(fctx)
				cancel()
			}
			return
		case <-t.C:
		}
	}
}
