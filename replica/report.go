package replica

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/parallel"
)

// book is what the server keeps about its tasks in memory only, for
// status and metrics: the last report of each task's source, when each
// task's durable position last moved, and the traffic of ended sessions.
// Its zero value is ready to use.
type book struct {
	mu      sync.Mutex
	reports map[string]report    // task → its source's last report
	moved   map[string]time.Time // task → when its durable position last moved
	traffic []StreamTraffic      // of the sessions that have ended
}

// report is a Report and when it arrived.
type report struct {
	control.Report
	at time.Time
}

func (b *book) durableAt(task string, t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.moved == nil {
		b.moved = make(map[string]time.Time)
	}
	b.moved[task] = t
}

// maxReportAge: a report older than this is dropped from status (its
// source is long gone).
const maxReportAge = 24 * time.Hour

// handleReport answers the report call of a session: it keeps the
// report for the session's task.
func (srv *Server) handleReport(ctx context.Context, ps *parallel.Session, r *control.Report) ([]byte, error) {
	name := ps.Task()
	switch {
	case name == "":
		return nil, remote(fmt.Errorf("%w: report on a session that names no task", ErrBadRequest))
	case r == nil:
		return nil, remote(fmt.Errorf("%w: report without its fields", ErrBadRequest))
	case len(r.Journal) > control.MaxJournalID || len(r.Log) > 4096 || len(r.Error) > 4096:
		return nil, remote(fmt.Errorf("%w: report with oversized fields", ErrBadRequest))
	}
	if err := CheckTask(name); err != nil {
		return nil, remote(err)
	}
	if !srv.holds(ctx, ps, name) {
		return nil, remote(fmt.Errorf("%w: a report for task %s from a session that does not hold it (another session does, or this one gave it up)", ErrForbidden, name))
	}
	b := &srv.book
	b.mu.Lock()
	if b.reports == nil {
		b.reports = make(map[string]report)
	}
	b.reports[name] = report{Report: *r, at: time.Now()}
	b.mu.Unlock()
	return []byte("{}"), nil
}

// holds reports whether session ps holds task name: the task was its
// claim (it named the task while no other session held it) and it has
// not given it up (a live open at a mark does). A session that got
// TASK_BUSY never holds the task. A session that holds the task may open
// it, so holding it without an open gives no more power; ship's follower
// uses that to report a log that filled before it could open the task.
func (srv *Server) holds(ctx context.Context, ps *parallel.Session, name string) bool {
	ss, err := srv.acceptedSession(ctx, ps)
	if err != nil {
		return false
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return ss.claimed && srv.claims[name] == ss
}

// describe adds to ts what the server knows in memory: when the durable
// position moved, the session holding the task (ss, or nil), the source's
// last report and the lag it implies, and the state word.
func (srv *Server) describe(ts *control.TaskStatus, ss *session) {
	rep, ok := srv.describeLag(ts, ss)
	ts.State = stateOf(ts, ss, rep, ok) // admin.go
}

// describeLag is describe but the state; it returns the source's last
// report, if there is one.
func (srv *Server) describeLag(ts *control.TaskStatus, ss *session) (report, bool) {
	now := time.Now()
	b := &srv.book
	b.mu.Lock()
	ts.DurableTime = b.moved[ts.Name]
	rep, ok := b.reports[ts.Name]
	if ok && now.Sub(rep.at) > maxReportAge {
		delete(b.reports, ts.Name)
		ok = false
	}
	b.mu.Unlock()
	if ss != nil {
		st := ss.ps.Stats()
		s := &control.SessionStatus{
			ID:      hex.EncodeToString(idBytes(ss.ps.ID())),
			Auth:    fmt.Sprint(ss.ps.Auth()),
			Streams: ss.ps.Streams(),
			Started: ss.started,
			Windows: int64(st.Windows),
			Bytes:   int64(st.DataBytes),
		}
		if j := ss.journal.Load(); j != nil {
			s.Journal = *j
		}
		for _, x := range st.Streams {
			s.StreamBytes = append(s.StreamBytes, int64(x.BytesIn))
		}
		ts.Session = s
	}
	if !ok {
		return rep, false
	}
	r := rep.Report
	ts.Source = &r
	age := now.Sub(rep.at).Seconds()
	lag := &control.Lag{Bytes: r.LagBytes, Seconds: r.LagSeconds, ReportAge: age, Entries: -1, ToShip: -1, InFlight: -1}
	if r.Journal == ts.Durable.Journal {
		// The source has every durable entry: one that resumed with
		// nothing to read reports 0 (no stale counters in status).
		d := ts.Durable.NextEntry
		r.Read = max(r.Read, d)
		r.Head = max(r.Head, r.Read)
		lag.Entries, lag.ToShip, lag.InFlight = r.Head-d, r.Head-r.Read, r.Read-d
	}
	if lag.Seconds > 0 && lag.Entries != 0 {
		lag.Seconds += age // the entries pending then are older now
	}
	if lag.Entries == 0 {
		lag.Bytes, lag.Seconds = 0, 0
	}
	ts.Lag = lag
	return rep, true
}

func idBytes(id [16]byte) []byte { return id[:] }

// Status returns what the status call answers: every task of the
// directory with its durable position and what the server knows of it in
// memory (session, source report, lag).
func (srv *Server) Status() (control.Status, error) {
	return srv.status(func(string) bool { return true })
}
