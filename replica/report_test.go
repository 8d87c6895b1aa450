package replica

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
)

// hookCounts counts what the Hooks are told.
type hookCounts struct {
	mu                          sync.Mutex
	received, durable, applied  int
	receivedBytes, appliedBytes int64
	maxWait                     time.Duration
	failed                      map[string]int
}

func (h *hookCounts) hooks() Hooks {
	return Hooks{
		Received: func(task string, entries, bytes int64) {
			h.mu.Lock()
			h.received++
			h.receivedBytes += bytes
			h.mu.Unlock()
		},
		Durable: func(task string, wait time.Duration) {
			h.mu.Lock()
			h.durable++
			h.maxWait = max(h.maxWait, wait)
			h.mu.Unlock()
		},
		Applied: func(task string, entries, bytes int64, took time.Duration) {
			h.mu.Lock()
			h.applied++
			h.appliedBytes += bytes
			h.mu.Unlock()
		},
		Failed: func(task, kind string) {
			h.mu.Lock()
			if h.failed == nil {
				h.failed = make(map[string]int)
			}
			h.failed[kind]++
			h.mu.Unlock()
		},
	}
}

func statusOf(t *testing.T, ts *testServer, task string) control.TaskStatus {
	t.Helper()
	s := ts.dial(t, "", 1)
	var st control.Status
	if err := call(t.Context(), s, control.Request{Op: control.OpStatus}, &st); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, x := range st.Tasks {
		if x.Name == task {
			return x
		}
	}
	t.Fatalf("status has no task %s: %+v", task, st)
	return control.TaskStatus{}
}

func TestReportStatusHooks(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		sync bool
	}{{"group", false}, {"sync-per-window", true}} {
		t.Run(mode.name, func(t *testing.T) {
			var hc hookCounts
			ts := startServer(t, Config{SyncPerWindow: mode.sync, Hooks: hc.hooks()})
			wl := fixtures.DefaultWorkload(7, 512)
			wl.Entries, wl.DeviceSize = 300, 8<<20
			j := newJournal(t, wl)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()

			s := ts.dial(t, "vol", 3)
			task, err := openCall(ctx, s, j.open(wl.DeviceSize))
			if err != nil {
				t.Fatal(err)
			}
			// A report before any window: everything pending.
			rep := control.Report{Journal: j.id, Log: "/dev/test", Head: 1000, Read: 10, LagBytes: 12345, LagSeconds: 2.5, Time: time.Now()}
			var empty struct{}
			if err := call(ctx, s, control.Request{Op: control.OpReport, Report: &rep}, &empty); err != nil {
				t.Fatal(err)
			}
			st := statusOf(t, ts, "vol")
			switch {
			case st.Session == nil || st.Session.Streams != 3 || st.Session.Journal != j.id || st.Session.Started.IsZero():
				t.Fatalf("session in status: %+v", st.Session)
			case st.Source == nil || st.Source.Head != 1000 || st.Source.Log != "/dev/test":
				t.Fatalf("source in status: %+v", st.Source)
			case st.Lag == nil || st.Lag.Entries != 1000 || st.Lag.Bytes != 12345 || st.Lag.Seconds < 2.5:
				t.Fatalf("lag in status: %+v", st.Lag)
			case !st.DurableTime.IsZero():
				t.Fatalf("durable time %v before any window", st.DurableTime)
			}

			sent, err := shipJournal(ctx, s, j, task.Durable, shipOpts{})
			if err != nil {
				t.Fatal(err)
			}
			last := sent[len(sent)-1]
			if err := s.WaitAck(ctx, last.seq); err != nil {
				t.Fatal(err)
			}
			rep = control.Report{Journal: j.id, Head: last.last + 1, Read: last.last + 1, Time: time.Now()}
			if err := call(ctx, s, control.Request{Op: control.OpReport, Report: &rep}, &empty); err != nil {
				t.Fatal(err)
			}
			st = statusOf(t, ts, "vol")
			switch {
			case st.Durable.NextEntry != last.last+1:
				t.Fatalf("durable %+v, want entry %d", st.Durable, last.last+1)
			case st.Lag == nil || st.Lag.Entries != 0 || st.Lag.Bytes != 0 || st.Lag.Seconds != 0:
				t.Fatalf("lag once caught up: %+v", st.Lag)
			case st.DurableTime.IsZero() || time.Since(st.DurableTime) > time.Minute:
				t.Fatalf("durable time %v", st.DurableTime)
			case st.Session == nil || st.Session.Windows != int64(len(sent)) || st.Session.Bytes == 0 || len(st.Session.StreamBytes) != 3:
				t.Fatalf("session counters: %+v (sent %d windows)", st.Session, len(sent))
			}
			// A report for another journal: the entries lag is unknown.
			rep.Journal = "other"
			if err := call(ctx, s, control.Request{Op: control.OpReport, Report: &rep}, &empty); err != nil {
				t.Fatal(err)
			}
			if st = statusOf(t, ts, "vol"); st.Lag == nil || st.Lag.Entries != -1 {
				t.Fatalf("lag for another journal: %+v", st.Lag)
			}

			trBefore := ts.srv.Traffic()
			s.Close()
			ts.waitIdle(t)
			tr := ts.srv.Traffic()
			var in, inBefore uint64
			for i, x := range tr.Streams {
				in += x.In
				if i < len(trBefore.Streams) {
					inBefore += trBefore.Streams[i].In
				}
			}
			if len(tr.Streams) != 3 || in < inBefore || in < uint64(hc.receivedBytes) {
				t.Fatalf("traffic after the session ended: %+v (before %+v), %d bytes received", tr, trBefore, hc.receivedBytes)
			}
			// The status sessions (statusOf) end on their own time: WaitIdle
			// waits only for sessions that hold a task.
			for deadline := time.Now().Add(10 * time.Second); tr.Sessions != 0 && time.Now().Before(deadline); tr = ts.srv.Traffic() {
				time.Sleep(5 * time.Millisecond)
			}
			if tr.Sessions != 0 {
				t.Fatalf("traffic counts %d sessions after they ended", tr.Sessions)
			}
			st = statusOf(t, ts, "vol")
			if st.Session != nil || st.Source == nil {
				t.Fatalf("after the session: session %+v, source %+v", st.Session, st.Source)
			}

			hc.mu.Lock()
			defer hc.mu.Unlock()
			if hc.received != len(sent) || hc.durable != len(sent) || hc.applied != len(sent) || hc.appliedBytes != hc.receivedBytes {
				t.Fatalf("hooks: received %d, durable %d, applied %d windows (%d/%d bytes); sent %d",
					hc.received, hc.durable, hc.applied, hc.receivedBytes, hc.appliedBytes, len(sent))
			}
			if len(hc.failed) != 0 {
				t.Fatalf("hooks: failures %v", hc.failed)
			}
		})
	}
}

func TestReportRefused(t *testing.T) {
	t.Parallel()
	var hc hookCounts
	ts := startServer(t, Config{Hooks: hc.hooks()})
	ctx := t.Context()
	// On a session without a task.
	s := ts.dial(t, "", 1)
	var empty struct{}
	err := call(ctx, s, control.Request{Op: control.OpReport, Report: &control.Report{Journal: "j"}}, &empty)
	if codeOfErr(err) != control.CodeBadRequest {
		t.Fatalf("report without a task: %v", err)
	}
	// Without its fields.
	s2 := ts.dial(t, "vol", 1)
	if err := call(ctx, s2, control.Request{Op: control.OpReport}, &empty); codeOfErr(err) != control.CodeBadRequest {
		t.Fatalf("report without fields: %v", err)
	}
	// A window before open fails the session: the hooks hear of it.
	s3 := ts.dial(t, "vol2", 1)
	s3.EndWindow(ctx, 0)
	<-s3.Done()
	s.Close()
	s2.Close()
	ts.waitIdle(t)
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.failed["not_open"] != 1 {
		t.Fatalf("failures: %v", hc.failed)
	}
}
