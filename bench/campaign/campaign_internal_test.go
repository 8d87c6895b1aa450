package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures/prereq"
	"github.com/logship/logship/replica"
)

var kernelJournals = []string{
	filepath.Join("..", "..", "journal", "testdata", "kernel", "fsync-marks-512.log.zst"),
	filepath.Join("..", "..", "journal", "testdata", "kernel", "fsync-marks-4096.log.zst"),
}

// TestCampaign is the smoke test of `logship bench faults`: a short
// campaign with every fault kind (disk-full needs root: this test fails
// without it), the kernel journals shipped now and then and crash-tested
// with explored states. Nothing may diverge or be lost.
func TestCampaign(t *testing.T) {
	prereq.Root(t) // the disk-full fault: a loop device and a mount
	prereq.Tool(t, "mkfs.ext4", "e2fsprogs")
	runs := 20
	if raceEnabled {
		runs = 6 // the race detector slows the proxy; the processes are the same
	}
	var progress bytes.Buffer
	c := &Campaign{Binary: LogshipBinary(t), Runs: runs, Seed: 4242, Jobs: 2, Dir: t.TempDir(),
		Journals: kernelJournals, Explore: 4, Progress: &syncWriter{w: &progress}}
	sum, err := c.Run(t.Context())
	t.Logf("\n%s", progress.String())
	if err != nil {
		t.Fatalf("%v: %+v", err, sum.Failed)
	}
	total := 0
	for _, n := range sum.Faults {
		total += n
	}
	if sum.Runs != runs || sum.Passed != runs || sum.Divergences != 0 || sum.LostAcked != 0 || total < runs || sum.CrashStates == 0 {
		t.Errorf("summary %+v", sum)
	}
	t.Logf("%d runs in %v: faults %v, %d recoveries, %d resumes, %d reconnects, error frames %v, %d crash states",
		sum.Runs, sum.Elapsed, sum.Faults, sum.Recoveries, sum.Resumes, sum.Reconnects, sum.ErrorFrames, sum.CrashStates)
}

// TestCampaignCatches damages the server's directory on purpose: the
// campaign must notice. A byte of the final image changed is a
// divergence; a server that comes back from a crash having forgotten its
// staging logs and its position has lost acked windows.
func TestCampaignCatches(t *testing.T) {
	bin := LogshipBinary(t)
	// The runs of a campaign are independent processes that mostly wait
	// (on the proxy's stalls, on the server's recovery): both subtests and
	// the runs of each go two at a time.
	t.Run("image", func(t *testing.T) {
		t.Parallel()
		c := &Campaign{Binary: bin, Runs: 2, Seed: 7, Faults: []string{Stall}, Jobs: 2, Dir: t.TempDir(),
			sabotage: func(event, dir string) {
				if event != "end" {
					return
				}
				f, err := os.OpenFile(filepath.Join(dir, task, "image"), os.O_RDWR, 0)
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Close()
				b := make([]byte, 1)
				f.ReadAt(b, 4096)
				b[0] ^= 0x40
				f.WriteAt(b, 4096)
			}}
		sum, err := c.Run(t.Context())
		if !errors.Is(err, ErrCampaign) || sum.Divergences != 2 || len(sum.Failed) != 2 || !strings.Contains(sum.Failed[0].Err, "at byte 4096") {
			t.Fatalf("%v, %+v", err, sum)
		}
		if sum.Failed[0].Seed != 7 || sum.Failed[1].Seed != 8 {
			t.Errorf("failures %+v: want the seeds to repeat them", sum.Failed)
		}
	})
	t.Run("acked", func(t *testing.T) {
		t.Parallel()
		c := &Campaign{Binary: bin, Runs: 4, Seed: 11, Faults: []string{KillServe}, Jobs: 2, Dir: t.TempDir(),
			sabotage: func(event, dir string) {
				if event != "crashed" {
					return
				}
				td := filepath.Join(dir, task)
				b, err := os.ReadFile(filepath.Join(td, "state"))
				if err != nil {
					return // the task did not exist yet
				}
				var st replica.State
				if err := json.Unmarshal(b, &st); err != nil {
					t.Error(err)
					return
				}
				st.Durable = control.Position{Journal: st.Durable.Journal}
				st.Checkpoint = replica.Checkpoint{}
				b, _ = json.Marshal(st)
				os.WriteFile(filepath.Join(td, "state"), b, 0o600)
				logs, _ := filepath.Glob(filepath.Join(td, "staging-*.log"))
				for _, l := range logs {
					os.Remove(l)
				}
			}}
		sum, err := c.Run(t.Context())
		if !errors.Is(err, ErrCampaign) || sum.LostAcked == 0 {
			t.Fatalf("%v, %+v", err, sum)
		}
		t.Logf("%d acked windows lost, failures %+v", sum.LostAcked, sum.Failed)
	})
}

func TestCampaignErrors(t *testing.T) {
	c := &Campaign{Binary: "/nonexistent/logship", Runs: 1, Faults: []string{"meteor"}}
	if _, err := c.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "meteor") {
		t.Errorf("unknown fault: %v", err)
	}
	c = &Campaign{Binary: "/nonexistent/logship", Runs: 1, Faults: []string{Cut}, Dir: t.TempDir()}
	if _, err := c.Run(t.Context()); err == nil || errors.Is(err, ErrCampaign) {
		t.Errorf("no binary: %v, want the bench's own error", err)
	}
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
