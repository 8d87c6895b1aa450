package parallel

import (
	"fmt"
	"testing"
)

// BenchmarkThroughputPSK is BenchmarkThroughput in PSK mode: every byte
// sealed in AES-256-GCM records. Compare with BenchmarkThroughput and
// BenchmarkThroughputTLS in the same run.
func BenchmarkThroughputPSK(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			benchThroughput(b, ServerConfig{PSK: psk}, ClientConfig{Streams: n, PSK: psk})
		})
	}
}
