package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// Defaults for zero Config fields.
const (
	DefaultParallel        = 4
	DefaultCheckpointEvery = time.Second
	DefaultCheckpointBytes = 256 << 20
	DefaultStagingRotate   = 256 << 20
)

// Config configures a Server.
type Config struct {
	// Dir holds one directory per task; created if missing.
	Dir string
	// SyncPerWindow applies every window, syncs the image and rewrites
	// the state before acking it. Without it (the default) windows are
	// group-committed through the staging log.
	SyncPerWindow bool
	// Retain keeps the staging logs after their windows are checkpointed
	// (for recovery to a mark later).
	Retain bool
	// Parallel is the number of concurrent writes inside a window
	// (DefaultParallel if 0).
	Parallel int
	// CheckpointEvery and CheckpointBytes say how often, in group commit,
	// the image is synced and the checkpoint moved: after this much time
	// or this many bytes applied, whichever comes first.
	CheckpointEvery time.Duration
	CheckpointBytes int64
	// StagingRotate starts a new staging log once one holds this many
	// bytes (DefaultStagingRotate if 0).
	StagingRotate int64
	// WriteThrough, in group commit, writes every window of at least
	// this many payload bytes straight to the image instead of through
	// the staging log: the windows before it are applied, the window is
	// written, the image synced and the checkpoint moved past it before
	// it is acked. Its bytes are written once instead of twice. A crash
	// during such a window leaves the image, once recovered, at the
	// durable position plus part of the next window (as with
	// SyncPerWindow); the source resends it. 0 (the default) never
	// writes through; Retain turns it off (the history must hold every
	// window).
	WriteThrough int64
	// Log is told what the server does (sessions, recoveries, failures),
	// with levels and attributes. If nil, Logf is told instead.
	Log *slog.Logger
	// Logf, if set and Log is nil, is told what the server does, one
	// line ("message key=value ...") per event.
	Logf func(format string, args ...any)
	// Hooks are told of windows and failures as they happen (metrics).
	Hooks Hooks
	// Grants say which tasks each client identity may use; nil grants
	// every identity every task. Give the transport Server.Authorize so
	// that a session naming a task it is not granted is refused at its
	// handshake; the server checks again in every call.
	Grants *Grants

	// offline: Open recovers nothing (RemoveTask, ResizeTask).
	offline bool
}

func (c *Config) defaults() {
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = DefaultCheckpointEvery
	}
	if c.CheckpointBytes <= 0 {
		c.CheckpointBytes = DefaultCheckpointBytes
	}
	if c.StagingRotate <= 0 {
		c.StagingRotate = DefaultStagingRotate
	}
}

// A Server keeps the tasks of one directory and serves sessions of a
// parallel.Listener: Open it (which recovers every task), pass its Handle
// method as the listener's call handler, run Serve, then Close.
type Server struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File // DIR/.lock, flocked

	mu       sync.Mutex                     // guards the maps
	claims   map[string]*session            // task name → the session using it
	sessions map[*parallel.Session]*session // sessions known to Serve or Handle
	lastErr  map[string]string              // task name → why its last session failed
	corrupt  map[string]string              // task name → why it stays closed (ErrCorrupt in recovery)
	idle     chan struct{}                  // closed and replaced whenever a claim is released
	marks    map[string]*appliedMarks       // task name → the source marks last applied to its image

	book book // reports, durable times, traffic (report.go)

	dirs []string // cfg.Dir as given and absolute, longest first (redact)

	// abandon makes sessions stop without syncing anything more, as if
	// the process died (tests).
	abandon atomic.Bool
}

// Open opens (creating if needed) the server directory cfg.Dir, takes its
// lock, and recovers every task in it: the staging log of each is
// replayed from its checkpoint onto its image before Open returns.
// A task that cannot be recovered is reported through the log and left for
// its next open to retry; it does not stop the server.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("replica: no directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, ioErr("creating", cfg.Dir, err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	srv := &Server{
		cfg:      cfg,
		log:      cfg.logger(),
		lock:     lock,
		claims:   make(map[string]*session),
		sessions: make(map[*parallel.Session]*session),
		lastErr:  make(map[string]string),
		corrupt:  make(map[string]string),
		idle:     make(chan struct{}),
		marks:    make(map[string]*appliedMarks),
	}
	if abs, err := filepath.Abs(cfg.Dir); err == nil && abs != filepath.Clean(cfg.Dir) {
		srv.dirs = append(srv.dirs, abs)
	}
	if d := filepath.Clean(cfg.Dir); d != "." && d != "/" {
		srv.dirs = append(srv.dirs, d)
	}
	if cfg.offline {
		return srv, nil
	}
	if err := srv.recoverAll(ctx); err != nil {
		lock.Close()
		return nil, err
	}
	return srv, nil
}

// lockDir takes the lock of server directory dir (DIR/.lock).
func lockDir(dir string) (*os.File, error) {
	lp := filepath.Join(dir, ".lock")
	lock, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, ioErr("opening", lp, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDirBusy, dir)
		}
		return nil, ioErr("locking", lp, err)
	}
	return lock, nil
}

// Close releases the directory. Serve must have returned.
func (srv *Server) Close() error {
	return srv.lock.Close()
}

// Dir returns the server's directory.
func (srv *Server) Dir() string { return srv.cfg.Dir }

// recoverAll removes what an interrupted task creation left and recovers
// every task.
func (srv *Server) recoverAll(ctx context.Context) error {
	des, err := os.ReadDir(srv.cfg.Dir)
	if err != nil {
		return ioErr("listing", srv.cfg.Dir, err)
	}
	for _, de := range des {
		name := de.Name()
		if (strings.HasPrefix(name, ".new-") || strings.HasPrefix(name, rmPrefix)) && de.IsDir() {
			os.RemoveAll(filepath.Join(srv.cfg.Dir, name))
			continue
		}
		if !de.IsDir() || CheckTask(name) != nil {
			continue
		}
		t, err := openTask(srv.cfg.Dir, name)
		if err == nil {
			var res recoverResult
			res, err = t.recover(ctx, srv.cfg.Retain, srv.cfg.Parallel)
			if err == nil && res.Windows > 0 {
				srv.log.Info("recovered from the staging log", "task", name, "windows", res.Windows, "position", fmtPos(t.position()), "stop", res.Stop)
			}
			t.close()
		}
		if err != nil {
			srv.log.Error("recovery failed, will retry on open", "task", name, "err", err)
			srv.lastErr[name] = err.Error()
			srv.noteCorrupt(name, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func fmtPos(p control.Position) string {
	return fmt.Sprintf("window %d, entry %d of %s", p.NextWindow, p.NextEntry, p.Journal)
}

// Serve runs the sessions that l accepts until ctx is canceled, then makes
// every session stop (telling its client SHUTDOWN), waits until each has
// made what it received durable and closed its task, and returns nil. It
// returns early with the error of l.Accept if the listener fails. The
// caller closes l afterwards.
func (srv *Server) Serve(ctx context.Context, l *parallel.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		ps, err := l.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() { srv.serveSession(ctx, ps) })
	}
}

// noteCorrupt remembers that task name cannot be opened because its state
// is damaged (err wraps ErrCorrupt), for status and metrics, and forgets
// it when err is nil (the task opened). srv.mu must not be held.
func (srv *Server) noteCorrupt(name string, err error) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	switch {
	case err == nil:
		delete(srv.corrupt, name)
	case errors.Is(err, ErrCorrupt):
		srv.corrupt[name] = err.Error()
	}
}

// redact replaces the server's directory in a message for a client with
// "DIR": clients are not told the server's paths. The paths in errors
// are the directory joined with names inside it; the absolute directory
// alone is replaced too.
func (srv *Server) redact(msg string) string {
	for _, d := range srv.dirs {
		msg = replacePath(msg, d+string(filepath.Separator), "DIR"+string(filepath.Separator))
		if filepath.IsAbs(d) {
			msg = replacePath(msg, d, "DIR")
		}
	}
	return msg
}

// replacePath replaces old with new in s where old starts a path: at the
// start of s or after a character that cannot be part of one.
func replacePath(s, old, new string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		if i == 0 || strings.ContainsRune(" \t\"'`(=:,;[{<", rune(s[i-1])) {
			b.WriteString(s[:i])
			b.WriteString(new)
		} else {
			b.WriteString(s[:i+len(old)])
		}
		s = s[i+len(old):]
	}
}

// session returns the server's record of ps, making it if needed.
func (srv *Server) session(ps *parallel.Session) *session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	ss := srv.sessions[ps]
	if ss == nil {
		ss = &session{srv: srv, ps: ps, accepted: make(chan struct{}), started: time.Now()}
		srv.sessions[ps] = ss
	}
	return ss
}

// acceptedSession returns the server's session of ps once serveSession has
// accepted it (claimed its task, or failed to). When ctx ends first, it
// forgets the session (serveSession may never have started) and returns
// ErrShutdown.
func (srv *Server) acceptedSession(ctx context.Context, ps *parallel.Session) (*session, error) {
	ss := srv.session(ps)
	select {
	case <-ss.accepted:
		return ss, nil
	case <-ctx.Done():
		srv.mu.Lock()
		delete(srv.sessions, ps)
		srv.mu.Unlock()
		return nil, ErrShutdown
	}
}

// claimWait bounds how long a new session waits for an ending session
// of the same task to let it go.
const claimWait = time.Minute

// claim gives task name to ss. It refuses when another live session has
// the task; when that session is ending (its client closed or it failed)
// it waits, up to claimWait, for it to finish with the task, so that a
// source that reconnects at once is not turned away.
func (srv *Server) claim(ctx context.Context, ss *session, name string) error {
	timer := time.NewTimer(claimWait)
	defer timer.Stop()
	for {
		srv.mu.Lock()
		other := srv.claims[name]
		if other == nil {
			srv.claims[name] = ss
			srv.mu.Unlock()
			return nil
		}
		released := srv.idle
		srv.mu.Unlock()
		select {
		case <-other.ps.Done():
		default:
			return fmt.Errorf("%w: task %s is used by another session (%x); retry when it has ended", ErrTaskBusy, name, other.ps.ID())
		}
		srv.log.Info("waiting for the previous session of the task to finish", "session", fmt.Sprintf("%x", ss.ps.ID()), "task", name, "previous", fmt.Sprintf("%x", other.ps.ID()))
		select {
		case <-released:
		case <-timer.C:
			return fmt.Errorf("%w: task %s: the previous session (%x) is still finishing after %v; retry later", ErrTaskBusy, name, other.ps.ID(), claimWait)
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrShutdown, ctx.Err())
		case <-ss.ps.Done():
			return fmt.Errorf("%w: the session ended while waiting for task %s", ErrTaskBusy, name)
		}
	}
}

// serveSession runs one session from start to end.
func (srv *Server) serveSession(ctx context.Context, ps *parallel.Session) {
	ss := srv.session(ps)
	name := ps.Task()
	var err error
	forbidden := false
	if name != "" {
		if err = srv.Authorize(ps.Identity(), name); err != nil {
			forbidden = true
		} else if err = CheckTask(name); err == nil {
			if err = srv.claim(ctx, ss, name); err == nil {
				ss.claimed = true
			}
		}
	}
	ss.claimErr = err
	close(ss.accepted)
	// Sessions without a task only make calls (status): debug.
	lvl := slog.LevelInfo
	if name == "" {
		lvl = slog.LevelDebug
	}
	srv.log.Log(ctx, lvl, "session", "session", fmt.Sprintf("%x", ps.ID()), "task", name, "streams", ps.Streams(), "auth", ps.Auth())
	if err == nil || errors.Is(err, ErrTaskBusy) {
		// A session whose task is busy learns it from its open call (a
		// live open at a mark shares the task instead).
		err = ss.receive(ctx)
	}
	if err != nil {
		ps.Fail(codeOf(err), srv.redact(err.Error()))
		lvl := slog.LevelWarn
		if errors.Is(err, ErrShutdown) {
			lvl = slog.LevelInfo
		}
		srv.log.Log(ctx, lvl, "session failed", "session", fmt.Sprintf("%x", ps.ID()), "task", name, "kind", ErrorKind(err), "err", err)
	} else {
		srv.log.Log(ctx, lvl, "session ended", "session", fmt.Sprintf("%x", ps.ID()), "task", name, "how", ps.Err())
	}
	ps.Close() // waits for the call handlers
	ss.mu.Lock()
	t := ss.t
	ss.t = nil
	ss.mu.Unlock()
	ss.task.Store(nil)
	if t != nil {
		if cerr := t.close(); cerr != nil {
			srv.log.Error("closing the task failed", "task", name, "err", cerr)
		}
	}
	if !forbidden { // the name is the peer's: no metrics for it
		srv.failed(name, err, ps.Err())
	}
	srv.mu.Lock()
	srv.forget(ps)
	if ss.claimed {
		delete(srv.claims, name)
		if err != nil {
			srv.lastErr[name] = err.Error()
		} else if perr := ps.Err(); perr != nil && !errors.Is(perr, parallel.ErrSessionClosed) {
			srv.lastErr[name] = perr.Error() // the client failed, or a stream dropped
		}
		close(srv.idle)
		srv.idle = make(chan struct{})
	}
	srv.mu.Unlock()
}

// WaitIdle waits until no session holds a task: every session that was
// using one has ended, made what it received durable, applied it to the
// image and closed it. A source that has closed its session and wants to
// read the image calls it (in-process), or stops the server.
func (srv *Server) WaitIdle(ctx context.Context) error {
	for {
		srv.mu.Lock()
		n, ch := len(srv.claims), srv.idle
		srv.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Handle answers the calls of control (docs/protocol.md section 7.1). It
// is the parallel.Handler to give the listener. A call on a session that
// names a task its identity is not granted is refused (ErrForbidden)
// before anything else; error replies do not name the server's
// directory.
func (srv *Server) Handle(ctx context.Context, ps *parallel.Session, req []byte) ([]byte, error) {
	resp, err := srv.handle(ctx, ps, req)
	var re *parallel.RemoteError
	if errors.As(err, &re) {
		re.Msg = srv.redact(re.Msg)
	}
	return resp, err
}

func (srv *Server) handle(ctx context.Context, ps *parallel.Session, req []byte) ([]byte, error) {
	if name := ps.Task(); name != "" {
		if err := srv.Authorize(ps.Identity(), name); err != nil {
			return nil, remote(err)
		}
	}
	var r control.Request
	if err := control.Unmarshal(req, &r); err != nil {
		return nil, remote(fmt.Errorf("%w: %w", ErrBadRequest, err))
	}
	switch r.Op {
	case control.OpStatus:
		id := ps.Identity()
		st, err := srv.status(func(task string) bool { return srv.cfg.Grants.Allows(id, task) })
		if err != nil {
			return nil, remote(err)
		}
		for i := range st.Tasks {
			ts := &st.Tasks[i]
			ts.LastError, ts.Corrupt = srv.redact(ts.LastError), srv.redact(ts.Corrupt)
		}
		return control.Marshal(st), nil
	case control.OpOpen:
		if r.Open == nil {
			return nil, remote(fmt.Errorf("%w: open without its fields", ErrBadRequest))
		}
		ss, err := srv.acceptedSession(ctx, ps)
		if err != nil {
			return nil, remote(err)
		}
		t, err := ss.open(ctx, *r.Open)
		if err != nil {
			return nil, remote(err)
		}
		return control.Marshal(t), nil
	case control.OpDigests, control.OpRead:
		return srv.handleBlocks(ctx, ps, r) // blocks.go
	case control.OpReport:
		return srv.handleReport(ctx, ps, r.Report) // report.go
	case control.OpRemove, control.OpResize:
		return srv.handleAdmin(ctx, ps, r) // admin.go
	}
	return nil, remote(fmt.Errorf("%w: unknown op %q", ErrBadRequest, r.Op))
}

// status lists the tasks of the directory for which show holds.
func (srv *Server) status(show func(task string) bool) (control.Status, error) {
	des, err := os.ReadDir(srv.cfg.Dir)
	if err != nil {
		return control.Status{}, ioErr("listing", srv.cfg.Dir, err)
	}
	st := control.Status{Tasks: []control.TaskStatus{}}
	for _, de := range des {
		name := de.Name()
		if !de.IsDir() || CheckTask(name) != nil || !show(name) {
			continue
		}
		ts := control.TaskStatus{Name: name}
		srv.mu.Lock()
		ts.LastError = srv.lastErr[name]
		ts.Corrupt = srv.corrupt[name]
		var t *task
		ss := srv.claims[name]
		if ss != nil {
			t = ss.task.Load()
		}
		srv.mu.Unlock()
		if t != nil {
			ts.ImageSize, ts.Durable = t.state().Size, t.position()
		} else if s, err := loadState(filepath.Join(srv.cfg.Dir, name)); err == nil {
			ts.ImageSize, ts.Durable = s.Size, s.Durable
		} else if ts.LastError == "" {
			ts.LastError = err.Error()
		}
		srv.describe(&ts, ss)
		st.Tasks = append(st.Tasks, ts)
	}
	return st, nil
}

// checkOpen refuses open fields that cannot be right.
func checkOpen(o control.Open) error {
	switch {
	case o.Size < 0:
		return fmt.Errorf("%w: open: size %d", ErrBadRequest, o.Size)
	case !journal.ValidSectorSize(int(o.SectorSize)):
		return fmt.Errorf("%w: open: sector size %d is not a power of two from %d to %d", ErrBadRequest, o.SectorSize, journal.MinSectorSize, journal.MaxSectorSize)
	case len(o.Journal) > control.MaxJournalID:
		return fmt.Errorf("%w: open: journal identity of %d bytes, at most %d", ErrBadRequest, len(o.Journal), control.MaxJournalID)
	case o.Live && o.At == "":
		return fmt.Errorf("%w: open: live without a mark", ErrBadRequest)
	case len(o.At) > MaxAtLabel:
		return fmt.Errorf("%w: open: a mark label of %d bytes, at most %d", ErrBadRequest, len(o.At), MaxAtLabel)
	}
	for i := 0; i < len(o.Journal); i++ {
		if c := o.Journal[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: open: journal identity %q: byte %#02x is not printable ASCII", ErrBadRequest, o.Journal, c)
		}
	}
	return nil
}
