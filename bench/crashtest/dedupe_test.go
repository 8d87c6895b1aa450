package crashtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/logship/logship/bench/crashtest"
	"github.com/logship/logship/journal"
)

// script builds a journal step by step and keeps the device's state at
// every flush: the points.
type script struct {
	t      *testing.T
	w      *journal.Writer
	f      *os.File
	dev    []byte
	states [][]byte
	same   []bool // the point's state is the point before's
}

const scriptSS = 512

func newScript(t *testing.T) *script {
	f, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	w, err := journal.NewWriter(f, scriptSS)
	if err != nil {
		t.Fatal(err)
	}
	return &script{t: t, w: w, f: f, dev: make([]byte, 1<<20)}
}

func (s *script) write(sector int, p []byte) {
	if err := s.w.Write(uint64(sector), p, 0); err != nil {
		s.t.Fatal(err)
	}
	copy(s.dev[sector*scriptSS:], p)
}

func (s *script) discard(sector, n int) {
	if err := s.w.Discard(uint64(sector), uint64(n)); err != nil {
		s.t.Fatal(err)
	}
	clear(s.dev[sector*scriptSS : (sector+n)*scriptSS])
}

// flush ends a step: a point, whose state is the one before's when same.
func (s *script) flush(same bool) {
	if err := s.w.Flush(); err != nil {
		s.t.Fatal(err)
	}
	s.states = append(s.states, slices.Clone(s.dev))
	s.same = append(s.same, same)
}

func (s *script) close() string {
	if err := s.w.Close(); err != nil {
		s.t.Fatal(err)
	}
	return s.f.Name()
}

func randBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// TestDedupeExact: a point is not checked again exactly when nothing
// changed a byte since the point before: rewrites of what the device held
// and discards of zeros keep the state, one changed byte (inside a large
// rewrite, or alone) does not; a point that is not checked takes the
// verdict of the one it is the same as.
func TestDedupeExact(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	s := newScript(t)
	a := randBytes(rng, 8*scriptSS)
	s.write(0, a)
	s.flush(false) // 1
	s.flush(true)  // 2: nothing written
	s.write(0, a)
	s.flush(true) // 3: the same bytes again
	b := slices.Clone(a)
	b[1000]++
	s.write(0, b)
	s.flush(false) // 4: one byte changed
	s.discard(100, 100)
	s.flush(true) // 5: a discard of a hole
	s.discard(0, 8)
	s.flush(false) // 6: a discard of data
	s.write(300, make([]byte, 2*scriptSS))
	s.flush(true) // 7: zeros over a hole
	big := randBytes(rng, 128*scriptSS)
	s.write(1000, big)
	s.flush(false) // 8
	big2 := slices.Clone(big)
	big2[len(big2)-1] ^= 1
	s.write(1000, big2)
	s.flush(false) // 9: 64 KiB rewritten, its last byte changed
	s.write(1000, big2[:scriptSS])
	s.write(1127, big2[127*scriptSS:])
	s.flush(true) // 10: its first and last sectors rewritten as they are
	s.write(2000, make([]byte, scriptSS))
	s.write(2000, a[:scriptSS])
	s.flush(false) // 11: zeros, then other bytes over a hole
	if err := s.w.Mark("m"); err != nil {
		t.Fatal(err)
	}
	s.states = append(s.states, slices.Clone(s.dev))
	s.same = append(s.same, true) // 12: a mark
	path := s.close()

	for _, jobs := range []int{1, 3} {
		t.Run(fmt.Sprintf("jobs=%d", jobs), func(t *testing.T) {
			var mu sync.Mutex
			checked := map[int]bool{}
			check := crashtest.CheckFunc(func(ctx context.Context, st *crashtest.State) ([]byte, error) {
				got, err := os.ReadFile(st.Image)
				if err != nil {
					return nil, err
				}
				mu.Lock()
				checked[st.Seq] = true
				mu.Unlock()
				if want := s.states[st.Seq-1]; !bytes.Equal(got, want) {
					return nil, fmt.Errorf("%s: the image differs from the script's state at byte %d", st.Point, firstDiff(got, want))
				}
				if bytes.Equal(got, s.states[0]) {
					return []byte("state 1\n"), errors.New("the state of point 1")
				}
				return nil, nil
			})
			var res []crashtest.Result
			sum, err := crashtest.Crashtest(t.Context(), path, crashtest.Options{Check: check, Dedupe: true, Jobs: jobs,
				KeepGoing: true, Device: crashtest.DeviceFile, WorkDir: t.TempDir(),
				Report: func(r crashtest.Result) { res = append(res, r) }})
			if !errors.Is(err, crashtest.ErrFailed) {
				t.Fatalf("err %v, want the failures of points 1 to 3", err)
			}
			if len(res) != len(s.states) {
				t.Fatalf("%d results, want %d", len(res), len(s.states))
			}
			rep := 0
			for i, r := range res {
				if !s.same[i] {
					rep = r.Seq
				}
				wantSame := 0
				if s.same[i] {
					wantSame = rep
				}
				failed := r.Err != nil
				if r.SameAs != wantSame || checked[r.Seq] != (wantSame == 0) || failed != (i < 3) {
					t.Errorf("point %d: same as %d, checked %v, failed %v (%v); want same as %d, failed %v",
						r.Seq, r.SameAs, checked[r.Seq], failed, r.Err, wantSame, i < 3)
				}
			}
			if sum.Deduped != 6 || sum.Failed != 3 || sum.Points != len(s.states) {
				t.Errorf("summary: %d points, %d the same, %d failed; want %d, 6, 3", sum.Points, sum.Deduped, sum.Failed, len(s.states))
			}
		})
	}
}

// TestDedupeNeverSkipsADifference: on random journals whose writes often
// rewrite what the device holds (and sometimes change one byte of it), a
// point is never taken as the same as the point before when their states
// differ, and every state checked is exact.
func TestDedupeNeverSkipsADifference(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			s := newScript(t)
			for range 300 {
				sector := rng.IntN(64)
				n := 1 + rng.IntN(8)
				p := slices.Clone(s.dev[sector*scriptSS : (sector+n)*scriptSS])
				switch rng.IntN(4) {
				case 0: // new bytes
					p = randBytes(rng, len(p))
				case 1: // one byte changed
					p[rng.IntN(len(p))] ^= byte(1 + rng.IntN(255))
				}
				if rng.IntN(10) == 0 {
					s.discard(sector, n)
				} else {
					s.write(sector, p)
				}
				if rng.IntN(3) == 0 {
					s.flush(false)
				}
			}
			path := s.close()
			var res []crashtest.Result
			ok := crashtest.CheckFunc(func(ctx context.Context, st *crashtest.State) ([]byte, error) {
				got, err := os.ReadFile(st.Image)
				if err != nil {
					return nil, err
				}
				if want := s.states[st.Seq-1]; !bytes.Equal(got[:len(want)], want) {
					return nil, fmt.Errorf("%s: the image differs from the script's state at byte %d", st.Point, firstDiff(got, want))
				}
				return nil, nil
			})
			sum, err := crashtest.Crashtest(t.Context(), path, crashtest.Options{Check: ok, Dedupe: true, Jobs: 2,
				Device: crashtest.DeviceFile, WorkDir: t.TempDir(), Report: func(r crashtest.Result) { res = append(res, r) }})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != len(s.states) {
				t.Fatalf("%d results, want %d", len(res), len(s.states))
			}
			same := 0
			for i, r := range res {
				if i > 0 && bytes.Equal(s.states[i], s.states[i-1]) {
					same++
				}
				if r.SameAs != 0 && !bytes.Equal(s.states[i], s.states[i-1]) {
					t.Errorf("point %d: taken as the same as point %d, but they differ at byte %d", r.Seq, r.SameAs, firstDiff(s.states[i], s.states[i-1]))
				}
			}
			if sum.Deduped == 0 || same == 0 {
				t.Errorf("%d points the same as the one before, %d found: the journal does not exercise dedupe", same, sum.Deduped)
			}
		})
	}
}
