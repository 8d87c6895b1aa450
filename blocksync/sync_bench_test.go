package blocksync

import (
	"testing"

	"github.com/logship/logship/fixtures/replicatest"
)

// BenchmarkSync: a sync of a 64 MiB file (a third zeros) to a real
// replica server on loopback: in full, in diff when nothing changed and
// when 1% of the 4 KiB pages changed, and a verify. Bytes are the
// device's; wire-B/op are the bytes on the wire both ways.
func BenchmarkSync(b *testing.B) {
	const size = 64 << 20
	for _, tc := range []struct {
		name    string
		mode    SyncMode
		changes int // pages changed before each sync
		verify  bool
	}{
		{"full", SyncFull, 0, false},
		{"diff/unchanged", SyncDiff, 0, false},
		{"diff/1pct", SyncDiff, size / 4096 / 100, false},
		{"verify", SyncDiff, 0, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := replicatest.Start(b, b.TempDir(), "127.0.0.1:0")
			src, data := blkDevice(b, 11, size)
			cfg := SyncConfig{Source: src, Addr: srv.Addr, Client: replicatest.Client("b"), Mode: SyncFull}
			if _, err := Sync(b.Context(), cfg); err != nil {
				b.Fatal(err)
			}
			cfg.Mode = tc.mode
			b.SetBytes(size)
			b.ReportAllocs()
			var wire int64
			seed := uint64(0)
			for b.Loop() {
				if tc.changes > 0 {
					b.StopTimer()
					seed++
					change(b, src, data, seed, tc.changes, 0, 0)
					b.StartTimer()
				}
				if tc.verify {
					res, err := Verify(b.Context(), VerifyConfig{Source: src, Addr: srv.Addr, Client: replicatest.Client("b")})
					if err != nil || !res.Equal() {
						b.Fatal(err, res.Ranges)
					}
					wire += res.WireOut + res.WireIn
					continue
				}
				st, err := Sync(b.Context(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				wire += st.WireOut + st.WireIn
			}
			b.ReportMetric(float64(wire)/float64(b.N), "wire-B/op")
		})
	}
}
