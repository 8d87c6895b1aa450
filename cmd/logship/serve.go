package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/logship/logship/parallel"
	"github.com/logship/logship/replica"
)

func init() {
	register(command{name: "serve", summary: "the backup server: keeps task images up to date from shipped windows", run: runServe})
}

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "--listen ADDR --dir DIR (--tls-cert F --tls-key F --client-ca F | --psk-file F | --insecure) [flags]",
		`Runs the backup server. Each task is a directory DIR/TASK holding the raw
image (DIR/TASK/image, a sparse file any tool can read or mount) and its
state. Sources connect with 'logship ship', open their task and send
windows; a window is acked once it is durable.

By default windows are group-committed: appended to a staging log
(DIR/TASK/staging-NNNNNN.log, dm-log-writes format), one fsync acks a batch,
and the image follows in the background. After a crash, the staging log is
replayed onto the images from their checkpoints before the server accepts
sessions. --sync-per-window instead applies each window and syncs the image
before acking it.

--write-through SIZE mixes the two: windows of at least SIZE payload bytes
skip the staging log and go straight to the image (after the windows before
them), which is synced before the ack; smaller windows are group-committed.
Large writes are then written once instead of twice. A power loss during
such a window leaves the image at the durable position plus part of that
window, every sector old or new, as with --sync-per-window; the source
resends it.

--retain keeps the staging logs after their windows reach the image. A task
created by a server with --retain (and group commit), and never served
without it, keeps its whole history: 'logship recover --at MARK' can then
restore the image as it was at any mark the source shipped. The history
grows by every byte shipped; prune it by hand (removing the staging logs
ends it: recover --at is then refused for the task).

Authentication: TLS 1.3 with client certificates (--tls-cert, --tls-key,
--client-ca), or pre-shared keys (--psk-file: one key, or one NAME:KEY line
per client; mode 0600; every byte of a session is then encrypted and
authenticated with keys derived from it), or none with --insecure, which is
accepted only on a loopback address. See docs/security.md.

Authorization: --grants FILE says which tasks each client identity may
use, one line per grant:

    IDENTITY TASK-PATTERN...

IDENTITY is cert:sha256:<hex> (the SHA-256 of a client certificate's public
key), psk:<name> (a pre-shared key), insecure, or * (every identity); each
pattern is a task name or a glob ("db-*", "*"). A session naming a task its
identity is not granted is refused with FORBIDDEN before anything of the
task is read or written, and status lists only granted tasks. Without
--grants every identity is granted every task (as before grants existed);
serve warns when it listens beyond loopback that way.

--truncate-staging TASK (with --dir, no --listen, the server stopped) is the
way out when a task stays closed because its staging log is corrupt (damage
followed by windows that were durable): the damaged log and the ones after
it are moved aside as DIR/TASK/damaged-staging-NNNNNN.log for inspection,
and a copy cut before the damaged window is put back. The next serve opens
the task at the last intact window; the source resends the rest, if it
still has it. docs/production.md has the procedure.`)
	var (
		listen    = fs.String("listen", "", "address to listen on, host:port")
		dir       = fs.String("dir", "", "directory of the tasks (created if missing)")
		tlsCert   = fs.String("tls-cert", "", "server certificate (PEM)")
		tlsKey    = fs.String("tls-key", "", "server key (PEM)")
		clientCA  = fs.String("client-ca", "", "CA certificates that sign client certificates (PEM)")
		pskFile   = fs.String("psk-file", "", "file holding the pre-shared key, or NAME:KEY lines, one per client (mode 0600)")
		insecure  = fs.Bool("insecure", false, "no authentication, plaintext (loopback addresses only)")
		creditS   = fs.String("credit", sizeDefault(64<<20), "bytes of windows a session may have in flight (server memory per session)")
		retain    = fs.Bool("retain", false, "keep the staging logs after they are checkpointed: the task's history, for recover --at MARK")
		syncEach  = fs.Bool("sync-per-window", false, "apply and sync every window before acking it, without a staging log")
		par       = fs.Int("parallel", replica.DefaultParallel, "concurrent writes inside a window")
		cpEvery   = fs.Duration("checkpoint-every", replica.DefaultCheckpointEvery, "group commit: sync the image and move the checkpoint at least this often")
		rotateS   = fs.String("staging-rotate", sizeDefault(replica.DefaultStagingRotate), "group commit: start a new staging log after this many bytes")
		throughS  = fs.String("write-through", "0", "group commit: write windows of at least this many bytes straight to the image, synced before the ack, instead of through the staging log (0: never; off with --retain)")
		streamsKA = fs.Duration("keepalive", 0, "PING interval on idle streams (default 5s, at most 60s)")
		metrics   = fs.String("metrics", "", "serve Prometheus metrics on this address (host:port, or :port for the --listen host), at /metrics")
		metricsOK = fs.Bool("metrics-public", false, "allow --metrics on an address that is not loopback (task names and sizes are then readable by anyone who can reach it)")
		grantsF   = fs.String("grants", "", "file of grants: lines 'IDENTITY TASK-PATTERN...' (default: every identity every task)")
		truncate  = fs.String("truncate-staging", "", "move the corrupt staging logs of TASK aside and exit (the server must be stopped)")
	)
	lf := addLogFlags(fs)
	pf := addProfileFlags(fs)
	stopProfiles, err := parseProfiled(e, fs, args, pf)
	if err != nil {
		return err
	}
	defer stopProfiles()
	log, err := lf.logger(e.stderr, false)
	if err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *truncate != "" {
		if *dir == "" || *listen != "" {
			return usagef("--truncate-staging needs --dir and no --listen")
		}
		return truncateStaging(e, *dir, *truncate)
	}
	if *listen == "" || *dir == "" {
		return usagef("--listen and --dir are required")
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return usagef("--listen %q: %v", *listen, err)
	}
	credit, err := humanize.ParseBytes(*creditS)
	if err != nil || credit < parallel.MinCredit || credit > 1<<40 {
		return usagef("--credit %q: want a size from %s to 1TiB", *creditS, humanize.IBytes(parallel.MinCredit))
	}
	rotate, err := humanize.ParseBytes(*rotateS)
	if err != nil || rotate == 0 || rotate > 1<<50 {
		return usagef("--staging-rotate %q: want a size", *rotateS)
	}
	through, err := humanize.ParseBytes(*throughS)
	if err != nil || through > 1<<50 {
		return usagef("--write-through %q: want a size", *throughS)
	}
	if through > 0 && *syncEach {
		return usagef("--write-through goes with group commit, not --sync-per-window")
	}
	if *par < 1 || *par > 1024 {
		return usagef("--parallel %d: want 1 to 1024", *par)
	}
	if *streamsKA < 0 || *streamsKA > parallel.MaxKeepAlive {
		return usagef("--keepalive %v: want at most %v", *streamsKA, parallel.MaxKeepAlive)
	}
	scfg := parallel.ServerConfig{Credit: int64(credit), Timeouts: parallel.Timeouts{KeepAlive: *streamsKA}}
	tlsOn := *tlsCert != "" || *tlsKey != "" || *clientCA != ""
	modes := 0
	for _, on := range []bool{tlsOn, *pskFile != "", *insecure} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return usagef("choose one authentication: --tls-cert/--tls-key/--client-ca, --psk-file or --insecure (%d given)", modes)
	}
	switch {
	case tlsOn:
		if *tlsCert == "" || *tlsKey == "" || *clientCA == "" {
			return usagef("TLS needs --tls-cert, --tls-key and --client-ca together")
		}
		if scfg.TLS, err = parallel.LoadServerTLS(*tlsCert, *tlsKey, *clientCA); err != nil {
			return err
		}
	case *pskFile != "":
		if scfg.PSKKeys, err = parallel.LoadKeys(*pskFile); err != nil {
			return err
		}
	default:
		scfg.Insecure = true
	}
	var grants *replica.Grants
	if *grantsF != "" {
		if grants, err = replica.LoadGrants(*grantsF); err != nil {
			return err
		}
		if grants.Identities() == 0 {
			log.Warn("the grants file grants nothing: every task will be refused", "grants", *grantsF)
		}
	} else if !loopbackHost(*listen) && !*insecure {
		log.Warn("no --grants: every client that authenticates may open, read, overwrite and hold every task; give each source its own identity and --grants (docs/security.md)")
	}
	metricsAddr := *metrics
	if metricsAddr != "" {
		if metricsAddr, err = metricsListenAddr(*metrics, *listen, *metricsOK); err != nil {
			return err
		}
		if !loopbackHost(metricsAddr) {
			log.Warn("metrics served beyond loopback: anyone who reaches "+metricsAddr+" reads the task names, sizes and positions", "addr", metricsAddr)
		}
	}

	var sm *serveMetrics
	var reg *prometheus.Registry
	var hooks replica.Hooks
	if metricsAddr != "" {
		reg = newRegistry()
		sm = newServeMetrics(reg)
		hooks = sm.hooks()
		mctx, stopMetrics := context.WithCancel(ctx)
		wait, err := startMetrics(mctx, metricsAddr, reg, log)
		if err != nil {
			stopMetrics()
			return err
		}
		defer func() {
			stopMetrics()
			wait()
		}()
	}
	srv, err := replica.Open(ctx, replica.Config{
		Dir:             *dir,
		SyncPerWindow:   *syncEach,
		Retain:          *retain,
		Parallel:        *par,
		CheckpointEvery: *cpEvery,
		StagingRotate:   int64(rotate),
		WriteThrough:    int64(through),
		Log:             log,
		Hooks:           hooks,
		Grants:          grants,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	if sm != nil {
		sm.setServer(srv)
	}
	scfg.Handler = srv.Handle
	scfg.Authorize = srv.Authorize
	scfg.OnRefusals = func(s parallel.RefusalSummary) {
		log.Warn(s.String(), "refused", s.Counts.Total(), "interval", s.Interval, "addresses", s.Addrs, "top", s.Top, "first", s.FirstErr)
	}
	l, err := parallel.Listen(*listen, scfg)
	if err != nil {
		return err
	}
	if reg != nil {
		registerListener(reg, l)
	}
	mode := "group commit"
	if *syncEach {
		mode = "sync per window"
	}
	log.Info(fmt.Sprintf("listening on %s (dir %s, %s, credit %s)", l.Addr(), *dir, mode, sizeDefault(int64(credit))),
		"addr", l.Addr().String(), "dir", *dir, "mode", mode, "credit", credit)
	if credit < warnCredit {
		// A window must hold a whole entry: a larger write is refused.
		log.Warn(fmt.Sprintf("--credit %s: a source's write of about %s or more cannot be shipped (a window must hold a whole entry); kernels write up to a few MiB at once", sizeDefault(int64(credit)), sizeDefault(int64(credit)-64<<10)))
	}
	err = srv.Serve(ctx, l)
	l.Close()
	log.Info("stopped")
	return err
}

// registerListener exports the listener's admission counters: connections
// in their handshake and connections refused, by reason.
func registerListener(reg *prometheus.Registry, l *parallel.Listener) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logship_serve_pending_connections",
		Help: "Connections in their handshake, not yet authenticated."}, func() float64 { return float64(l.Stats().Pending) }))
	for _, r := range []struct {
		reason string
		count  func(parallel.RefusalCounts) uint64
	}{
		{"busy", func(c parallel.RefusalCounts) uint64 { return c.Busy }},
		{"limit", func(c parallel.RefusalCounts) uint64 { return c.Limit }},
		{"auth", func(c parallel.RefusalCounts) uint64 { return c.Auth }},
		{"forbidden", func(c parallel.RefusalCounts) uint64 { return c.Forbidden }},
		{"protocol", func(c parallel.RefusalCounts) uint64 { return c.Protocol }},
		{"version", func(c parallel.RefusalCounts) uint64 { return c.Version }},
		{"timeout", func(c parallel.RefusalCounts) uint64 { return c.Timeout }},
		{"dropped", func(c parallel.RefusalCounts) uint64 { return c.Dropped }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logship_serve_refused_total",
			Help: "Connections refused, by reason (busy, limit, auth, forbidden, protocol, version, timeout, dropped).", ConstLabels: prometheus.Labels{"reason": r.reason}},
			func() float64 { return float64(r.count(l.Stats().Refused)) }))
	}
}

// truncateStaging is serve --truncate-staging TASK.
func truncateStaging(e *env, dir, task string) error {
	tr, err := replica.TruncateStaging(dir, task)
	if err != nil {
		return err
	}
	if tr.Damage == nil {
		fmt.Fprintf(e.stdout, "task %s: its staging logs are not corrupt; nothing changed (%d intact windows, to entry %d)\n", task, tr.Windows, tr.Position.NextEntry)
		return nil
	}
	fmt.Fprintf(e.stdout, "task %s: %v\n", task, tr.Damage)
	fmt.Fprintf(e.stdout, "task %s: kept for inspection: %s\n", task, strings.Join(tr.Kept, ", "))
	fmt.Fprintf(e.stdout, "task %s: the next serve opens it at window %d, entry %d of journal %s (%d windows kept); the source resends from there\n",
		task, tr.Position.NextWindow, tr.Position.NextEntry, tr.Position.Journal, tr.Windows)
	return nil
}

// loopbackHost reports whether the host of addr (host:port) is a loopback
// IP address or "localhost". An empty host (every interface) or another
// name is not.
func loopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// metricsListenAddr is where serve --metrics listens: a bare ":PORT"
// takes the host of --listen when that is loopback (so that metrics never
// reach farther than the server). An address beyond loopback needs
// --metrics-public.
func metricsListenAddr(metrics, listen string, public bool) (string, error) {
	host, port, err := net.SplitHostPort(metrics)
	if err != nil {
		return "", usagef("--metrics %q: %v", metrics, err)
	}
	if host == "" && loopbackHost(listen) {
		lhost, _, _ := net.SplitHostPort(listen)
		metrics = net.JoinHostPort(lhost, port)
	}
	if !loopbackHost(metrics) && !public {
		return "", usagef("--metrics %s is not a loopback address: its task names, sizes and positions would be readable by anyone who reaches it; give a loopback address (127.0.0.1:PORT) and put a proxy with authentication in front, or say --metrics-public", metrics)
	}
	return metrics, nil
}
