package replica

import (
	"errors"
	"strings"
	"time"

	"github.com/logship/logship/parallel"
)

// Hooks are told what the server does as it happens, for metrics (logship
// serve --metrics). Nil fields are skipped. They are called from the
// session goroutines: they must be quick and must not call the Server.
type Hooks struct {
	// Received: a complete window of task passed its checks.
	Received func(task string, entries, bytes int64)
	// Durable: a window of task is durable and acked, wait after it was
	// received.
	Durable func(task string, wait time.Duration)
	// Applied: a window of task was written to the image, in took.
	Applied func(task string, entries, bytes int64, took time.Duration)
	// Failed: a session of task ended with an error of this kind
	// (ErrorKind).
	Failed func(task, kind string)
}

// ErrorKind names the kind of a server error for metrics and logs: the
// name of its application code (bad_request, task_busy, no_task,
// mismatch, not_open, bad_entry, sequence, no_space, io, shutdown,
// bad_task, no_history, read_only, corrupt, forbidden).
func ErrorKind(err error) string {
	return strings.ToLower(errCode(err).String())
}

// Traffic is what the server's sessions moved, ended ones included.
type Traffic struct {
	// Sessions is the number of sessions running now.
	Sessions int
	// Streams[i] counts the bytes on the wire of stream i of every
	// session (stream 0 also carries the calls and acks).
	Streams []StreamTraffic
}

// StreamTraffic counts the bytes of one stream index.
type StreamTraffic struct {
	In, Out uint64
}

// Traffic returns the bytes moved so far on each stream index.
func (srv *Server) Traffic() Traffic {
	var tr Traffic
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.book.mu.Lock()
	tr.Streams = append(tr.Streams, srv.book.traffic...)
	srv.book.mu.Unlock()
	for ps := range srv.sessions {
		tr.Sessions++
		addTraffic(&tr.Streams, ps.Stats())
	}
	return tr
}

func addTraffic(to *[]StreamTraffic, st parallel.Stats) {
	for i, s := range st.Streams {
		for len(*to) <= i {
			*to = append(*to, StreamTraffic{})
		}
		(*to)[i].In += s.BytesIn
		(*to)[i].Out += s.BytesOut
	}
}

// forget drops ps from the sessions, adding its traffic to that of the
// ended sessions. srv.mu must be held.
func (srv *Server) forget(ps *parallel.Session) {
	if _, ok := srv.sessions[ps]; !ok {
		return
	}
	delete(srv.sessions, ps)
	st := ps.Stats()
	srv.book.mu.Lock()
	addTraffic(&srv.book.traffic, st)
	srv.book.mu.Unlock()
}

// failed tells the hooks how a session of task ended: with err (the
// server's verdict), or with the transport's error perr (the client
// failed or a stream dropped: kind "connection").
func (srv *Server) failed(task string, err, perr error) {
	h := srv.cfg.Hooks.Failed
	switch {
	case h == nil:
	case err != nil && !errors.Is(err, ErrShutdown):
		h(task, ErrorKind(err))
	case err == nil && perr != nil && !errors.Is(perr, parallel.ErrSessionClosed):
		h(task, "connection")
	}
}

// received is called for each window that passed its checks.
func (srv *Server) received(t *task, w *window) {
	w.recv = time.Now()
	if h := srv.cfg.Hooks.Received; h != nil {
		h(t.name, int64(len(w.entries)), w.bytes)
	}
}

// durable is called for the windows of a batch once it is durable and
// acked.
func (srv *Server) durable(t *task, ws ...*window) {
	now := time.Now()
	srv.book.durableAt(t.name, now)
	if h := srv.cfg.Hooks.Durable; h != nil {
		for _, w := range ws {
			h(t.name, now.Sub(w.recv))
		}
	}
}

// applied is called for each window written to the image.
func (srv *Server) applied(t *task, w *window, took time.Duration) {
	srv.marksOf(t.name).note(w)
	if h := srv.cfg.Hooks.Applied; h != nil {
		h(t.name, int64(len(w.entries)), w.bytes, took)
	}
}
