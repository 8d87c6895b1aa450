package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/logship/logship/control"
	"github.com/logship/logship/parallel"
)

// testServer is a minimal server for the unit tests: it keeps each task's
// image in memory, applies complete windows in order (entries one by one,
// in journal order), moves the position and acks. It checks what a real
// server must check of a source: window numbers continue from the
// position it gave, entries stay inside the image. The real server is
// package replica; cmd/logship's tests ship to it.
type testServer struct {
	t testing.TB
	l *parallel.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex           // guards the fields below
	tasks    map[string]*testTask //
	sessions []*parallel.Session  // accepted, for Close
	opens    int                  // OpOpen calls
	noImage  bool                 // keep no image: check and drop the data (benchmarks)
	// onWindow, if set, is called before a window is applied; an error
	// fails the session instead (the window is not applied).
	onWindow func(task string, seq uint64) error
}

type testTask struct {
	image   []byte // nil with noImage
	size    int64
	ss      uint32
	pos     control.Position
	windows int // windows applied
	frames  int
}

func newTestServer(t testing.TB, cfg parallel.ServerConfig) *testServer {
	return newTestServerAt(t, "127.0.0.1:0", cfg, nil)
}

// newTestServerAt listens on addr; tasks, when not nil, is the state a
// restarted server finds on its disk.
func newTestServerAt(t testing.TB, addr string, cfg parallel.ServerConfig, tasks map[string]*testTask) *testServer {
	t.Helper()
	if tasks == nil {
		tasks = map[string]*testTask{}
	}
	s := &testServer{t: t, tasks: tasks}
	if cfg.TLS == nil && cfg.PSK == nil {
		cfg.Insecure = true
	}
	cfg.Handler = s.handle
	l, err := parallel.Listen(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.l = l
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Go(s.accept)
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) Addr() string { return s.l.Addr().String() }

// Close stops the server at once, as a crash would: sessions are failed,
// windows not yet applied are lost.
func (s *testServer) Close() {
	s.cancel()
	s.l.Close()
	s.mu.Lock()
	sessions := s.sessions
	s.sessions = nil
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.Fail(parallel.CodeBusy, "server stopping")
	}
	s.wg.Wait()
}

func (s *testServer) accept() {
	for {
		sess, err := s.l.Accept(s.ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.sessions = append(s.sessions, sess)
		s.mu.Unlock()
		s.wg.Go(func() { s.serve(sess) })
	}
}

func (s *testServer) task(name string) *testTask {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tasks[name]
}

// image returns a copy of a task's image.
func (s *testServer) image(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[name]
	if t == nil {
		return nil
	}
	return append([]byte(nil), t.image...)
}

func (s *testServer) handle(ctx context.Context, sess *parallel.Session, body []byte) ([]byte, error) {
	var req control.Request
	if err := control.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	if req.Op != control.OpOpen || req.Open == nil {
		return nil, fmt.Errorf("unknown op %q", req.Op)
	}
	o := req.Open
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens++
	t := s.tasks[sess.Task()]
	created := false
	switch {
	case t == nil && o.Size == 0:
		return nil, control.CodeNoTask.Remote(fmt.Sprintf("no task %q", sess.Task()))
	case t == nil:
		t = &testTask{size: o.Size}
		if !s.noImage {
			t.image = make([]byte, o.Size)
		}
		s.tasks[sess.Task()] = t
		created = true
	case o.Size != 0 && o.Size != t.size:
		return nil, control.CodeMismatch.Remote(fmt.Sprintf("task %q has an image of %d bytes, not %d", sess.Task(), t.size, o.Size))
	}
	if t.pos.Journal != o.Journal {
		t.pos = control.Position{Journal: o.Journal, NextWindow: t.pos.NextWindow}
	}
	t.ss = o.SectorSize
	return control.Marshal(control.Task{Name: sess.Task(), ImageSize: t.size, Created: created, Durable: t.pos}), nil
}

func (s *testServer) serve(sess *parallel.Session) {
	defer sess.Close()
	for {
		w, err := sess.Next(s.ctx)
		if err != nil {
			return
		}
		if err := s.apply(sess, w); err != nil {
			code := control.CodeSequence // the source sent something wrong
			if errors.Is(err, errHook) {
				code = control.CodeIO // a server failure: the source retries
			}
			sess.Fail(parallel.Code(code), err.Error())
			return
		}
		w.Release()
		sess.Ack(w.Seq)
	}
}

func (s *testServer) apply(sess *parallel.Session, w *parallel.Window) error {
	s.mu.Lock()
	hook := s.onWindow
	s.mu.Unlock()
	if hook != nil {
		if err := hook(sess.Task(), w.Seq); err != nil {
			return fmt.Errorf("%w: %w", errHook, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[sess.Task()]
	if t == nil {
		return errors.New("window before open")
	}
	if w.Seq != t.pos.NextWindow {
		return fmt.Errorf("window %d, want %d", w.Seq, t.pos.NextWindow)
	}
	if len(w.Frames) == 0 {
		return fmt.Errorf("empty window %d", w.Seq)
	}
	next := t.pos.NextEntry
	for _, f := range w.Frames {
		e, data, err := control.ParseEntry(f.Payload, int64(f.Entry), t.ss)
		if err != nil {
			return err
		}
		if e.End() > t.size {
			return fmt.Errorf("entry %d past the image", e.Index)
		}
		switch {
		case t.image == nil:
		case e.IsDiscard():
			clear(t.image[e.Start():e.End()])
		case e.IsWrite():
			copy(t.image[e.Start():], data)
		}
		next = max(next, e.Index+1)
		t.frames++
	}
	t.pos.NextEntry, t.pos.NextWindow = next, w.Seq+1
	t.windows++
	return nil
}

var errHook = errors.New("test server hook")
