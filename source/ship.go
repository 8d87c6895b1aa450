package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/blocksync"
	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/retry"
)

// Defaults for zero fields of Config.
const (
	DefaultRetryFor  = 5 * time.Minute
	DefaultTick      = 200 * time.Millisecond
	DefaultIdleFlush = 100 * time.Millisecond
	DefaultDrain     = 10 * time.Second
)

// Sentinel errors, for errors.Is. None of them is cured by reconnecting.
var (
	// ErrOutsideImage: an entry touches bytes past the end of the task's image.
	ErrOutsideImage = errors.New("source: entry outside the image")
	// ErrEntryTooLarge: a write larger than the server's credit allows in
	// one window.
	ErrEntryTooLarge = blocksync.ErrEntryTooLarge
	// ErrJournalMismatch: the server answered for another journal.
	ErrJournalMismatch = errors.New("source: the server's position is for another journal")
	// ErrWentBack: the server says a durable position behind what it
	// acked to this Shipper: it lost windows it had made durable.
	ErrWentBack = errors.New("source: the server's durable position went back")
)

// Config configures a Shipper.
type Config struct {
	// Journal is the path of the journal: a file, or a log device.
	Journal string
	// Addr is the server's host:port.
	Addr string
	// Client configures the session: Task (required), Streams, one of
	// TLS, PSK and Insecure, Compress, Timeouts.
	Client parallel.ClientConfig
	// Size creates the task with an image of Size bytes when it does not
	// exist (and is refused by the server if the task exists with another
	// size). 0: see DefaultSize.
	Size int64
	// DefaultSize, when Size is 0, is the size of the image if the task
	// does not exist yet; an existing task is used whatever its size. 0:
	// the task must exist.
	DefaultSize int64
	// FromMark starts shipping after the first mark with this label, unless
	// the server already has entries of this journal past it.
	FromMark string
	// Follow tails a live journal until its end mark (or until ctx ends)
	// instead of shipping a journal at rest to its last counted entry.
	Follow bool
	// Direct reads a regular file with O_DIRECT too (a block device always
	// is read with O_DIRECT).
	Direct bool
	// Tail tunes the Tailer (Follow). A zero Poll is 50 ms; a zero
	// Settle is 4/5 of Poll: journal.Tailer promotes a count to settled
	// only if the superblock did not change for Settle, so a Settle
	// longer than Poll would stall while a busy log rewrites its
	// superblock more often than that (it does with tick marks); with
	// Settle below Poll every poll settles the count of the poll before.
	Tail journal.TailOptions
	// Limits caps windows; they are further capped so that a window costs
	// at most half the server's credit.
	Limits barrier.Limits
	// BytesPerSecond limits the DATA payload bytes sent per second; 0: no
	// limit.
	BytesPerSecond int64
	// RetryFor is how long Run keeps reconnecting while no window gets
	// acked (DefaultRetryFor if 0; negative: never reconnect).
	RetryFor time.Duration
	// DMName names the device-mapper device of the log-writes target: its
	// status is watched (ErrLoggingDisabled) and marks are sent every Tick.
	DMName string
	// Tick is how often the target's status is read and, when entries were
	// logged since the last mark, a mark is sent (DefaultTick if 0;
	// negative: no marks, the status every second).
	Tick time.Duration
	// IdleFlush: with Follow, the open window is sent when the journal has
	// nothing new for this long (DefaultIdleFlush if 0).
	IdleFlush time.Duration
	// Drain bounds how long Run, once ctx ends, still waits for the
	// windows it sent to be acked (DefaultDrain if 0).
	Drain time.Duration
	// Log receives the retries and warnings (slog.Default() if nil).
	Log *slog.Logger
	// Hooks are told of acks and failures (metrics; report.go).
	Hooks Hooks
	// Seq is the journal's place in a rotation (rotate.go), for reports.
	Seq uint64

	dm dmTarget // the device-mapper; devio if nil (tests replace it)
}

// Stats counts what a Shipper did. Counters cover all sessions of a Run:
// entries re-sent after a reconnect count again.
type Stats struct {
	Journal    string           // the journal's identity (JournalID)
	Task       string           // the task name
	ImageSize  int64            // the task's image size, bytes
	Streams    int              // streams per session
	Entries    int64            // entries sent
	Windows    int64            // windows sent
	Frames     int64            // DATA frames sent
	Bytes      int64            // DATA payload bytes sent (entry headers and data)
	Skipped    int64            // entries before FromMark sent as no-ops
	WireBytes  int64            // bytes on the wire (frame headers, after compression)
	Sessions   int              // sessions opened
	Reconnects int              // sessions opened after a failure
	Durable    control.Position // the server's durable position, as last known
	Elapsed    time.Duration    // since Run started

	// For status and metrics (report.go).
	Log           string       // the journal's path
	Seq           uint64       // Config.Seq
	LogSize       int64        // the journal's size in bytes
	Read          int64        // entries read: the index of the next one
	Head          int64        // entries the journal is known to hold
	ReadOffset    int64        // journal offset after the last entry read
	DurableOffset int64        // journal offset of the first entry not durable (0: unknown)
	Oldest        time.Time    // when the oldest entry read and not yet durable was read; zero: none
	StreamWire    []int64      // bytes on the wire per stream index, all sessions
	Target        TargetStatus // the log-writes target's last status (DMName)
	LastError     string       // the last failure, cleared by durable progress
}

// Shipper ships one journal to one task. Run it once.
type Shipper struct {
	cfg Config
	log *slog.Logger
	lim *rate.Limiter // nil: no bandwidth limit

	mu       sync.Mutex        // guards the fields below
	st       Stats             //
	start    time.Time         //
	sess     *parallel.Session // the session in use, or nil
	wireDone int64             // wire bytes of ended sessions
	pending  []sentWindow      // windows sent in sess, not yet known durable, in order
	ackedTo  control.Position  // the furthest position the server acked, any session
	markIdx  int64             // index of FromMark, -1 until found

	openFirst  time.Time // when the first entry of the open window was read
	streamDone []int64   // wire bytes per stream of ended sessions
}

// New checks cfg and returns a Shipper.
func New(cfg Config) (*Shipper, error) {
	switch {
	case cfg.Journal == "":
		return nil, errors.New("source: no journal")
	case cfg.Addr == "":
		return nil, errors.New("source: no server address")
	case cfg.Client.Task == "":
		return nil, errors.New("source: no task")
	case cfg.Size < 0 || cfg.DefaultSize < 0 || cfg.BytesPerSecond < 0:
		return nil, errors.New("source: negative size or bandwidth")
	}
	if cfg.Client.Streams == 0 {
		cfg.Client.Streams = parallel.DefaultStreams
	}
	if cfg.RetryFor == 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.Tick == 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.Tail.Poll <= 0 {
		cfg.Tail.Poll = 50 * time.Millisecond
	}
	if cfg.Tail.Settle <= 0 {
		cfg.Tail.Settle = cfg.Tail.Poll * 4 / 5
	}
	if cfg.IdleFlush <= 0 {
		cfg.IdleFlush = DefaultIdleFlush
	}
	if cfg.Drain <= 0 {
		cfg.Drain = DefaultDrain
	}
	if cfg.dm == nil {
		cfg.dm = devioDM{}
	}
	s := &Shipper{cfg: cfg, log: cfg.Log, markIdx: -1}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.BytesPerSecond > 0 {
		burst := int(min(max(cfg.BytesPerSecond/10, 64<<10), parallel.MaxPayload))
		s.lim = rate.NewLimiter(rate.Limit(cfg.BytesPerSecond), burst)
	}
	s.st.Task, s.st.Streams = cfg.Client.Task, cfg.Client.Streams
	s.st.Log, s.st.Seq = cfg.Journal, cfg.Seq
	return s, nil
}

// Stats returns a snapshot of the counters; it may be called while Run runs.
func (s *Shipper) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ackedLocked()
	st := s.st
	st.WireBytes = s.wireDone + wireBytes(s.sess)
	if !s.start.IsZero() {
		st.Elapsed = time.Since(s.start)
	}
	st.StreamWire = append([]int64(nil), s.streamDone...)
	if s.sess != nil {
		addStreamWire(&st.StreamWire, s.sess)
	}
	st.Oldest = s.openFirst
	if len(s.pending) > 0 {
		st.Oldest = s.pending[0].first
	}
	return st
}

func wireBytes(sess *parallel.Session) int64 {
	if sess == nil {
		return 0
	}
	var n int64
	for _, x := range sess.Stats().Streams {
		n += int64(x.BytesOut)
	}
	return n
}

func (s *Shipper) update(f func(st *Stats)) {
	s.mu.Lock()
	f(&s.st)
	s.mu.Unlock()
}

// Run ships the journal: to its last counted entry, or with Follow until
// the end mark. It reconnects after failures (see Config.RetryFor). When
// ctx ends, Run stops reading the journal, sends the window it was
// filling, waits up to Config.Drain for the acks, and returns ctx's cause.
// Stats describe what was done either way.
func (s *Shipper) Run(ctx context.Context) (Stats, error) {
	s.mu.Lock()
	s.start = time.Now()
	s.mu.Unlock()
	err := s.run(ctx)
	st := s.Stats()
	return st, err
}

func (s *Shipper) run(parent context.Context) error {
	cfg := &s.cfg
	j, err := openJournal(cfg.Journal, cfg.Direct)
	if err != nil {
		return err
	}
	defer j.Close()
	s.update(func(st *Stats) { st.LogSize = j.dev.Size() })

	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	if cfg.DMName != "" {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		tick, mark := cfg.Tick, true
		if tick < 0 {
			tick, mark = time.Second, false
		}
		wg.Go(func() {
			if err := watchTarget(wctx, seenDM{cfg.dm, s.noteTarget}, cfg.DMName, tick, mark, s.log); err != nil {
				cancel(err)
			}
		})
	}

	id, super, err := j.identify(ctx, cfg.Follow, cfg.Tail)
	if err != nil {
		return stopErr(ctx, err)
	}
	s.update(func(st *Stats) { st.Journal = id })
	s.log.Debug("journal identified", "journal", cfg.Journal, "id", id, "sector_size", super.SectorSize, "direct", j.direct)

	backoff := newBackoff()
	var failSince time.Time
	for {
		before := s.Stats().Durable
		done, err := s.session(ctx, j, id, super)
		if done {
			return err
		}
		if ctx.Err() != nil {
			return stopErr(ctx, err)
		}
		s.noteError(err)
		if permanent(err) || cfg.RetryFor < 0 {
			return err
		}
		now := time.Now()
		if after := s.Stats().Durable; after != before {
			s.update(func(st *Stats) { st.LastError = "" })
			failSince = time.Time{}
			backoff = newBackoff()
		}
		if failSince.IsZero() {
			failSince = now
		}
		left := cfg.RetryFor - now.Sub(failSince)
		if left <= 0 {
			return &retry.GaveUp{Addr: cfg.Addr, After: now.Sub(failSince), Err: err}
		}
		wait := min(backoff.next(), left)
		s.log.Warn("ship: "+retry.Waiting(cfg.Addr, err, left), "server", cfg.Addr, "task", cfg.Client.Task,
			"kind", retry.Classify(err), "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return stopErr(ctx, err)
		case <-time.After(wait):
		}
		s.update(func(st *Stats) { st.Reconnects++ })
	}
}

// stopErr is the error Run returns once ctx ended: its cause.
func stopErr(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, ErrLoggingDisabled) || err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return cause
	}
	return fmt.Errorf("%w (while: %v)", cause, err)
}

// errIdle: the live journal had nothing new for Config.IdleFlush.
var errIdle = errors.New("source: journal idle")

// session dials, opens the task and ships from the durable position.
// done is true when Run must return err (nil: everything shipped and
// acked); otherwise err is a failure to retry or a stop.
func (s *Shipper) session(ctx context.Context, j *journalFile, id string, super journal.Super) (done bool, err error) {
	cfg := &s.cfg
	sess, err := parallel.Dial(ctx, cfg.Addr, cfg.Client)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.sess, s.pending = sess, nil
	s.st.Sessions++
	s.mu.Unlock()
	defer func() {
		sess.Close()
		s.mu.Lock()
		s.ackedLocked()
		s.wireDone += wireBytes(sess)
		addStreamWire(&s.streamDone, sess)
		s.sess, s.pending, s.openFirst = nil, nil, time.Time{}
		s.mu.Unlock()
	}()

	task, err := s.open(ctx, sess, id, super)
	if err != nil {
		return false, err
	}
	pos := task.Durable
	s.update(func(st *Stats) { st.Durable, st.ImageSize = pos, task.ImageSize })
	from := pos.NextEntry
	if cfg.FromMark != "" {
		m, err := s.fromMark(ctx, j)
		if err != nil {
			return false, err
		}
		if from <= m {
			from = m + 1
		}
	}
	s.log.Debug("session open", "task", task.Name, "created", task.Created, "image_size", task.ImageSize,
		"next_entry", pos.NextEntry, "next_window", pos.NextWindow, "from", from, "streams", sess.Streams())
	src, err := j.source(ctx, cfg.Follow, cfg.Tail, from)
	if err != nil {
		return false, err
	}
	rctx, stopReports := context.WithCancel(ctx)
	var rg sync.WaitGroup
	rg.Go(func() { s.reportLoop(rctx, sess) })
	defer func() {
		stopReports()
		rg.Wait()
	}()

	// Sending uses its own context: when ctx ends, what was read is still
	// sent and acked, for up to Drain.
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	var dg sync.WaitGroup
	dg.Go(func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(cfg.Drain)
			defer t.Stop()
			select {
			case <-t.C:
				cancelSend()
			case <-sendCtx.Done():
			}
		case <-sendCtx.Done():
		}
	})
	defer func() {
		cancelSend()
		dg.Wait()
	}()

	w := &windowSender{s: s, sess: sess, src: src, j: j, ctx: sendCtx, base: pos.NextWindow, image: task.ImageSize}
	lim := s.limits(sess, super)
	w.split = barrier.NewSplitter(lim)
	readErr := w.skip(pos.NextEntry, from, lim.MaxEntries)
	if readErr == nil {
		readErr = w.ship(ctx)
	}
	if readErr != nil && ctx.Err() == nil {
		if errors.Is(readErr, context.Canceled) && sess.Err() != nil {
			readErr = sess.Err()
		}
		var je *JournalError
		if errors.As(readErr, &je) || errors.Is(readErr, ErrOutsideImage) || errors.Is(readErr, ErrEntryTooLarge) {
			return true, readErr
		}
		return false, readErr
	}
	// Everything read was sent: wait for it to be durable.
	if w.sentAny {
		if err := sess.WaitAck(sendCtx, w.lastSeq); err != nil {
			if ctx.Err() != nil {
				return true, stopErr(ctx, fmt.Errorf("waiting for the server to ack window %d: %w", w.lastSeq, err))
			}
			return false, err
		}
	}
	if ctx.Err() != nil {
		return true, stopErr(ctx, readErr)
	}
	return true, nil
}

// open calls OpOpen; with Size 0 and a DefaultSize, it creates the task
// only when opening it as existing is refused.
func (s *Shipper) open(ctx context.Context, sess *parallel.Session, id string, super journal.Super) (control.Task, error) {
	call := func(size int64) (control.Task, error) {
		req := control.Request{Op: control.OpOpen, Open: &control.Open{Size: size, Journal: id, SectorSize: super.SectorSize}}
		resp, err := sess.Call(ctx, control.Marshal(req))
		if err != nil {
			var re *parallel.RemoteError
			if errors.As(err, &re) && sess.Err() == nil {
				return control.Task{}, &TaskError{Task: sess.Task(), Err: err}
			}
			return control.Task{}, err
		}
		var t control.Task
		if err := control.Unmarshal(resp, &t); err != nil {
			return t, &TaskError{Task: sess.Task(), Err: err}
		}
		return t, nil
	}
	t, err := call(s.cfg.Size)
	var te *TaskError
	if err != nil && s.cfg.Size == 0 && s.cfg.DefaultSize > 0 && isCode(err, control.CodeNoTask) {
		t, err = call(s.cfg.DefaultSize)
	}
	if err != nil {
		if errors.As(err, &te) && isCode(err, control.CodeNoTask) {
			te.Hint = "to create the task, give its image size (--size)"
		}
		return t, err
	}
	if t.Durable.Journal != id {
		return t, &TaskError{Task: sess.Task(), Err: fmt.Errorf("%w: asked for %s, got %q", ErrJournalMismatch, id, t.Durable.Journal)}
	}
	if t.Durable.NextEntry < 0 {
		return t, &TaskError{Task: sess.Task(), Err: fmt.Errorf("server reports a negative position %d", t.Durable.NextEntry)}
	}
	s.mu.Lock()
	a := s.ackedTo
	s.mu.Unlock()
	if a.Journal == t.Durable.Journal && (t.Durable.NextEntry < a.NextEntry || t.Durable.NextWindow < a.NextWindow) {
		return t, &TaskError{Task: sess.Task(), Err: fmt.Errorf("%w: the server says entry %d (window %d) is the first not durable, but it acked up to entry %d (window %d) to this ship: it lost windows it had made durable",
			ErrWentBack, t.Durable.NextEntry, t.Durable.NextWindow, a.NextEntry, a.NextWindow),
			Hint: "not resending from there; check the server (logship status, its log), then start the ship again to accept its position"}
	}
	return t, nil
}

// isCode reports whether err is a RemoteError with code.
func isCode(err error, code control.Code) bool {
	c, ok := control.CodeOf(err)
	return ok && c == code
}

// fromMark finds FromMark once per Run.
func (s *Shipper) fromMark(ctx context.Context, j *journalFile) (int64, error) {
	s.mu.Lock()
	m := s.markIdx
	s.mu.Unlock()
	if m >= 0 {
		return m, nil
	}
	m, err := j.findMark(ctx, s.cfg.Follow, s.cfg.Tail, s.cfg.FromMark)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.markIdx = m
	s.mu.Unlock()
	return m, nil
}

// limits caps windows so that one costs at most half the credit: the next
// window can be sent while the server applies the last.
func (s *Shipper) limits(sess *parallel.Session, super journal.Super) barrier.Limits {
	l := s.cfg.Limits
	if l.MaxEntries <= 0 {
		l.MaxEntries = barrier.DefaultMaxEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = barrier.DefaultMaxBytes
	}
	quarter := sess.Credit() / 4
	perEntry := int64(control.EntryHeader + parallel.CreditOverhead)
	l.MaxEntries = int(max(1, min(int64(l.MaxEntries), quarter/perEntry)))
	l.MaxBytes = max(int64(super.SectorSize), min(l.MaxBytes, quarter))
	return l
}

// permanent reports whether reconnecting cannot cure err: the source's own
// verdicts (the journal, the image's bounds, the target), then the
// transport's and the server's (retry.Classify).
func permanent(err error) bool {
	var je *JournalError
	var re *parallel.RemoteError
	var te *TaskError
	switch {
	case errors.As(err, &re):
		return !retry.Classify(err).Transient()
	case errors.As(err, &je), errors.As(err, &te):
		return true
	case errors.Is(err, ErrLoggingDisabled), errors.Is(err, ErrOutsideImage), errors.Is(err, ErrEntryTooLarge):
		return true
	}
	return !retry.Classify(err).Transient()
}

// backoff is an exponential backoff with jitter: 200 ms doubling to 10 s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 200 * time.Millisecond} }

func (b *backoff) next() time.Duration {
	d := b.d
	b.d = min(2*b.d, 10*time.Second)
	// ±20% jitter, so that many sources do not reconnect in lockstep.
	j := time.Duration(time.Now().UnixNano()%int64(d/5*2+1)) - d/5
	return d + j
}

// sentWindow is a window sent and not yet known to be durable.
type sentWindow struct {
	seq  uint64
	next int64 // index of the first entry after it

	// For status and metrics (report.go).
	nextOff int64     // journal offset after it (0: unknown)
	entries int64     // entries in it
	first   time.Time // when its first entry was read
	sent    time.Time // when its end went out
}

// windowSender turns entries into frames and windows on one session.
type windowSender struct {
	s     *Shipper
	sess  *parallel.Session
	src   entrySource
	j     *journalFile
	ctx   context.Context // for sending; outlives the reading ctx by Drain
	split *barrier.Splitter
	base  uint64 // wire sequence of the splitter's window 0
	image int64  // the image size: no entry may reach past it

	lastEnd int64     // journal offset after the last entry sent (0: none yet)
	readAt  time.Time // when the entry being placed was read

	closed  uint64 // windows closed in this session
	sentAny bool   // a window was sent
	lastSeq uint64 // the last window sent
}

// skip moves the server's position from entry first to entry end without
// applying anything, for FromMark: the entries in between go as no-op
// entries (zero-length DISCARDs, which the protocol allows and which
// touch nothing), in windows of at most perWindow. The protocol has no
// other way to skip entries: a window must start at the durable position
// and its entries be consecutive.
func (w *windowSender) skip(first, end int64, perWindow int) error {
	noop := control.AppendEntry(nil, journal.Entry{Flags: journal.FlagDiscard}, nil)
	for i := first; i < end; {
		n := min(end-i, int64(perWindow))
		seq := w.base
		for k := i; k < i+n; k++ {
			if err := w.sess.SendFrame(w.ctx, parallel.Frame{Type: parallel.TypeData, Window: seq, Entry: uint64(k), Payload: noop}); err != nil {
				return err
			}
		}
		if err := w.sess.EndWindow(w.ctx, seq); err != nil {
			return err
		}
		i += n
		w.base++
		w.sentAny, w.lastSeq = true, seq
		s := w.s
		s.mu.Lock()
		s.st.Skipped += n
		s.pending = append(s.pending, sentWindow{seq: seq, next: i, first: time.Now(), sent: time.Now()})
		s.ackedLocked()
		s.mu.Unlock()
	}
	return nil
}

// ship reads entries until the journal ends (nil) or ctx ends or an error
// occurs (returned); every window closed by then has been sent.
func (w *windowSender) ship(ctx context.Context) error {
	follow := w.s.cfg.Follow
	for {
		e, err := w.next(ctx, follow && w.split.Pending() > 0)
		switch {
		case err == errIdle:
			if ow := w.split.Close(); ow != nil {
				if err := w.endWindow(ow); err != nil {
					return err
				}
			}
			continue
		case err == io.EOF || err != nil && ctx.Err() != nil:
			// The end, or a stop: send what is open.
			if ow := w.split.Close(); ow != nil {
				if err := w.endWindow(ow); err != nil {
					return err
				}
			}
			if err == io.EOF {
				return nil
			}
			return err
		case err != nil:
			return w.j.wrap(err)
		}
		if err := w.check(e); err != nil {
			return err
		}
		w.readAt = time.Now()
		w.s.noteRead(e, headOf(w.src), w.readAt)
		sent := false
		for _, cw := range w.split.Add(e) {
			if cw.Last() == e.Index {
				if err := w.sendEntry(e, w.base+cw.Seq); err != nil {
					return err
				}
				w.lastEnd = e.NextOffset()
				sent = true
			}
			if err := w.endWindow(cw); err != nil {
				return err
			}
		}
		if !sent {
			if err := w.sendEntry(e, w.base+w.closed); err != nil {
				return err
			}
			w.lastEnd = e.NextOffset()
			w.s.noteRead(e, 0, w.readAt) // the open window may have just begun
		}
	}
}

// next returns the next entry; with idle, errIdle when none comes within
// IdleFlush.
func (w *windowSender) next(ctx context.Context, idle bool) (journal.Entry, error) {
	if err := ctx.Err(); err != nil {
		// A Tailer with entries ready returns them without looking at
		// ctx: a stop must not wait for the backlog.
		return journal.Entry{}, err
	}
	if !idle {
		return w.src.Next(ctx)
	}
	ictx, cancel := context.WithTimeout(ctx, w.s.cfg.IdleFlush)
	e, err := w.src.Next(ictx)
	cancel()
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		w.s.noteHead(headOf(w.src))
		return e, errIdle
	}
	return e, err
}

// check refuses an entry the server could not apply.
func (w *windowSender) check(e journal.Entry) error {
	if (e.IsWrite() || e.IsDiscard()) && e.End() > w.image {
		return fmt.Errorf("%w: entry %d (%s) at journal offset %d touches bytes [%d, %d), past the %d-byte image of task %q",
			ErrOutsideImage, e.Index, e.Flags, e.Offset, e.Start(), e.End(), w.image, w.sess.Task())
	}
	return nil
}

// maxFrameData is the most write data one frame carries, in whole sectors.
func maxFrameData(sectorSize int64) int64 {
	return (parallel.MaxPayload - control.EntryHeader) / sectorSize * sectorSize
}

// sendEntry sends e as one DATA frame of window seq, or as several
// sub-range frames when its data does not fit one.
func (w *windowSender) sendEntry(e journal.Entry, seq uint64) error {
	total := e.PayloadLen()
	if !e.IsWrite() {
		total = 0
	}
	ss := int64(e.SectorSize)
	chunk := maxFrameData(ss)
	frames := max(1, (total+chunk-1)/chunk)
	if cost := w.sess.WindowCost(int(frames), total+frames*control.EntryHeader+int64(len(e.Label))); cost > w.sess.Credit() {
		return fmt.Errorf("%w: entry %d (%s of %d bytes at journal offset %d) needs %d bytes of credit in one window, the server grants %d",
			ErrEntryTooLarge, e.Index, e.Flags, total, e.Offset, cost, w.sess.Credit())
	}
	if total <= chunk {
		buf := make([]byte, control.EntryHeader+len(e.Label)+int(total))
		control.AppendEntry(buf[:0], e, nil)
		if total > 0 {
			if err := w.src.ReadPayload(e, buf[control.EntryHeader:]); err != nil {
				return w.j.wrap(err)
			}
		}
		return w.send(parallel.Frame{Type: parallel.TypeData, Window: seq, Entry: uint64(e.Index), Payload: buf}, 1, total)
	}
	for off := int64(0); off < total; off += chunk {
		n := min(chunk, total-off)
		sub := e
		sub.Sector = e.Sector + uint64(off/ss)
		sub.NrSectors = uint64(n / ss)
		buf := make([]byte, control.EntryHeader+int(n))
		control.AppendEntry(buf[:0], sub, nil)
		if m, err := w.j.r.ReadAt(buf[control.EntryHeader:], e.PayloadOffset()+off); int64(m) < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return w.j.wrap(&journal.EntryError{Index: e.Index, Offset: e.Offset,
				Err: fmt.Errorf("reading %d payload bytes at %d: %w", n, e.PayloadOffset()+off, err)})
		}
		entries := int64(0)
		if off+n == total {
			entries = 1
		}
		if err := w.send(parallel.Frame{Type: parallel.TypeData, Window: seq, Entry: uint64(e.Index), Payload: buf}, entries, n); err != nil {
			return err
		}
	}
	return nil
}

// send sends one frame, within the bandwidth limit.
func (w *windowSender) send(f parallel.Frame, entries, data int64) error {
	if lim := w.s.lim; lim != nil {
		for n := len(f.Payload); n > 0; {
			k := min(n, lim.Burst())
			if err := lim.WaitN(w.ctx, k); err != nil {
				return err
			}
			n -= k
		}
	}
	if err := w.sess.SendFrame(w.ctx, f); err != nil {
		return err
	}
	w.s.update(func(st *Stats) {
		st.Entries += entries
		st.Frames++
		st.Bytes += int64(len(f.Payload))
	})
	return nil
}

// endWindow ends window cw on the wire.
func (w *windowSender) endWindow(cw *barrier.Window) error {
	seq := w.base + cw.Seq
	if err := w.sess.EndWindow(w.ctx, seq); err != nil {
		return err
	}
	w.closed = cw.Seq + 1
	w.sentAny, w.lastSeq = true, seq
	s := w.s
	s.mu.Lock()
	s.st.Windows++
	first := s.openFirst
	if first.IsZero() {
		first = w.readAt
	}
	s.openFirst = time.Time{}
	s.pending = append(s.pending, sentWindow{seq: seq, next: cw.Last() + 1, nextOff: w.lastEnd,
		entries: int64(len(cw.Entries)), first: first, sent: time.Now()})
	s.ackedLocked()
	s.mu.Unlock()
	return nil
}

// ackedLocked moves the durable position past the windows the server has
// acked. s.mu must be held.
func (s *Shipper) ackedLocked() {
	if s.sess == nil {
		return
	}
	a, ok := s.sess.Acked()
	if !ok {
		return
	}
	i := 0
	now := time.Now()
	for i < len(s.pending) && s.pending[i].seq <= a {
		if h := s.cfg.Hooks.Acked; h != nil {
			h(s.pending[i].entries, now.Sub(s.pending[i].sent))
		}
		i++
	}
	if i == 0 {
		return
	}
	last := s.pending[i-1]
	s.pending = s.pending[i:]
	s.st.Durable.NextEntry, s.st.Durable.NextWindow = last.next, last.seq+1
	s.ackedTo = s.st.Durable
	if last.nextOff > 0 {
		s.st.DurableOffset = last.nextOff
	}
}

// addStreamWire adds the wire bytes of each stream of sess to to.
func addStreamWire(to *[]int64, sess *parallel.Session) {
	for i, x := range sess.Stats().Streams {
		for len(*to) <= i {
			*to = append(*to, 0)
		}
		(*to)[i] += int64(x.BytesOut)
	}
}
