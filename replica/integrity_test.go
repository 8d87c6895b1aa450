package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/parallel"
)

// shipAcked opens task "t" on ts and ships j window by window, each acked
// before the next goes (so that each is its own group commit), then
// crashes the server. It returns the path of the task's staging log.
func shipAcked(t *testing.T, ts *testServer, j *testJournal) string {
	t.Helper()
	ctx := t.Context()
	s := ts.dial(t, "t", 2)
	task, err := openCall(ctx, s, j.open(j.size))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shipJournal(ctx, s, j, task.Durable, shipOpts{limits: barrier.Limits{MaxEntries: 8}, after: func(w sentWindow) error {
		return s.WaitAck(ctx, w.seq)
	}}); err != nil {
		t.Fatal(err)
	}
	ts.crash()
	s.Close()
	ns, err := stagingFiles(filepath.Join(ts.cfg.Dir, "t"))
	if err != nil || len(ns) != 1 {
		t.Fatalf("staging logs %v (%v), want one", ns, err)
	}
	return filepath.Join(ts.cfg.Dir, "t", stagingName(ns[0]))
}

// TestStagingDamageOverServer: a flipped bit in the middle of a task's
// staging log (windows acked after it) keeps the task closed with an
// error naming the file, entry and offset, shown by status, without the
// server's paths; serve --truncate-staging (TruncateStaging) lets it open
// again at the last window before the damage. A torn tail instead
// recovers silently.
func TestStagingDamageOverServer(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(41, 512)
	wl.Entries = 160
	j := newJournal(t, wl)
	cfg := Config{CheckpointEvery: time.Hour, CheckpointBytes: 1 << 40, StagingRotate: 1 << 30}

	t.Run("flipped bit", func(t *testing.T) {
		ts := startServer(t, cfg)
		p := shipAcked(t, ts, j)
		sws := stagedWindows(t, p)
		k := len(sws) / 2
		sw := sws[k]
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[(sw.firstOff+sw.end)/2] ^= 0x08
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := cfg
		cfg.Dir = ts.cfg.Dir
		ts2 := startServer(t, cfg)
		s := ts2.dial(t, "t", 1)
		_, err = openCall(t.Context(), s, j.open(j.size))
		if codeOfErr(err) != control.CodeCorrupt {
			t.Fatalf("open of the damaged task: %v, want CORRUPT", err)
		}
		for _, want := range []string{"staging-000001.log", fmt.Sprintf("entry %d ", sw.first), fmt.Sprintf("byte offset %d", sw.firstOff), "not a torn tail"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("open error %q lacks %q", err, want)
			}
		}
		st := statusOf(t, ts2, "t")
		if !strings.Contains(st.Corrupt, "staging-000001.log") {
			t.Errorf("status does not show the task corrupt: %+v", st)
		}
		for _, msg := range []string{err.Error(), st.Corrupt, st.LastError} {
			if strings.Contains(msg, cfg.Dir) {
				t.Errorf("a reply names the server's directory: %q", msg)
			}
		}
		s.Close()
		ts2.stop()

		// The operator truncates; the task opens before the damage.
		tr, err := TruncateStaging(cfg.Dir, "t")
		if err != nil || tr.Damage == nil || len(tr.Kept) != 1 || tr.Windows != int64(k) {
			t.Fatalf("truncate: %+v, %v; want the damage and %d windows kept", tr, err, k)
		}
		if _, err := os.Stat(filepath.Join(cfg.Dir, "t", tr.Kept[0])); err != nil {
			t.Fatalf("the damaged log was not kept: %v", err)
		}
		ts3 := startServer(t, cfg)
		s3 := ts3.dial(t, "t", 1)
		task, err := openCall(t.Context(), s3, j.open(j.size))
		if err != nil {
			t.Fatal(err)
		}
		if want := sws[k-1].mark.next; task.Durable.NextEntry != want || task.Durable.NextWindow != uint64(k) {
			t.Fatalf("after truncation the task stands at %+v, want entry %d window %d", task.Durable, want, k)
		}
		if st := statusOf(t, ts3, "t"); st.Corrupt != "" {
			t.Fatalf("status after truncation still says corrupt: %q", st.Corrupt)
		}
		resumeAll(t, ts3, s3, j, task.Durable)
	})

	t.Run("torn tail", func(t *testing.T) {
		ts := startServer(t, cfg)
		p := shipAcked(t, ts, j)
		sws := stagedWindows(t, p)
		last := sws[len(sws)-1]
		if err := os.Truncate(p, (last.firstOff+last.end)/2/512*512); err != nil {
			t.Fatal(err)
		}
		cfg := cfg
		cfg.Dir = ts.cfg.Dir
		ts2 := startServer(t, cfg)
		s := ts2.dial(t, "t", 1)
		task, err := openCall(t.Context(), s, j.open(j.size))
		if err != nil {
			t.Fatalf("open after a torn tail: %v", err)
		}
		prev := sws[len(sws)-2].mark
		if task.Durable.NextEntry != prev.next || task.Durable.NextWindow != prev.seq+1 {
			t.Fatalf("recovered to %+v, want the end of window %d", task.Durable, prev.seq)
		}
		resumeAll(t, ts2, s, j, task.Durable)
	})
}

// resumeAll ships the rest of j from pos on s, as a source does after a
// reconnect, and checks the task's image is then the whole journal's.
// (The image itself may hold windows past pos, applied before the crash.)
func resumeAll(t *testing.T, ts *testServer, s *parallel.Session, j *testJournal, pos control.Position) {
	t.Helper()
	ctx := t.Context()
	sent, err := shipJournal(ctx, s, j, pos, shipOpts{limits: barrier.Limits{MaxEntries: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) == 0 {
		t.Fatal("nothing left to resend")
	}
	if err := s.WaitAck(ctx, sent[len(sent)-1].seq); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ts.waitIdle(t)
	sameBytes(t, "image after the resend", readImage(t, ts.cfg.Dir, "t"), j.replayTo(t, -1))
}

// TestReportOnlyFromHolder: only the session holding the task may report
// for it; a session whose open got TASK_BUSY, or that never opened while
// another held the task, is refused (FORBIDDEN) and status keeps the
// holder's report. Once the holder has gone, a new session holds the task
// and may report (ship's follower does, before it can open).
func TestReportOnlyFromHolder(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	ctx := t.Context()
	j := newJournal(t, fixtures.DefaultWorkload(43, 512))
	a := ts.dial(t, "vol", 1)
	if _, err := openCall(ctx, a, j.open(j.size)); err != nil {
		t.Fatal(err)
	}
	var empty struct{}
	report := func(s *parallel.Session, log string) error {
		return call(ctx, s, control.Request{Op: control.OpReport, Report: &control.Report{Journal: j.id, Log: log, Head: 7}}, &empty)
	}
	if err := report(a, "/dev/holder"); err != nil {
		t.Fatalf("report of the holder: %v", err)
	}
	b := ts.dial(t, "vol", 1)
	if _, err := openCall(ctx, b, j.open(j.size)); codeOfErr(err) != control.CodeTaskBusy {
		t.Fatalf("second open: %v, want TASK_BUSY", err)
	}
	c := ts.dial(t, "vol", 1) // never opens
	for name, s := range map[string]*parallel.Session{"busy": b, "unopened": c} {
		err := report(s, "/dev/forged-"+name)
		if !errors.Is(err, parallel.ErrForbidden) {
			t.Fatalf("report from the %s session: %v, want FORBIDDEN", name, err)
		}
	}
	if st := statusOf(t, ts, "vol"); st.Source == nil || st.Source.Log != "/dev/holder" {
		t.Fatalf("status shows report %+v, want the holder's", st.Source)
	}
	a.Close()
	b.Close()
	c.Close()
	ts.waitIdle(t)
	d := ts.dial(t, "vol", 1)
	if err := report(d, "/dev/next"); err != nil {
		t.Fatalf("report of the next holder: %v", err)
	}
	if st := statusOf(t, ts, "vol"); st.Source == nil || st.Source.Log != "/dev/next" {
		t.Fatalf("status shows report %+v, want the next holder's", st.Source)
	}
}

// startServerGrants is startServer with grants, checked by the transport
// at the handshake too when atHandshake.
func startServerGrants(t *testing.T, g *Grants, atHandshake bool) *testServer {
	t.Helper()
	return startServerWith(t, Config{Grants: g}, 0, atHandshake)
}

// TestGrants: a task the identity is not granted is refused with
// FORBIDDEN, at the handshake or (without the transport's check) at open,
// and nothing of it is created; status lists only granted tasks.
func TestGrants(t *testing.T) {
	t.Parallel()
	g, err := ParseGrants(strings.NewReader("# test\ninsecure vol-* other\npsk:x *\n"), "grants")
	if err != nil {
		t.Fatal(err)
	}
	for _, atHandshake := range []bool{true, false} {
		t.Run(fmt.Sprint("handshake=", atHandshake), func(t *testing.T) {
			ts := startServerGrants(t, g, atHandshake)
			ctx := t.Context()
			j := newJournal(t, fixtures.DefaultWorkload(44, 512))
			ok := ts.dial(t, "vol-1", 1)
			if _, err := openCall(ctx, ok, j.open(j.size)); err != nil {
				t.Fatalf("granted task: %v", err)
			}
			ok.Close()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			s, err := parallel.Dial(dctx, ts.addr(), parallel.ClientConfig{Task: "secret", Streams: 1, Insecure: true})
			if err == nil {
				_, err = openCall(ctx, s, j.open(j.size))
				s.Close()
			}
			if !errors.Is(err, parallel.ErrForbidden) {
				t.Fatalf("ungranted task: %v, want FORBIDDEN", err)
			}
			if _, err := os.Stat(filepath.Join(ts.cfg.Dir, "secret")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the ungranted task's directory: %v", err)
			}
			ts.waitIdle(t)
			// Made behind the server's back: status must not show it.
			if err := createTask(ts.cfg.Dir, "hidden", 1<<20, "j", 512); err != nil {
				t.Fatal(err)
			}
			st := ts.dial(t, "", 1)
			var got control.Status
			if err := call(ctx, st, control.Request{Op: control.OpStatus}, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Tasks) != 1 || got.Tasks[0].Name != "vol-1" {
				t.Fatalf("status lists %+v, want only vol-1", got.Tasks)
			}
		})
	}
}

func TestParseGrants(t *testing.T) {
	t.Parallel()
	const cert = "cert:sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		file string
		err  string // in the error; "" for none
		// allowed and refused (identity, task) pairs
		allow, deny [][2]string
	}{
		{file: "", deny: [][2]string{{"insecure", "a"}}},
		{file: "insecure *", allow: [][2]string{{"insecure", "a"}, {"insecure", "b.c"}}, deny: [][2]string{{"psk:default", "a"}}},
		{file: cert + " db-* web\n  # comment\n\n" + cert + " x?", allow: [][2]string{{cert, "db-1"}, {cert, "web"}, {cert, "x1"}},
			deny: [][2]string{{cert, "web2"}, {cert, "db"}, {"insecure", "db-1"}}},
		{file: "* shared\npsk:a own", allow: [][2]string{{"psk:a", "shared"}, {"psk:b", "shared"}, {"psk:a", "own"}}, deny: [][2]string{{"psk:b", "own"}}},
		{file: "insecure", err: "line 1: want IDENTITY TASK-PATTERN"},
		{file: "insecure [", err: "not a valid pattern"},
		{file: "insecure a/b", err: "not a valid pattern"},
		{file: "cert:sha256:XYZ a", err: "64 lower-case hex"},
		{file: "bob a", err: `identity "bob"`},
		{file: "\n\npsk: a", err: "line 3"},
	} {
		g, err := ParseGrants(strings.NewReader(tc.file), "grants")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.file, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.file, err)
			continue
		}
		for _, p := range tc.allow {
			if !g.Allows(p[0], p[1]) {
				t.Errorf("%q: %s not granted %s", tc.file, p[0], p[1])
			}
		}
		for _, p := range tc.deny {
			if g.Allows(p[0], p[1]) {
				t.Errorf("%q: %s granted %s", tc.file, p[0], p[1])
			}
		}
	}
	var none *Grants
	if !none.Allows("anyone", "anything") {
		t.Error("nil grants refuse")
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dirs     []string
		in, want string
	}{
		{[]string{"/srv/logship"}, "replica: opening /srv/logship/t/image: EIO", "replica: opening DIR/t/image: EIO"},
		{[]string{"/srv/logship"}, "directory /srv/logship in use", "directory DIR in use"},
		{[]string{"/home/u/data", "data"}, "open data/t/state and /home/u/data/t/state; metadata/x", "open DIR/t/state and DIR/t/state; metadata/x"},
		{[]string{"data"}, "no data here", "no data here"},
	} {
		srv := &Server{dirs: tc.dirs}
		if got := srv.redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) with %q = %q, want %q", tc.in, tc.dirs, got, tc.want)
		}
	}
}
