package crashtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/logship/logship/bench/crashtest"
	"github.com/logship/logship/digest"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/fixtures/prereq"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/replay"
)

// synth is a synthetic journal on disk with everything needed to compute
// the state at any point by the obviously right method.
type synth struct {
	path     string
	j        []byte
	entries  []journal.Entry
	payloads [][]byte
	base     []byte // the device before entry 0
}

func newSynth(t testing.TB, wl fixtures.Workload, base []byte) *synth {
	t.Helper()
	j, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	s := &synth{path: filepath.Join(t.TempDir(), "journal"), j: j, base: base}
	if s.base == nil {
		s.base = make([]byte, wl.DeviceSize)
	}
	if err := os.WriteFile(s.path, j, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := journal.NewReader(bytes.NewReader(j), int64(len(j)))
	if err != nil {
		t.Fatal(err)
	}
	for e, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, e.PayloadLen())
		if err := r.ReadPayload(e, p); err != nil {
			t.Fatal(err)
		}
		s.entries = append(s.entries, e)
		s.payloads = append(s.payloads, p)
	}
	return s
}

// apply replays entry i onto img.
func (s *synth) apply(img []byte, i int64) {
	e := s.entries[i]
	switch {
	case e.IsDiscard():
		clear(img[e.Start():e.End()])
	case e.IsWrite():
		copy(img[e.Start():], s.payloads[i])
	}
}

// state is the device after point p, one entry at a time from the base,
// then the explored entries.
func (s *synth) state(p crashtest.Point) []byte {
	img := slices.Clone(s.base)
	for i := int64(0); i <= p.Entry.Index; i++ {
		s.apply(img, i)
	}
	for _, i := range p.Keep {
		s.apply(img, i)
	}
	return img
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// exactChecker compares every state with synth's, reading it through the
// loop device when there is one (so a stale cache would show), then
// scribbles over it through the same path, as a check that writes would:
// none of that may leak into the next state.
//
// It may run in several jobs at once; states lists what it saw in the order
// it saw it.
func exactChecker(s *synth, seed uint64, states *[]crashtest.Point) crashtest.Checker {
	rng := rand.New(rand.NewPCG(seed, 1))
	var mu sync.Mutex
	return crashtest.CheckFunc(func(ctx context.Context, st *crashtest.State) ([]byte, error) {
		mu.Lock()
		*states = append(*states, st.Point)
		scribble := rng.IntN(2) == 0
		junk := make([]byte, 1+rng.IntN(64<<10))
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		at := rng.Int64N(s.size() - int64(len(junk)))
		mu.Unlock()
		path := st.Image
		if st.Device != "" {
			path = st.Device
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		got, err := io.ReadAll(f)
		if err != nil {
			return nil, err
		}
		want := s.state(st.Point)
		if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
			return nil, fmt.Errorf("%s: %s differs from the sequential replay at byte %d", st.Point, path, firstDiff(got, want))
		}
		if !digest.IsZero(got[len(want):]) {
			return nil, fmt.Errorf("%s: bytes past the journal's device are not zero", st.Point)
		}
		if scribble {
			if _, err := f.WriteAt(junk, at); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
}

// size is the image size Crashtest picks for the synthetic journal: the
// device rounded up to 1 MiB.
func (s *synth) size() int64 { return (int64(len(s.base)) + 1<<20 - 1) &^ (1<<20 - 1) }

// wantPoints lists the entries that are points, by the definition.
func (s *synth) wantPoints(p crashtest.Points, from int64) []int64 {
	var out []int64
	for _, e := range s.entries {
		k := e.Index - from
		if e.Index < from {
			continue
		}
		if (p.Flush && e.Flags&journal.FlagFlush != 0) || (p.FUA && e.Flags&journal.FlagFUA != 0) ||
			(p.Mark && e.IsMark()) || (p.Every > 0 && k > 0 && k%p.Every == 0) {
			out = append(out, e.Index)
		}
	}
	return out
}

// TestCrashtestExact: every state a check sees is byte for byte the state
// that replaying entry by entry gives, whatever the checks before it wrote,
// for both strategies, both refresh modes, files and loop devices, both
// sector sizes, with and without a base image and a from-mark.
func TestCrashtestExact(t *testing.T) {
	prereq.Root(t) // the check device is a loop device
	type tc struct {
		name     string
		ss       int
		points   crashtest.Points
		fromMark bool
		base     bool
		device   crashtest.Device
		strategy crashtest.Strategy
		refresh  crashtest.Refresh
		jobs     int
		dedupe   bool
	}
	tests := []tc{
		{name: "3 jobs", ss: 512, jobs: 3},
		{name: "2 jobs, dedupe, file", ss: 4096, jobs: 2, dedupe: true, device: crashtest.DeviceFile},
		{name: "3 jobs, from a mark, base", ss: 512, jobs: 3, points: crashtest.Points{Every: 5}, fromMark: true, base: true},
		{name: "defaults", ss: 512},
		{name: "4096", ss: 4096},
		{name: "every 7 from a mark", ss: 512, points: crashtest.Points{Every: 7}, fromMark: true},
		{name: "base", ss: 512, base: true},
		{name: "file", ss: 512, device: crashtest.DeviceFile},
		{name: "refresh full", ss: 512, refresh: crashtest.RefreshFull},
		{name: "from zero", ss: 512, strategy: crashtest.FromZero},
		{name: "from zero with base", ss: 4096, strategy: crashtest.FromZero, base: true, device: crashtest.DeviceFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wl := fixtures.DefaultWorkload(11, tt.ss)
			wl.Entries = 250
			var base []byte
			basePath := ""
			if tt.base {
				base = make([]byte, wl.DeviceSize)
				rng := rand.New(rand.NewPCG(3, 3))
				for i := 0; i < len(base); i += 8192 { // leave holes between
					for k := i; k < i+4096; k++ {
						base[k] = byte(rng.Uint32())
					}
				}
				basePath = filepath.Join(t.TempDir(), "base.img")
				if err := os.WriteFile(basePath, base, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := newSynth(t, wl, base)
			from, fromMark := int64(-1), ""
			if tt.fromMark {
				for _, e := range s.entries {
					if e.IsMark() && e.Index > 50 {
						from, fromMark = e.Index, e.Label
						break
					}
				}
			}
			var seen []crashtest.Point
			var reported []crashtest.Result
			sum, err := crashtest.Crashtest(t.Context(), s.path, crashtest.Options{
				Check: exactChecker(s, 1, &seen), Points: tt.points, FromMark: fromMark, Base: basePath,
				Device: tt.device, Strategy: tt.strategy, Refresh: tt.refresh, WorkDir: t.TempDir(),
				Jobs: tt.jobs, Dedupe: tt.dedupe,
				Report: func(r crashtest.Result) { reported = append(reported, r) },
			})
			if err != nil {
				t.Fatal(err)
			}
			pts := tt.points
			if pts.IsZero() {
				pts = crashtest.DefaultPoints
			}
			want := s.wantPoints(pts, from)
			// Reported in point order, every point once; checked are those
			// that are not the same as the point before.
			var got, checked, wantChecked []int64
			for i, r := range reported {
				got = append(got, r.Entry.Index)
				if r.Seq != i+1 {
					t.Errorf("result %d is point %d", i, r.Seq)
				}
				if r.SameAs == 0 {
					wantChecked = append(wantChecked, r.Entry.Index)
				} else if prev := reported[i-1].Point; !bytes.Equal(s.state(r.Point), s.state(prev)) {
					t.Errorf("%s: not checked as the same as point %d, but the states differ", r.Point, prev.Seq)
				}
			}
			for _, p := range seen {
				checked = append(checked, p.Entry.Index)
			}
			slices.Sort(checked) // jobs may start them in any order
			if !slices.Equal(got, want) || !slices.Equal(checked, wantChecked) {
				t.Errorf("reported entries %v, want %v; checked %v, want %v", got, want, checked, wantChecked)
			}
			if tt.dedupe && sum.Deduped == 0 {
				t.Error("dedupe found no point the same as the point before")
			}
			if sum.Points != len(want) || sum.Failed != 0 || sum.Entries != int64(len(s.entries)) {
				t.Errorf("summary %+v, want %d points, %d entries", sum, len(want), len(s.entries))
			}
			if tt.device == crashtest.DeviceLoop && tt.strategy == crashtest.OnePass && tt.refresh == crashtest.RefreshChanged && sum.Compared == 0 {
				t.Error("the checks wrote, but nothing was compared to find it")
			}
		})
	}
}

// TestCrashtestExplore: explored states are subsets of the window after
// their point, applied on top of the point's state; each is checked
// exactly, and there are never more than asked.
func TestCrashtestExplore(t *testing.T) {
	prereq.Root(t) // the check device is a loop device
	wl := fixtures.DefaultWorkload(5, 512)
	wl.Entries = 200
	wl.Flush, wl.FUA, wl.Mark = 0.03, 0.02, 0.01 // longer windows
	s := newSynth(t, wl, nil)
	var seen []crashtest.Point
	const k = 3
	sum, err := crashtest.Crashtest(t.Context(), s.path, crashtest.Options{
		Check: exactChecker(s, 2, &seen), Explore: k, Seed: 9, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Explored == 0 {
		t.Fatal("no explored states")
	}
	perPoint := map[int]int{}
	for _, p := range seen {
		if p.Explore == 0 {
			continue
		}
		perPoint[p.Seq]++
		if p.First != p.Entry.Index+1 || len(p.Keep) == 0 || len(p.Keep) >= p.Writes+1 {
			t.Errorf("%s: bad window or subset", p)
		}
		for _, i := range p.Keep {
			if i < p.First || i > p.Last || !s.entries[i].IsWrite() && !s.entries[i].IsDiscard() {
				t.Errorf("%s: keeps entry %d", p, i)
			}
		}
		// The window ends at the first barrier after the point.
		for i := p.First; i < p.Last; i++ {
			if s.entries[i].IsBarrier() {
				t.Errorf("%s: entry %d inside the window is a barrier", p, i)
			}
		}
	}
	for seq, n := range perPoint {
		if n > k {
			t.Errorf("point %d: %d explored states, want at most %d", seq, n, k)
		}
	}
	if sum.Explored != len(seen)-sum.Points {
		t.Errorf("summary says %d explored, the checker saw %d", sum.Explored, len(seen)-sum.Points)
	}
}

// TestCrashtestFault proves the bench fails when the replay is wrong: a
// dropped window or a write delayed past its barrier makes the exact
// checker fail, first at the point that closes the corrupted window.
func TestCrashtestFault(t *testing.T) {
	prereq.Root(t) // the check device is a loop device
	wl := fixtures.DefaultWorkload(8, 512)
	wl.Entries = 300
	s := newSynth(t, wl, nil)
	// A write in the middle, its window's barrier and the barrier after.
	var victim, closing, after int64 = -1, -1, -1
	for _, e := range s.entries[100:] {
		switch {
		case victim < 0 && e.IsWrite() && !e.IsBarrier():
			victim = e.Index
		case victim >= 0 && closing < 0 && e.IsBarrier():
			closing = e.Index
		case closing >= 0 && e.IsBarrier():
			after = e.Index
		}
		if after >= 0 {
			break
		}
	}
	for _, f := range []*crashtest.Fault{
		{Kind: crashtest.DropWindow, Entry: victim},
		{Kind: crashtest.DelayWrite, Entry: victim, Until: closing},
		{Kind: crashtest.DelayWrite, Entry: victim, Until: after},
		{Kind: crashtest.DelayWindow, Entry: victim, Until: closing},
		{Kind: crashtest.DelayWindow, Entry: victim, Until: after},
	} {
		t.Run(f.String(), func(t *testing.T) {
			var seen []crashtest.Point
			_, err := crashtest.Crashtest(t.Context(), s.path, crashtest.Options{
				Check: exactChecker(s, 3, &seen), Fault: f, KeepGoing: true, WorkDir: t.TempDir(),
			})
			var pe *crashtest.PointError
			if !errors.As(err, &pe) || !errors.Is(err, crashtest.ErrFailed) {
				t.Fatalf("Crashtest with fault %v: %v, want a *PointError", f, err)
			}
			if pe.Result.Entry.Index != closing {
				t.Errorf("first failing point at entry %d, want %d (the barrier after the corrupted window)", pe.Result.Entry.Index, closing)
			}
			if f.Kind != crashtest.DropWindow && f.Until == closing && pe.Failed != 1 {
				t.Errorf("a write delayed to just after the checks at its barrier failed %d points, want 1", pe.Failed)
			}
		})
	}
}

func TestCrashtestStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	s := newSynth(t, fixtures.DefaultWorkload(2, 512), nil)
	pts := s.wantPoints(crashtest.DefaultPoints, -1)
	failAt := pts[len(pts)/2]
	var checked []int64
	check := crashtest.CheckFunc(func(ctx context.Context, st *crashtest.State) ([]byte, error) {
		checked = append(checked, st.Entry.Index)
		if st.Entry.Index >= failAt {
			return []byte("bad state\n"), errors.New("boom")
		}
		return nil, nil
	})
	for _, keepGoing := range []bool{false, true} {
		checked = nil
		var reported []crashtest.Result
		sum, err := crashtest.Crashtest(t.Context(), s.path, crashtest.Options{Check: check, Device: crashtest.DeviceFile,
			KeepGoing: keepGoing, WorkDir: t.TempDir(), Report: func(r crashtest.Result) { reported = append(reported, r) }})
		var pe *crashtest.PointError
		if !errors.As(err, &pe) {
			t.Fatalf("keepGoing %v: err %v, want a *PointError", keepGoing, err)
		}
		if pe.Result.Entry.Index != failAt || pe.Result.Output != "bad state\n" {
			t.Errorf("keepGoing %v: first failure %+v, want entry %d with the check's output", keepGoing, pe.Result, failAt)
		}
		wantChecked, wantFailed := len(pts)/2+1, 1
		if keepGoing {
			wantChecked, wantFailed = len(pts), len(pts)-len(pts)/2
		}
		if len(checked) != wantChecked || pe.Failed != wantFailed || sum.Failed != wantFailed || len(reported) != wantChecked {
			t.Errorf("keepGoing %v: checked %d, reported %d, failed %d/%d; want %d checked, %d failed",
				keepGoing, len(checked), len(reported), pe.Failed, sum.Failed, wantChecked, wantFailed)
		}
	}
}

func TestCrashtestOptionErrors(t *testing.T) {
	t.Parallel()
	s := newSynth(t, fixtures.DefaultWorkload(4, 512), nil)
	ok := crashtest.CheckFunc(func(context.Context, *crashtest.State) ([]byte, error) { return nil, nil })
	for _, tt := range []struct {
		name string
		o    crashtest.Options
		want error
	}{
		{"nothing to check", crashtest.Options{}, crashtest.ErrBadOptions},
		{"explore without a check", crashtest.Options{Manifest: crashtest.Manifest{"m1": {{Mark: "m1", Path: "/a", MD5: strings.Repeat("0", 32)}}}, Explore: 1}, crashtest.ErrBadOptions},
		{"no such mark", crashtest.Options{Check: ok, FromMark: "nosuch"}, journal.ErrNoMark},
		{"manifest mark missing", crashtest.Options{Check: ok, Manifest: crashtest.Manifest{"nosuch": {{Mark: "nosuch", Path: "/a", MD5: strings.Repeat("0", 32)}}}}, crashtest.ErrBadOptions},
		{"too small", crashtest.Options{Check: ok, Size: 1 << 20}, replay.ErrTargetTooSmall},
		{"unaligned size", crashtest.Options{Check: ok, Size: 8<<20 + 100}, crashtest.ErrBadOptions},
		{"fault from zero", crashtest.Options{Check: ok, Strategy: crashtest.FromZero, Fault: &crashtest.Fault{Kind: crashtest.DropWindow}}, crashtest.ErrBadOptions},
		{"delay a flush", crashtest.Options{Check: ok, Fault: &crashtest.Fault{Kind: crashtest.DelayWrite, Entry: firstFlush(s), Until: firstFlush(s)}}, crashtest.ErrBadOptions},
		{"fault past the end", crashtest.Options{Check: ok, Fault: &crashtest.Fault{Kind: crashtest.DropWindow, Entry: 1 << 40}}, crashtest.ErrBadOptions},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.WorkDir = t.TempDir()
			if _, err := crashtest.Crashtest(t.Context(), s.path, tt.o); !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := crashtest.Crashtest(t.Context(), filepath.Join(t.TempDir(), "nosuch"), crashtest.Options{Check: ok}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing journal: %v", err)
	}
}

func firstFlush(s *synth) int64 {
	for _, e := range s.entries {
		if e.Flags&journal.FlagFlush != 0 && !e.IsWrite() {
			return e.Index
		}
	}
	return -1
}

func TestCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := &crashtest.State{Point: crashtest.Point{Entry: journal.Entry{Index: 42, Flags: journal.FlagFUA}},
		Image: filepath.Join(dir, "it's an image"), Target: filepath.Join(dir, "it's an image")}
	for _, tt := range []struct {
		line    string
		out     string
		failed  bool
		notRun  bool
		timeout bool
	}{
		{line: `printf '%s %s %s' "$LOGSHIP_ENTRY" "$LOGSHIP_KIND" {}`, out: "42 FUA " + st.Image},
		{line: "echo bad; exit 4", out: "bad\n", failed: true},
		{line: "sleep 5", timeout: true, failed: true},
	} {
		c := crashtest.Command{Line: tt.line}
		if tt.timeout {
			c.Timeout = 100e6
		}
		out, err := c.Check(t.Context(), st)
		if (err != nil) != tt.failed || string(out) != tt.out {
			t.Errorf("%q: output %q, err %v; want %q, failed %v", tt.line, out, err, tt.out, tt.failed)
		}
	}
}
