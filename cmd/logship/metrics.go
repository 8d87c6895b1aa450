package main

// Prometheus metrics of serve and ship (--metrics ADDR): counters and
// histograms fed by the replica and source hooks as things happen, and
// gauges and counters read from the server's status and the shipper's
// stats at each scrape.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/logship/logship/replica"
	"github.com/logship/logship/source"
)

// latencyBuckets cover 100 µs to about 100 s.
var latencyBuckets = prometheus.ExponentialBuckets(100e-6, 4, 11)

// newRegistry returns a registry holding the Go runtime and process
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// startMetrics listens on addr and serves reg at /metrics until ctx ends;
// wait waits for the HTTP server to stop.
func startMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (wait func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "logship: metrics at /metrics")
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "addr", l.Addr().String(), "err", err)
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	})
	log.Info("metrics on http://"+l.Addr().String()+"/metrics", "addr", l.Addr().String())
	return wg.Wait, nil
}

// serveMetrics are the metrics of logship serve.
type serveMetrics struct {
	received, applied, appliedEntries, appliedBytes *prometheus.CounterVec
	applySeconds, ackSeconds                        *prometheus.HistogramVec
	errors                                          *prometheus.CounterVec
	srv                                             *replica.Server // set once the server is open
	mu                                              sync.Mutex
}

func newServeMetrics(reg *prometheus.Registry) *serveMetrics {
	task := []string{"task"}
	m := &serveMetrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logship_serve_windows_received_total",
			Help: "Windows received whole and checked."}, task),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logship_serve_windows_applied_total",
			Help: "Windows written to the image."}, task),
		appliedEntries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logship_serve_entries_applied_total",
			Help: "Entries (pieces of split writes counted apart) written to the image."}, task),
		appliedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logship_serve_bytes_applied_total",
			Help: "Payload bytes of the windows written to the image."}, task),
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "logship_serve_apply_seconds",
			Help: "Time to write one window to the image.", Buckets: latencyBuckets}, task),
		ackSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "logship_serve_ack_seconds",
			Help: "Time from a window's arrival to its ack (durable: staging log fsynced, or applied and synced).", Buckets: latencyBuckets}, task),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logship_serve_errors_total",
			Help: "Sessions that ended with an error, by kind (the error code's name, or connection)."}, []string{"task", "kind"}),
	}
	reg.MustRegister(m.received, m.applied, m.appliedEntries, m.appliedBytes, m.applySeconds, m.ackSeconds, m.errors, m)
	return m
}

// hooks feeds the metrics from the server.
func (m *serveMetrics) hooks() replica.Hooks {
	return replica.Hooks{
		Received: func(task string, entries, bytes int64) { m.received.WithLabelValues(task).Inc() },
		Durable: func(task string, wait time.Duration) {
			m.ackSeconds.WithLabelValues(task).Observe(wait.Seconds())
		},
		Applied: func(task string, entries, bytes int64, took time.Duration) {
			m.applied.WithLabelValues(task).Inc()
			m.appliedEntries.WithLabelValues(task).Add(float64(entries))
			m.appliedBytes.WithLabelValues(task).Add(float64(bytes))
			m.applySeconds.WithLabelValues(task).Observe(took.Seconds())
		},
		Failed: func(task, kind string) { m.errors.WithLabelValues(task, kind).Inc() },
	}
}

func (m *serveMetrics) setServer(srv *replica.Server) {
	m.mu.Lock()
	m.srv = srv
	m.mu.Unlock()
}

var (
	descSessions    = prometheus.NewDesc("logship_serve_sessions", "Sessions running.", nil, nil)
	descStreamBytes = prometheus.NewDesc("logship_serve_stream_bytes_total", "Bytes on the wire per stream index, all sessions.", []string{"stream", "direction"}, nil)
	descImage       = prometheus.NewDesc("logship_task_image_bytes", "Size of the task's image.", []string{"task"}, nil)
	descDurEntry    = prometheus.NewDesc("logship_task_durable_entry", "The task's durable position: the first entry of its journal not yet durable.", []string{"task"}, nil)
	descDurWindow   = prometheus.NewDesc("logship_task_durable_window", "The task's durable position: the next window sequence.", []string{"task"}, nil)
	descDurTime     = prometheus.NewDesc("logship_task_durable_timestamp_seconds", "When the task's durable position last moved (Unix time; absent before it moved).", []string{"task"}, nil)
	descActive      = prometheus.NewDesc("logship_task_session_active", "1 while a session holds the task.", []string{"task"}, nil)
	descLagEntries  = prometheus.NewDesc("logship_task_lag_entries", "Entries of the source's journal not yet durable (from the source's last report).", []string{"task"}, nil)
	descLagBytes    = prometheus.NewDesc("logship_task_lag_bytes", "Log bytes of the source not yet durable (from the source's last report).", []string{"task"}, nil)
	descLagSeconds  = prometheus.NewDesc("logship_task_lag_seconds", "Age of the oldest entry read by the source and not yet durable.", []string{"task"}, nil)
	descDisabled    = prometheus.NewDesc("logship_task_logging_disabled", "1 when the source reports that its log-writes target stopped logging.", []string{"task"}, nil)
	descCorrupt     = prometheus.NewDesc("logship_task_corrupt", "1 when the task stays closed because its state on the server is damaged (status says where).", []string{"task"}, nil)
)

func (m *serveMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descStreamBytes, descImage, descDurEntry, descDurWindow, descDurTime,
		descActive, descLagEntries, descLagBytes, descLagSeconds, descDisabled, descCorrupt} {
		ch <- d
	}
}

func (m *serveMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	srv := m.srv
	m.mu.Unlock()
	if srv == nil {
		return
	}
	tr := srv.Traffic()
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(tr.Sessions))
	for i, s := range tr.Streams {
		ch <- prometheus.MustNewConstMetric(descStreamBytes, prometheus.CounterValue, float64(s.In), strconv.Itoa(i), "in")
		ch <- prometheus.MustNewConstMetric(descStreamBytes, prometheus.CounterValue, float64(s.Out), strconv.Itoa(i), "out")
	}
	st, err := srv.Status()
	if err != nil {
		return
	}
	for _, ts := range st.Tasks {
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, ts.Name)
		}
		gauge(descImage, float64(ts.ImageSize))
		gauge(descDurEntry, float64(ts.Durable.NextEntry))
		gauge(descDurWindow, float64(ts.Durable.NextWindow))
		if !ts.DurableTime.IsZero() {
			gauge(descDurTime, float64(ts.DurableTime.UnixNano())/1e9)
		}
		gauge(descActive, b2f(ts.Session != nil))
		gauge(descCorrupt, b2f(ts.Corrupt != ""))
		if l := ts.Lag; l != nil {
			if l.Entries >= 0 {
				gauge(descLagEntries, float64(l.Entries))
			}
			gauge(descLagBytes, float64(l.Bytes))
			gauge(descLagSeconds, l.Seconds)
		}
		if ts.Source != nil {
			gauge(descDisabled, b2f(ts.Source.LoggingDisabled))
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// shipMetrics are the metrics of logship ship.
type shipMetrics struct {
	ackSeconds prometheus.Histogram
	errors     *prometheus.CounterVec
	stats      func() source.Stats // set once the shipper exists
	extra      func() (rotations, resyncs int64)
	mu         sync.Mutex
}

func newShipMetrics(reg *prometheus.Registry) *shipMetrics {
	m := &shipMetrics{
		ackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "logship_ship_ack_seconds",
			Help: "Time from a window's end going out to its ack (durable on the server).", Buckets: latencyBuckets}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logship_ship_errors_total",
			Help: "Failures of sessions (retried) and of the ship itself, by kind."}, []string{"kind"}),
	}
	reg.MustRegister(m.ackSeconds, m.errors, m)
	return m
}

// hooks feeds the metrics from the shipper.
func (m *shipMetrics) hooks() source.Hooks {
	return source.Hooks{
		Acked: func(entries int64, latency time.Duration) { m.ackSeconds.Observe(latency.Seconds()) },
		Error: func(kind string, err error) { m.errors.WithLabelValues(kind).Inc() },
	}
}

func (m *shipMetrics) setStats(stats func() source.Stats, extra func() (rotations, resyncs int64)) {
	m.mu.Lock()
	m.stats, m.extra = stats, extra
	m.mu.Unlock()
}

var (
	descShipEntries    = prometheus.NewDesc("logship_ship_entries_total", "Entries sent (again after a reconnect).", nil, nil)
	descShipWindows    = prometheus.NewDesc("logship_ship_windows_total", "Windows sent.", nil, nil)
	descShipBytes      = prometheus.NewDesc("logship_ship_bytes_total", "Payload bytes sent (entry headers and data, before compression).", nil, nil)
	descShipWire       = prometheus.NewDesc("logship_ship_wire_bytes_total", "Bytes on the wire per stream index (after compression), all sessions.", []string{"stream"}, nil)
	descShipReconnects = prometheus.NewDesc("logship_ship_reconnects_total", "Sessions opened after a failure.", nil, nil)
	descShipDurable    = prometheus.NewDesc("logship_ship_durable_entry", "The first entry of the current journal not yet durable on the server.", nil, nil)
	descShipRead       = prometheus.NewDesc("logship_ship_read_entry", "Entries of the current journal read.", nil, nil)
	descShipHead       = prometheus.NewDesc("logship_ship_head_entry", "Entries the current journal is known to hold.", nil, nil)
	descShipLagEntries = prometheus.NewDesc("logship_ship_lag_entries", "Entries of the current journal not yet durable.", nil, nil)
	descShipLagBytes   = prometheus.NewDesc("logship_ship_lag_bytes", "Log bytes not yet durable.", nil, nil)
	descShipLagSeconds = prometheus.NewDesc("logship_ship_lag_seconds", "Age of the oldest entry read and not yet durable.", nil, nil)
	descShipLogSize    = prometheus.NewDesc("logship_ship_log_size_bytes", "Size of the current log.", nil, nil)
	descShipLogUsed    = prometheus.NewDesc("logship_ship_log_used_bytes", "Bytes of the current log the log-writes target has allocated.", nil, nil)
	descShipDisabled   = prometheus.NewDesc("logship_ship_logging_disabled", "1 when the log-writes target reports logging_disabled.", nil, nil)
	descShipSeq        = prometheus.NewDesc("logship_ship_log_seq", "Rotation number of the current log (0 without rotation).", nil, nil)
	descShipRotations  = prometheus.NewDesc("logship_ship_rotations_total", "Log rotations followed (and made, with --rotate-at).", nil, nil)
	descShipResyncs    = prometheus.NewDesc("logship_ship_resyncs_total", "Differential syncs made after logging_disabled (--resync-on-gap).", nil, nil)
)

func (m *shipMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descShipEntries, descShipWindows, descShipBytes, descShipWire, descShipReconnects,
		descShipDurable, descShipRead, descShipHead, descShipLagEntries, descShipLagBytes, descShipLagSeconds,
		descShipLogSize, descShipLogUsed, descShipDisabled, descShipSeq, descShipRotations, descShipResyncs} {
		ch <- d
	}
}

func (m *shipMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	stats, extra := m.stats, m.extra
	m.mu.Unlock()
	if stats == nil {
		return
	}
	st := stats()
	r := st.Report(time.Now())
	c := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	c(descShipEntries, float64(st.Entries))
	c(descShipWindows, float64(st.Windows))
	c(descShipBytes, float64(st.Bytes))
	for i, n := range st.StreamWire {
		ch <- prometheus.MustNewConstMetric(descShipWire, prometheus.CounterValue, float64(n), strconv.Itoa(i))
	}
	c(descShipReconnects, float64(st.Reconnects))
	g(descShipDurable, float64(st.Durable.NextEntry))
	g(descShipRead, float64(st.Read))
	g(descShipHead, float64(r.Head))
	g(descShipLagEntries, float64(max(0, r.Head-st.Durable.NextEntry)))
	g(descShipLagBytes, float64(r.LagBytes))
	g(descShipLagSeconds, r.LagSeconds)
	g(descShipLogSize, float64(st.LogSize))
	g(descShipLogUsed, float64(r.LogUsed))
	g(descShipDisabled, b2f(st.Target.Disabled))
	g(descShipSeq, float64(st.Seq))
	if extra != nil {
		rot, res := extra()
		c(descShipRotations, float64(rot))
		c(descShipResyncs, float64(res))
	}
}
