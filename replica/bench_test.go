package replica

import (
	"fmt"
	"testing"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/fixtures"
)

// BenchmarkServe ships the same journal (64 MiB of writes of up to 64
// KiB, a barrier every ~12 entries) to the server over 4 loopback streams
// in each durability mode, and measures the time until the last window is
// acked. Bytes are the journal's payload bytes. "small-windows" caps
// windows at 2 entries, which multiplies the windows (and, with sync per
// window, the syncs) by about six.
func BenchmarkServe(b *testing.B) {
	wl := fixtures.Workload{Seed: 1, SectorSize: 4096, DeviceSize: 256 << 20, Entries: 2000, MaxWriteSectors: 16,
		Flush: 0.05, FUA: 0.03, Overlap: 0.2}
	j := newJournal(b, wl)
	var payload int64
	for _, w := range testWindows(b, j, barrier.Limits{}) {
		payload += w.bytes
	}
	for _, lim := range []struct {
		name   string
		limits barrier.Limits
	}{{"barrier-windows", barrier.Limits{}}, {"small-windows", barrier.Limits{MaxEntries: 2}}} {
		for _, m := range modes {
			b.Run(lim.name+"/"+m.name, func(b *testing.B) {
				cfg := m.cfg
				cfg.CheckpointEvery, cfg.StagingRotate, cfg.Logf = 0, 0, func(string, ...any) {}
				ts := startServer(b, cfg)
				b.SetBytes(payload)
				b.ReportAllocs()
				windows := 0
				for i := 0; b.Loop(); i++ {
					s := ts.dial(b, fmt.Sprintf("t%d", i), 4)
					ctx := b.Context()
					windows = len(openAndShip(ctx, b, s, j, shipOpts{limits: lim.limits}))
					b.StopTimer()
					s.Close()
					ts.waitIdle(b)
					b.StartTimer()
				}
				b.ReportMetric(float64(windows), "windows/op")
			})
		}
	}
}
