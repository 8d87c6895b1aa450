package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// testServer is a Server serving a real listener on loopback.
type testServer struct {
	srv    *Server
	l      *parallel.Listener
	cfg    Config
	cancel context.CancelFunc
	done   chan error
}

// startServer opens a Server on cfg.Dir (a new temp dir if empty) and
// serves it on 127.0.0.1, insecure, until the test ends.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	return startServerCredit(t, cfg, 0)
}

// startServerCredit is startServer with the transport's credit (0: the
// default).
func startServerCredit(t testing.TB, cfg Config, credit int64) *testServer {
	t.Helper()
	return startServerWith(t, cfg, credit, false)
}

// startServerWith is startServer with the transport's credit (0: the
// default) and, when authorize, the server's grants checked by the
// transport at the handshake too.
func startServerWith(t testing.TB, cfg Config, credit int64, authorize bool) *testServer {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if testing.Verbose() && cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	srv, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	scfg := parallel.ServerConfig{Insecure: true, Handler: srv.Handle, Credit: credit}
	if authorize {
		scfg.Authorize = srv.Authorize
	}
	l, err := parallel.Listen("127.0.0.1:0", scfg)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, l: l, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx, l) }()
	t.Cleanup(ts.stop)
	return ts
}

// stop shuts the server down in order (idempotent).
func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	<-ts.done
	ts.l.Close()
	ts.srv.Close()
	ts.cancel = nil
}

// crash stops the server as if its process died: nothing more is synced,
// no checkpoint moves.
func (ts *testServer) crash() {
	ts.srv.abandon.Store(true)
	ts.stop()
}

func (ts *testServer) addr() string { return ts.l.Addr().String() }

func (ts *testServer) dial(t testing.TB, task string, streams int) *parallel.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := parallel.Dial(ctx, ts.addr(), parallel.ClientConfig{Task: task, Streams: streams, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitIdle waits until every session has ended on the server.
func (ts *testServer) waitIdle(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := ts.srv.WaitIdle(ctx); err != nil {
		t.Fatalf("server sessions did not end: %v", err)
	}
}

func call(ctx context.Context, s *parallel.Session, req control.Request, reply any) error {
	b, err := s.Call(ctx, control.Marshal(req))
	if err != nil {
		return err
	}
	return control.Unmarshal(b, reply)
}

func openCall(ctx context.Context, s *parallel.Session, o control.Open) (control.Task, error) {
	var t control.Task
	err := call(ctx, s, control.Request{Op: control.OpOpen, Open: &o}, &t)
	return t, err
}

// codeOfErr returns the code of a *parallel.RemoteError in err, or
// 0xFFFF (not a code) if there is none.
func codeOfErr(err error) control.Code {
	if c, ok := control.CodeOf(err); ok {
		return c
	}
	return 0xFFFF
}

// testJournal is a synthetic journal and what shipping it needs.
type testJournal struct {
	b    []byte
	id   string
	ss   int
	size int64
}

func newJournal(t testing.TB, wl fixtures.Workload) *testJournal {
	t.Helper()
	b, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return &testJournal{b: b, id: fmt.Sprintf("test:%d:%d", wl.Seed, wl.SectorSize), ss: wl.SectorSize, size: wl.DeviceSize}
}

func (j *testJournal) open(size int64) control.Open {
	return control.Open{Size: size, Journal: j.id, SectorSize: uint32(j.ss)}
}

// replayTo is the reference image: entries [0, next) of the journal
// replayed one at a time onto zeros; all of them when next < 0.
func (j *testJournal) replayTo(t testing.TB, next int64) []byte {
	t.Helper()
	img := make([]byte, j.size)
	if next == 0 {
		return img
	}
	if err := fixtures.ReplaySequential(j.b, img, max(next-1, -1)); err != nil {
		t.Fatal(err)
	}
	return img
}

// sentWindow is a window the test client sent.
type sentWindow struct {
	seq         uint64
	first, last int64 // entry range; last = first-1 for an empty window
}

// openAndShip opens s's task for j, ships j from the durable position
// with o and waits for the last window's ack; it returns the windows sent.
// Any failure, or no window sent, is fatal.
func openAndShip(ctx context.Context, t testing.TB, s *parallel.Session, j *testJournal, o shipOpts) []sentWindow {
	t.Helper()
	task, err := openCall(ctx, s, j.open(j.size))
	if err != nil {
		t.Fatal(err)
	}
	sent, err := shipJournal(ctx, s, j, task.Durable, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) == 0 {
		t.Fatalf("no window sent from %+v", task.Durable)
	}
	if err := s.WaitAck(ctx, sent[len(sent)-1].seq); err != nil {
		t.Fatal(err)
	}
	return sent
}

// shipAll creates task name with j's device size, ships all of j and
// waits until the session has ended; it returns the windows sent.
func shipAll(t *testing.T, ts *testServer, name string, j *testJournal) []sentWindow {
	t.Helper()
	s := ts.dial(t, name, 2)
	sent := openAndShip(t.Context(), t, s, j, shipOpts{})
	s.Close()
	ts.waitIdle(t)
	return sent
}

// finishShip opens task "t" on a new session of ts, ships the rest of j
// from the durable position open reports, waits for the acks and for the
// session to end, and checks that the image is all of j replayed. It
// returns the position it resumed from.
func finishShip(ctx context.Context, t testing.TB, ts *testServer, j *testJournal) control.Position {
	t.Helper()
	s := ts.dial(t, "t", 4)
	task, err := openCall(ctx, s, j.open(j.size))
	if err != nil {
		t.Fatal(err)
	}
	sent, err := shipJournal(ctx, s, j, task.Durable, shipOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) > 0 {
		if err := s.WaitAck(ctx, sent[len(sent)-1].seq); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	ts.waitIdle(t)
	sameBytes(t, "final image", readImage(t, ts.cfg.Dir, "t"), j.replayTo(t, -1))
	return task.Durable
}

// shipCrashing ships j to task "t" of ts over streams streams, in windows
// of 8 entries, and crashes the server (ts.crash) once window crash is
// acked. It returns the windows sent and the last one acked.
func shipCrashing(ctx context.Context, t testing.TB, ts *testServer, j *testJournal, streams int, crash uint64) ([]sentWindow, uint64) {
	t.Helper()
	s := ts.dial(t, "t", streams)
	defer s.Close()
	task, err := openCall(ctx, s, j.open(j.size))
	if err != nil {
		t.Fatal(err)
	}
	sent, _ := shipJournal(ctx, s, j, task.Durable, shipOpts{limits: barrier.Limits{MaxEntries: 8}, after: func(w sentWindow) error {
		if w.seq == crash {
			if err := s.WaitAck(ctx, w.seq); err != nil {
				return err
			}
			ts.crash()
		}
		return nil
	}})
	acked, ok := s.Acked()
	if !ok || acked < crash {
		t.Fatalf("acked %d (%v), want at least %d", acked, ok, crash)
	}
	return sent, acked
}

// restartRecovered starts a server with cfg on ts's directory after a
// crash and checks that it recovered task "t" to the end of one of the
// windows sent, at or after the last acked one, with the image of j
// replayed exactly to there. It returns the server and the recovered
// durable position.
func restartRecovered(t testing.TB, ts *testServer, cfg Config, j *testJournal, sent []sentWindow, acked uint64) (*testServer, control.Position) {
	t.Helper()
	cfg.Dir = ts.cfg.Dir
	ts2 := startServer(t, cfg)
	st, err := loadState(filepath.Join(cfg.Dir, "t"))
	if err != nil {
		t.Fatal(err)
	}
	d := st.Durable
	boundary := false
	for _, w := range sent {
		if w.seq >= acked && d == (control.Position{Journal: j.id, NextEntry: w.last + 1, NextWindow: w.seq + 1}) {
			boundary = true
		}
	}
	if !boundary {
		t.Fatalf("recovered to %+v: not the end of a window at or after the last acked window %d", d, acked)
	}
	t.Logf("acked window %d, recovered to window %d (entry %d)", acked, d.NextWindow-1, d.NextEntry)
	sameBytes(t, "recovered image", readImage(t, cfg.Dir, "t"), j.replayTo(t, d.NextEntry))
	return ts2, d
}

// shipOpts tune shipJournal.
type shipOpts struct {
	limits   barrier.Limits
	maxFrame int   // split writes into frames of at most this many payload bytes (0: whole)
	stopAt   int64 // stop after the window holding this entry (0: ship all)
	// after is called after each window is queued.
	after func(w sentWindow) error
}

// shipJournal sends j's windows from position from, the way a source
// does: barrier windows, an entry per frame (or several for a split
// write). It returns the windows sent.
func shipJournal(ctx context.Context, s *parallel.Session, j *testJournal, from control.Position, o shipOpts) ([]sentWindow, error) {
	r, err := journal.NewReader(bytes.NewReader(j.b), int64(len(j.b)))
	if err != nil {
		return nil, err
	}
	if err := r.SeekEntry(from.NextEntry); err != nil {
		return nil, err
	}
	var sent []sentWindow
	seq := from.NextWindow
	for w, err := range barrier.Split(r, o.limits) {
		if err != nil {
			return sent, err
		}
		for _, e := range w.Entries {
			data := make([]byte, e.PayloadLen())
			if err := r.ReadPayload(e, data); err != nil {
				return sent, err
			}
			for _, fr := range entryFrames(e, data, o.maxFrame) {
				if err := s.SendFrame(ctx, parallel.Frame{Window: seq, Entry: uint64(e.Index), Payload: fr}); err != nil {
					return sent, err
				}
			}
		}
		if err := s.EndWindow(ctx, seq); err != nil {
			return sent, err
		}
		sw := sentWindow{seq: seq, first: w.First(), last: w.Last()}
		sent = append(sent, sw)
		if o.after != nil {
			if err := o.after(sw); err != nil {
				return sent, err
			}
		}
		seq++
		if o.stopAt > 0 && w.Last() >= o.stopAt {
			break
		}
	}
	return sent, nil
}

// entryFrames encodes an entry as frame payloads, splitting a write into
// pieces of at most maxFrame bytes.
func entryFrames(e journal.Entry, data []byte, maxFrame int) [][]byte {
	if !e.IsWrite() || maxFrame <= 0 || len(data) <= maxFrame {
		return [][]byte{control.AppendEntry(nil, e, data)}
	}
	ss := int(e.SectorSize)
	step := max(maxFrame/ss, 1) * ss
	var out [][]byte
	for off := 0; off < len(data); off += step {
		n := min(step, len(data)-off)
		p := e
		p.Sector = e.Sector + uint64(off/ss)
		p.NrSectors = uint64(n / ss)
		out = append(out, control.AppendEntry(nil, p, data[off:off+n]))
	}
	return out
}

// readImage reads a task's image.
func readImage(t testing.TB, dir, task string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, task, imageFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameBytes fails the test at the first byte where got and want differ.
func sameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s: differs from the reference at byte %d (sector %d)", what, i, i/512)
	}
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a); i += 4096 {
		e := min(i+4096, len(a))
		if !bytes.Equal(a[i:e], b[i:e]) {
			for k := i; k < e; k++ {
				if a[k] != b[k] {
					return k
				}
			}
		}
	}
	return -1
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
