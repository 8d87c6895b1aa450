package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/logship/logship/fixtures/vm"
)

// TestKernelReplayLog is the xfstests harness of replaylog_xfstests_test.go
// on a journal the kernel's dm-log-writes target writes afresh in the VM
// (the kernel tier): the generic/482 loop and the generic/455 checks through
// `logship replay-log`, onto a loop device as xfstests replays onto its
// dm-thin volume.
func TestKernelReplayLog(t *testing.T) {
	if testing.Short() {
		t.Skip("the kernel tier boots a VM; it runs without -short, as make test does")
	}
	h := kernelHarness(t)
	seed := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10)
	t.Logf("scenario seed %s (LOGSHIP_SEED)", seed)
	kc := kernelCapture{"replay-log-fsync-marks", vm.Run{Scenario: "fsync-marks", LogicalBlockSize: 4096,
		DataSize: 64 << 20, LogSize: 128 << 20, Env: map[string]string{"LOGSHIP_STEPS": "16", "LOGSHIP_SEED": seed}}}
	kj, res := kc.capture(t, h)
	t.Logf("capture: %v in the VM", res.Elapsed.Round(time.Millisecond))
	c := rlCaptureOf(t, kc.name, kj)
	if got, _ := sha256File(t, c.zeroTargetReplayed(t)); got != kj.sha256 {
		t.Errorf("replay-log of the whole journal differs from the data disk the kernel left")
	}
	runXfstestsHarness(t, c, blkLoop(t, c.size).Path())
}

// zeroTargetReplayed replays the whole journal with replay-log onto zeros.
func (c rlCapture) zeroTargetReplayed(t *testing.T) string {
	t.Helper()
	target := c.zeroTarget(t)
	if res := replayLogRun(t, "--log", c.journal, "--replay", target); res.code != 0 {
		t.Fatalf("replay-log: exit %d: %s", res.code, res.stderr)
	}
	return target
}
