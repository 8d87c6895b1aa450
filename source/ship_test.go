package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/fixtures/replicatest"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/retry"
)

// writeJournal writes the journal j to a file and returns its path.
func writeJournal(t testing.TB, j []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "journal")
	if err := os.WriteFile(p, j, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// want is the image a sequential replay of j onto size zero bytes gives.
func want(t testing.TB, j []byte, size int64) []byte {
	t.Helper()
	img := make([]byte, size)
	if err := fixtures.ReplaySequential(j, img, -1); err != nil {
		t.Fatal(err)
	}
	return img
}

func config(t testing.TB, path, addr string, streams int, size int64) Config {
	return Config{
		Journal: path,
		Addr:    addr,
		Client:  parallel.ClientConfig{Task: "t", Streams: streams, Insecure: true},
		Size:    size,
		Log:     replicatest.Logger(t),
	}
}

func ship(t testing.TB, cfg Config) Stats {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := s.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v (stats %+v)", err, st)
	}
	return st
}

func sameImage(t testing.TB, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("image of %d bytes, want %d", len(got), len(want))
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("image differs from the sequential replay first at byte %d (sector %d)", i, i/512)
			}
		}
	}
}

// bigWrites is a journal with writes larger than a frame (split into
// sub-range frames) between ordinary entries.
func bigWrites(t testing.TB, ss int) []byte {
	t.Helper()
	var b fixtures.WriterAtBuffer
	w, err := journal.NewWriter(&b, ss)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, parallel.MaxPayload+3*ss)
	for i := range big {
		big[i] = byte(i*7 + i/4096)
	}
	small := bytes.Repeat([]byte{0xab}, ss)
	steps := []error{
		w.Write(0, small, 0),
		w.Write(1, big, 0),
		w.Flush(),
		w.Write(uint64(len(big)/ss), big[:2*ss], journal.FlagFUA),
		w.Mark("middle"),
		w.Write(3, big, journal.FlagFUA|journal.FlagMetadata),
		w.Discard(5, 10),
		w.Write(7, small, 0),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestShipFile(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(1, 512)
	wl.Entries = 3000
	wl4k := fixtures.DefaultWorkload(2, 4096)
	wl4k.Entries = 1500
	wl4k.DeviceSize = 16 << 20
	wl4k.MaxWriteSectors = 8
	for _, tc := range []struct {
		name    string
		journal func(t testing.TB) ([]byte, int64)
		streams int
		limits  barrier.Limits
		credit  int64
		direct  bool
	}{
		{name: "512/1stream", streams: 1, journal: workload(wl)},
		{name: "512/4streams", streams: 4, journal: workload(wl)},
		{name: "4096/8streams", streams: 8, journal: workload(wl4k)},
		{name: "small-windows", streams: 3, journal: workload(wl), limits: barrier.Limits{MaxEntries: 3, MaxBytes: 8 << 10}},
		{name: "small-credit", streams: 2, journal: workload(wl), credit: parallel.MinCredit},
		{name: "direct", streams: 4, journal: workload(wl4k), direct: true},
		{name: "big-writes", streams: 4, journal: func(t testing.TB) ([]byte, int64) { return bigWrites(t, 512), 24 << 20 }},
		{name: "big-writes-4096", streams: 2, journal: func(t testing.TB) ([]byte, int64) { return bigWrites(t, 4096), 64 << 20 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, size := tc.journal(t)
			srv := newTestServer(t, parallel.ServerConfig{Credit: tc.credit})
			cfg := config(t, writeJournal(t, j), srv.Addr(), tc.streams, size)
			cfg.Limits, cfg.Direct = tc.limits, tc.direct
			st := ship(t, cfg)
			sameImage(t, srv.image("t"), want(t, j, size))
			r, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
			if st.Entries != r.Len() || st.Durable.NextEntry != r.Len() || st.Windows == 0 || st.Durable.NextWindow != uint64(st.Windows) {
				t.Errorf("stats %+v: want %d entries shipped and durable, windows numbered from 0", st, r.Len())
			}
			if st.Streams != tc.streams || st.Sessions != 1 || st.Reconnects != 0 || st.WireBytes < st.Bytes {
				t.Errorf("stats %+v", st)
			}
			if tc.limits.MaxEntries > 0 && st.Windows < r.Len()/int64(tc.limits.MaxEntries) {
				t.Errorf("%d windows for %d entries capped at %d", st.Windows, r.Len(), tc.limits.MaxEntries)
			}
		})
	}
}

func workload(wl fixtures.Workload) func(t testing.TB) ([]byte, int64) {
	return func(t testing.TB) ([]byte, int64) {
		j, err := wl.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return j, wl.DeviceSize
	}
}

// A second run of the same journal finds everything durable and sends
// nothing; a grown journal (same identity) sends only the new entries.
func TestShipResumeFinished(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(3, 512)
	wl.Entries = 2000
	full, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// The first half of the journal, as it was on disk earlier: the same
	// bytes, a superblock counting fewer entries.
	r, _ := journal.NewReader(bytes.NewReader(full), int64(len(full)))
	half := append([]byte(nil), full...)
	sb, _ := journal.Super{NrEntries: uint64(r.Len() / 2), SectorSize: 512}.AppendBinary(nil)
	copy(half, sb)

	srv := newTestServer(t, parallel.ServerConfig{})
	path := writeJournal(t, half)
	st := ship(t, config(t, path, srv.Addr(), 4, wl.DeviceSize))
	if st.Entries != r.Len()/2 {
		t.Fatalf("first run shipped %d entries, want %d", st.Entries, r.Len()/2)
	}
	st = ship(t, config(t, path, srv.Addr(), 4, wl.DeviceSize))
	if st.Entries != 0 || st.Windows != 0 {
		t.Fatalf("second run of the same journal shipped %d entries in %d windows, want none", st.Entries, st.Windows)
	}
	if err := os.WriteFile(path, full, 0o644); err != nil {
		t.Fatal(err)
	}
	st = ship(t, config(t, path, srv.Addr(), 4, 0))
	if st.Entries != r.Len()-r.Len()/2 || st.Durable.NextEntry != r.Len() {
		t.Fatalf("grown journal: shipped %d entries, durable %+v; want %d, up to %d", st.Entries, st.Durable, r.Len()-r.Len()/2, r.Len())
	}
	sameImage(t, srv.image("t"), want(t, full, wl.DeviceSize))

	// Another journal on the same task starts from its entry 0.
	wl.Seed = 99
	other, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	st = ship(t, config(t, writeJournal(t, other), srv.Addr(), 2, 0))
	r2, _ := journal.NewReader(bytes.NewReader(other), int64(len(other)))
	if st.Entries != r2.Len() {
		t.Fatalf("new journal: shipped %d entries, want all %d", st.Entries, r2.Len())
	}
	w := want(t, full, wl.DeviceSize)
	if err := fixtures.ReplaySequential(other, w, -1); err != nil {
		t.Fatal(err)
	}
	sameImage(t, srv.image("t"), w)
}

// Streams cut in the middle of windows, several times: the ship resumes
// from the durable position each time and the image is right.
func TestShipResumeCutStreams(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(4, 512)
	wl.Entries = 6000
	wl.DeviceSize = 8 << 20
	j, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, parallel.ServerConfig{Credit: 1 << 20})
	px := fixtures.NewCutProxy(t, srv.Addr())
	cfg := config(t, writeJournal(t, j), px.Addr(), 4, wl.DeviceSize)
	cfg.Limits = barrier.Limits{MaxEntries: 50}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Cut every connection after 300 KiB, three times.
	px.CutEvery(300<<10, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := s.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sameImage(t, srv.image("t"), want(t, j, wl.DeviceSize))
	cuts := px.Cuts()
	if cuts == 0 || st.Reconnects == 0 {
		t.Fatalf("%d cuts, %d reconnects: the test did not cut anything", cuts, st.Reconnects)
	}
	t.Logf("%d cuts, stats %+v", cuts, st)
}

// The server dies (losing windows not applied) and comes back on the same
// address with the state it had made durable.
func TestShipResumeServerRestart(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(5, 4096)
	wl.Entries = 4000
	wl.DeviceSize = 16 << 20
	wl.MaxWriteSectors = 4
	j, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, parallel.ServerConfig{Credit: 1 << 20})
	addr := srv.Addr()
	killed := make(chan struct{})
	var once sync.Once
	srv.mu.Lock()
	srv.onWindow = func(task string, seq uint64) error {
		if seq == 40 {
			once.Do(func() { close(killed) })
			return errors.New("crashing")
		}
		return nil
	}
	srv.mu.Unlock()
	var restarted *testServer
	var wg sync.WaitGroup
	log := replicatest.NewLog(t)
	wg.Go(func() {
		<-killed
		srv.Close()
		// The source fails to reconnect to the dead server before it comes back.
		log.WaitFor(t, "cannot connect to", log.Count("cannot connect to")+1)
		restarted = newTestServerAt(t, addr, parallel.ServerConfig{}, srv.tasks)
	})
	cfg := config(t, writeJournal(t, j), addr, 4, wl.DeviceSize)
	cfg.Log = log.Logger
	cfg.Limits = barrier.Limits{MaxEntries: 40}
	st := ship(t, cfg)
	wg.Wait()
	sameImage(t, restarted.image("t"), want(t, j, wl.DeviceSize))
	if st.Reconnects == 0 || st.Sessions < 2 {
		t.Fatalf("stats %+v: want a reconnect", st)
	}
	if tk := restarted.task("t"); tk.windows == 0 {
		t.Fatalf("the restarted server applied nothing")
	}
}

func TestShipFromMark(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(6, 512)
	wl.Entries = 1000
	j, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	m, err := r.SeekMark("m3")
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, parallel.ServerConfig{})
	cfg := config(t, writeJournal(t, j), srv.Addr(), 4, wl.DeviceSize)
	cfg.FromMark = "m3"
	st := ship(t, cfg)
	if st.Entries != r.Len()-m.Index-1 || st.Skipped != m.Index+1 || st.Durable.NextEntry != r.Len() {
		t.Fatalf("shipped %d entries, skipped %d, durable %+v; want the %d after mark m3 (entry %d)", st.Entries, st.Skipped, st.Durable, r.Len()-m.Index-1, m.Index)
	}
	// The image is what the entries after the mark make of zeros.
	img := make([]byte, wl.DeviceSize)
	r.SeekEntry(m.Index + 1)
	for {
		e, err := r.Next()
		if err != nil {
			break
		}
		switch {
		case e.IsDiscard():
			clear(img[e.Start():e.End()])
		case e.IsWrite():
			r.ReadPayload(e, img[e.Start():e.End()])
		}
	}
	sameImage(t, srv.image("t"), img)

	cfg.FromMark = "nosuch"
	s, _ := New(cfg)
	if _, err := s.Run(context.Background()); !errors.Is(err, journal.ErrNoMark) {
		t.Fatalf("unknown mark: %v, want ErrNoMark", err)
	}
}

// Errors that reconnecting cannot cure end Run at once.
func TestShipPermanentErrors(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(7, 512)
	j, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	path := writeJournal(t, j)
	psk := []byte("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		name   string
		server parallel.ServerConfig
		mod    func(c *Config)
		want   error
		msg    string
	}{
		{name: "outside-image", mod: func(c *Config) { c.Size = 1 << 20 }, want: ErrOutsideImage, msg: "past the 1048576-byte image"},
		{name: "no-task", mod: func(c *Config) { c.Size = 0 }, msg: "--size"},
		{name: "size-mismatch", mod: func(c *Config) { c.Client.Task = "existing" }, msg: "not 4194304"},
		{name: "wrong-psk", server: parallel.ServerConfig{PSK: psk}, mod: func(c *Config) {
			c.Client.Insecure, c.Client.PSK = false, []byte("another key of at least 16 bytes")
		}, want: parallel.ErrAuth},
		{name: "not-a-journal", mod: func(c *Config) { c.Journal = "/etc/passwd" }, want: journal.ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, tc.server)
			srv.tasks["existing"] = &testTask{image: make([]byte, 1<<20), size: 1 << 20}
			cfg := config(t, path, srv.Addr(), 2, wl.DeviceSize)
			cfg.RetryFor = time.Hour
			tc.mod(&cfg)
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = s.Run(context.Background())
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Run: %v; want %v containing %q", err, tc.want, tc.msg)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %v: retried a permanent error", d)
			}
			t.Log(err)
		})
	}
}

// With no server at all, Run retries until RetryFor passes.
func TestShipGivesUp(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(8, 512)
	j, _ := wl.Bytes()
	srv := newTestServer(t, parallel.ServerConfig{})
	addr := srv.Addr()
	srv.Close()
	var logs bytes.Buffer
	cfg := config(t, writeJournal(t, j), addr, 2, wl.DeviceSize)
	cfg.RetryFor = 1500 * time.Millisecond
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	s, _ := New(cfg)
	_, err := s.Run(context.Background())
	var gu *retry.GaveUp
	if !errors.As(err, &gu) || !strings.Contains(err.Error(), "cannot connect to "+addr) {
		t.Fatalf("Run: %v, want a retry.GaveUp that cannot connect", err)
	}
	if n := strings.Count(logs.String(), "cannot connect to "+addr+": connection refused; retrying for"); n < 2 {
		t.Fatalf("%d retries logged:\n%s", n, logs.String())
	}
}

// The default size creates a missing task and uses an existing one
// whatever its size.
func TestShipDefaultSize(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(9, 512)
	j, _ := wl.Bytes()
	path := writeJournal(t, j)
	size, err := ImageSize(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if size <= 0 || size > wl.DeviceSize || size%(1<<20) != 0 {
		t.Fatalf("ImageSize %d, device %d", size, wl.DeviceSize)
	}
	srv := newTestServer(t, parallel.ServerConfig{})
	srv.tasks["big"] = &testTask{image: make([]byte, 2*wl.DeviceSize), size: 2 * wl.DeviceSize}
	for _, task := range []string{"t", "big"} {
		cfg := config(t, path, srv.Addr(), 2, 0)
		cfg.Client.Task, cfg.DefaultSize = task, size
		ship(t, cfg)
		got := srv.image(task)
		w := want(t, j, int64(len(got)))
		sameImage(t, got, w)
	}
	if n := len(srv.image("t")); int64(n) != size {
		t.Fatalf("created image of %d bytes, want %d", n, size)
	}
}

func TestShipBandwidthLimit(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(10, 512)
	wl.Entries = 300
	j, _ := wl.Bytes()
	srv := newTestServer(t, parallel.ServerConfig{})
	cfg := config(t, writeJournal(t, j), srv.Addr(), 2, wl.DeviceSize)
	cfg.BytesPerSecond = 2 << 20
	st := ship(t, cfg)
	sameImage(t, srv.image("t"), want(t, j, wl.DeviceSize))
	// The token bucket starts full (one burst); the rest takes its time.
	min := time.Duration(float64(st.Bytes-int64(s0(cfg).lim.Burst())) / float64(cfg.BytesPerSecond) * float64(time.Second))
	if st.Elapsed < min*9/10 {
		t.Fatalf("%d bytes in %v at %d B/s: the limit was not applied (want at least %v)", st.Bytes, st.Elapsed, cfg.BytesPerSecond, min)
	}
}

func s0(cfg Config) *Shipper { s, _ := New(cfg); return s }

// followGrowing ships, following, the journal that WriteLikeKernel writes
// meanwhile into path (a file holding stale entries of an earlier run past
// the start), with a short poll; a failure of either is fatal.
func followGrowing(t *testing.T, cfg Config, path string, wl fixtures.Workload, pause time.Duration) Stats {
	t.Helper()
	cfg.Follow = true
	cfg.Tail = journal.TailOptions{Poll: 5 * time.Millisecond, Settle: 4 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() { werr = fixtures.WriteLikeKernel(ctx, path, wl, "", pause) })
	s, _ := New(cfg)
	st, err := s.Run(ctx)
	wg.Wait()
	if werr != nil || err != nil {
		t.Fatalf("writer: %v, Run: %v", werr, err)
	}
	return st
}

func TestShipFollow(t *testing.T) {
	t.Parallel()
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			wl := fixtures.DefaultWorkload(11, ss)
			wl.Entries = 2500
			wl.DeviceSize = 8 << 20
			wl.MaxWriteSectors = 32 * 512 / ss
			path := filepath.Join(t.TempDir(), "log")
			// Stale entries of an earlier run, with the start zeroed as
			// the reference asks before a target is created.
			old := wl
			old.Seed = 77
			stale, _ := old.Bytes()
			clear(stale[:ss])
			if err := os.WriteFile(path, stale, 0o644); err != nil {
				t.Fatal(err)
			}
			srv := newTestServer(t, parallel.ServerConfig{})
			cfg := config(t, path, srv.Addr(), 4, wl.DeviceSize)
			st := followGrowing(t, cfg, path, wl, 3*time.Millisecond)
			final, _ := os.ReadFile(path)
			r, err := journal.NewReader(bytes.NewReader(final), int64(len(final)))
			if err != nil {
				t.Fatal(err)
			}
			if st.Durable.NextEntry != r.Len() {
				t.Fatalf("durable up to %d, the journal has %d entries", st.Durable.NextEntry, r.Len())
			}
			sameImage(t, srv.image("t"), want(t, final, wl.DeviceSize))
			// The same journal at rest has the same identity.
			id, _, err := IdentifyReader(bytes.NewReader(final), int64(len(final)))
			if err != nil || id != st.Journal {
				t.Fatalf("identity at rest %s (%v), live %s", id, err, st.Journal)
			}
			t.Logf("stats %+v", st)
		})
	}
}

// Stopping a follow (ctx canceled) sends what was read and waits for it.
func TestShipFollowStop(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(12, 512)
	wl.Entries = 400
	j, _ := wl.Bytes()
	// A finished journal without an end mark: follow waits for more.
	path := writeJournal(t, j)
	srv := newTestServer(t, parallel.ServerConfig{})
	cfg := config(t, path, srv.Addr(), 4, wl.DeviceSize)
	cfg.Follow = true
	cfg.Tail = journal.TailOptions{Poll: 5 * time.Millisecond, Settle: 4 * time.Millisecond}
	s, _ := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for s.Stats().Durable.NextEntry < int64(wl.Entries) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	st, err := s.Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if st.Durable.NextEntry != int64(wl.Entries) {
		t.Fatalf("durable %+v, want all %d entries", st.Durable, wl.Entries)
	}
	sameImage(t, srv.image("t"), want(t, j, wl.DeviceSize))
}

func TestParseTargetStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want TargetStatus
		err  bool
	}{
		{in: "0 0", want: TargetStatus{}},
		{in: "0 7", want: TargetStatus{Sector: 7}},
		{in: "1234 56789", want: TargetStatus{Entries: 1234, Sector: 56789}},
		{in: "12 34 logging_disabled", want: TargetStatus{Entries: 12, Sector: 34, Disabled: true}},
		{in: "", err: true},
		{in: "12", err: true},
		{in: "a 1", err: true},
		{in: "1 b", err: true},
		{in: "1 2 weird", err: true},
		{in: "1 2 logging_disabled x", err: true},
	} {
		got, err := ParseTargetStatus(tc.in)
		if (err != nil) != tc.err || !tc.err && got != tc.want {
			t.Errorf("ParseTargetStatus(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// fakeDM is a log-writes target: Mark logs an entry.
type fakeDM struct {
	mu       sync.Mutex
	entries  uint64
	disabled bool
	marks    []string
	statusN  int
}

func (f *fakeDM) Status(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusN++
	s := fmt.Sprintf("%d %d", f.entries, f.entries*9)
	if f.disabled {
		s += " logging_disabled"
	}
	return s, nil
}

func (f *fakeDM) Mark(name, label string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.marks = append(f.marks, label)
	f.entries++
	return nil
}

func (f *fakeDM) write(n uint64) {
	f.mu.Lock()
	f.entries += n
	f.mu.Unlock()
}

func TestWatchTarget(t *testing.T) {
	t.Parallel()
	dm := &fakeDM{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- watchTarget(ctx, dm, "lw", 2*time.Millisecond, true, replicatest.Logger(t)) }()
	nmarks := func() int {
		dm.mu.Lock()
		defer dm.mu.Unlock()
		return len(dm.marks)
	}
	// waitMarks waits for n marks (a loaded machine may run the 2 ms tick
	// late), then lets a few more ticks pass to see that no more come.
	waitMarks := func(n int, why string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); nmarks() < n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(30 * time.Millisecond)
		if got := nmarks(); got != n {
			t.Fatalf("%d marks %s, want %d", got, why, n)
		}
	}
	waitMarks(0, "with nothing logged")
	dm.write(5)
	waitMarks(1, "after one write burst (no mark when only marks were logged)")
	dm.write(1)
	waitMarks(2, "after a second burst")
	dm.mu.Lock()
	dm.disabled = true
	dm.mu.Unlock()
	select {
	case err := <-done:
		if !errors.Is(err, ErrLoggingDisabled) || !strings.Contains(err.Error(), "lw") {
			t.Fatalf("watchTarget: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watchTarget did not notice logging_disabled")
	}
}

// A Shipper following a log whose target reports logging_disabled stops
// with ErrLoggingDisabled after shipping what was logged.
func TestShipLoggingDisabled(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(13, 512)
	wl.Entries = 300
	j, _ := wl.Bytes()
	srv := newTestServer(t, parallel.ServerConfig{})
	cfg := config(t, writeJournal(t, j), srv.Addr(), 2, wl.DeviceSize)
	cfg.Follow, cfg.DMName, cfg.Tick = true, "lw", 5*time.Millisecond
	cfg.Tail = journal.TailOptions{Poll: 5 * time.Millisecond, Settle: 4 * time.Millisecond}
	dm := &fakeDM{entries: 300}
	cfg.dm = dm
	s, _ := New(cfg)
	go func() {
		for s.Stats().Durable.NextEntry < int64(wl.Entries) {
			time.Sleep(5 * time.Millisecond)
		}
		dm.mu.Lock()
		dm.disabled = true
		dm.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := s.Run(ctx)
	if !errors.Is(err, ErrLoggingDisabled) {
		t.Fatalf("Run: %v, want ErrLoggingDisabled", err)
	}
	if st.Durable.NextEntry != int64(wl.Entries) {
		t.Fatalf("durable %+v", st.Durable)
	}
	dm.mu.Lock()
	defer dm.mu.Unlock()
	if len(dm.marks) == 0 || dm.marks[0] != TickLabel {
		t.Fatalf("marks %q, want tick marks", dm.marks)
	}
}

// A busy live log rewrites its superblock more often than the Tailer's
// settle time (here: a FUA write every 10 ms, as with tick marks and
// fsyncs): entries must still become durable while it is written, with
// the Shipper's default tail options.
func TestShipFollowBusyLog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, parallel.ServerConfig{})
	cfg := config(t, path, srv.Addr(), 2, 1<<20)
	cfg.Follow = true
	s, _ := New(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var durableWhileWriting int64
	wg.Go(func() {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		w, _ := journal.NewWriter(f, 512)
		block := bytes.Repeat([]byte{7}, 512)
		for i := range 300 {
			w.Write(uint64(i), block, journal.FlagFUA)
			w.WriteSuper()
			time.Sleep(10 * time.Millisecond)
		}
		durableWhileWriting = s.Stats().Durable.NextEntry
		w.Mark(journal.EndMark)
		w.WriteSuper()
	})
	st, err := s.Run(ctx)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if durableWhileWriting < 100 || st.Durable.NextEntry != 301 {
		t.Fatalf("%d entries durable while the log was written (3 s), %d at the end; want most of the 300, then 301",
			durableWhileWriting, st.Durable.NextEntry)
	}
}
