package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logship/logship/blocksync"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/fixtures/replicatest"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

func TestStatsReport(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		name string
		st   Stats
		want control.Report
	}{{
		name: "caught up",
		st:   Stats{Journal: "j", Read: 10, Head: 10, ReadOffset: 8192, DurableOffset: 8192, Durable: control.Position{Journal: "j", NextEntry: 10}},
		want: control.Report{Journal: "j", Head: 10, Read: 10},
	}, {
		name: "behind the read position",
		st: Stats{Journal: "j", Read: 10, Head: 12, ReadOffset: 8192, DurableOffset: 4096, Oldest: now.Add(-3 * time.Second),
			Durable: control.Position{Journal: "j", NextEntry: 5}},
		want: control.Report{Journal: "j", Head: 12, Read: 10, LagBytes: 4096, LagSeconds: 3},
	}, {
		name: "the target logged more than was read",
		st: Stats{Journal: "j", Read: 10, Head: 10, ReadOffset: 8192, DurableOffset: 8192, LogSize: 1 << 20,
			Target: TargetStatus{Entries: 20, Sector: 31}, Durable: control.Position{Journal: "j", NextEntry: 10}},
		want: control.Report{Journal: "j", Head: 20, Read: 10, LagBytes: 16384 - 8192, LogSize: 1 << 20, LogUsed: 16384},
	}, {
		name: "logging disabled, error",
		st:   Stats{Journal: "j", Target: TargetStatus{Disabled: true}, LastError: "boom"},
		want: control.Report{Journal: "j", LoggingDisabled: true, Error: "boom"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.Time = now
			if got := tc.st.Report(now); got != tc.want {
				t.Fatalf("Report:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestErrorKind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", ErrLoggingDisabled), "logging_disabled"},
		{&JournalError{Path: "p", Err: errors.New("bad")}, "journal"},
		{fmt.Errorf("%w: entry 3", ErrOutsideImage), "outside_image"},
		{&TaskError{Task: "t", Err: errors.New("no")}, "task"},
		{fmt.Errorf("dial: %w", parallel.ErrAuth), "auth"},
		{control.CodeNoSpace.Remote(""), "remote_no_space"},
		{control.CodeShutdown.Remote(""), "remote_shutdown"},
		{&parallel.RemoteError{Code: parallel.CodeProtocol}, "remote_protocol"},
		{&parallel.RemoteError{Code: parallel.CodeForbidden}, "remote_forbidden"},
		{&parallel.RemoteError{Code: 0x10F}, "remote_other"},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, "connection"},
		{context.DeadlineExceeded, "timeout"},
		{errors.New("?"), "other"},
	} {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// serverStatus asks the server for the status of task.
func serverStatus(ctx context.Context, addr, task string) (control.TaskStatus, error) {
	sess, err := parallel.Dial(ctx, addr, parallel.ClientConfig{Streams: 1, Insecure: true})
	if err != nil {
		return control.TaskStatus{}, err
	}
	defer sess.Close()
	ts, ok, err := blocksync.TaskStatus(ctx, sess, task)
	if err == nil && !ok {
		err = fmt.Errorf("no task %s", task)
	}
	return ts, err
}

// A following Shipper reports to the server how far its journal goes;
// once everything is durable, status shows no lag, and the stats and
// hooks account for every window.
func TestShipReports(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(21, 512)
	wl.Entries, wl.DeviceSize = 600, 4<<20
	j, _ := wl.Bytes()
	path := writeJournal(t, j)
	srv := replicatest.Start(t, filepath.Join(t.TempDir(), "srv"), "127.0.0.1:0")
	cfg := config(t, path, srv.Addr, 3, wl.DeviceSize)
	cfg.Follow = true // no end mark: it waits for more once everything is read
	cfg.Tail = journal.TailOptions{Poll: 5 * time.Millisecond, Settle: 4 * time.Millisecond}
	var (
		mu     sync.Mutex
		acked  int64
		maxLat time.Duration
	)
	cfg.Hooks.Acked = func(entries int64, latency time.Duration) {
		mu.Lock()
		acked++
		maxLat = max(maxLat, latency)
		mu.Unlock()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var ts control.TaskStatus
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		for ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			st, err := serverStatus(ctx, srv.Addr, "t")
			if err != nil {
				continue
			}
			if st.Source != nil && st.Source.Head == int64(wl.Entries) && st.Lag != nil && st.Lag.Entries == 0 &&
				st.Durable.NextEntry == int64(wl.Entries) {
				ts = st
				return
			}
		}
		werr = errors.New("the server's status never showed the whole journal durable without lag")
	})
	st, err := s.Run(ctx)
	wg.Wait()
	if werr != nil {
		t.Fatalf("%v; stats %+v", werr, st)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	switch {
	case ts.Source.Journal != st.Journal || ts.Source.Log != path || ts.Source.Read != int64(wl.Entries):
		t.Fatalf("report %+v, stats %+v", ts.Source, st)
	case ts.Lag.Bytes != 0 || ts.Lag.Seconds != 0:
		t.Fatalf("lag %+v once caught up", ts.Lag)
	case ts.Session == nil || ts.Session.Streams != 3:
		t.Fatalf("session %+v", ts.Session)
	}
	switch {
	case st.Read != int64(wl.Entries) || st.Head != int64(wl.Entries):
		t.Fatalf("read %d, head %d, want %d", st.Read, st.Head, wl.Entries)
	case st.ReadOffset != int64(len(j)) || st.DurableOffset != st.ReadOffset:
		t.Fatalf("read offset %d, durable offset %d, the journal has %d bytes", st.ReadOffset, st.DurableOffset, len(j))
	case !st.Oldest.IsZero():
		t.Fatalf("oldest pending entry read at %v, but everything is durable", st.Oldest)
	case st.LogSize != int64(len(j)) || st.Log != path:
		t.Fatalf("log %s of %d bytes", st.Log, st.LogSize)
	}
	var wire int64
	for _, n := range st.StreamWire {
		wire += n
	}
	if len(st.StreamWire) != 3 || wire != st.WireBytes {
		t.Fatalf("wire per stream %v, total %d", st.StreamWire, st.WireBytes)
	}
	mu.Lock()
	defer mu.Unlock()
	if acked != st.Windows || maxLat <= 0 {
		t.Fatalf("hooks: %d windows acked (latency up to %v), %d sent", acked, maxLat, st.Windows)
	}
}

// TestLastErrorByName: the last error a status shows names the server's
// verdict, not its number or a package.
func TestLastErrorByName(t *testing.T) {
	s, err := New(Config{Journal: "j", Addr: "127.0.0.1:1", Client: parallel.ClientConfig{Task: "db"}})
	if err != nil {
		t.Fatal(err)
	}
	s.noteError(&control.TaskError{Task: "db", Err: control.CodeTaskBusy.Remote("replica: another session holds the task")})
	got := s.Stats().LastError
	if !strings.Contains(got, "TASK_BUSY") || strings.Contains(got, "0x103") || strings.Contains(got, "replica:") {
		t.Fatalf("last error %q: want TASK_BUSY by name, without its number or a package prefix", got)
	}
}
