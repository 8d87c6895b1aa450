package parallel

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkThroughput ships 1 MiB DATA frames over loopback TCP, 8 frames
// a window, with a server that releases and acks every window at once.
// The time includes the receiving of the last window.
func BenchmarkThroughput(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			benchThroughput(b, ServerConfig{}, ClientConfig{Streams: n})
		})
	}
}

// BenchmarkThroughputZstd is the same with compression of a payload
// that compresses about 2:1.
func BenchmarkThroughputZstd(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			benchThroughput(b, ServerConfig{}, ClientConfig{Streams: n, Compress: true})
		})
	}
}

// BenchmarkThroughputTLS is the same over TLS 1.3.
func BenchmarkThroughputTLS(b *testing.B) {
	ca := newCA(b, "bench CA")
	sc, _, _ := ca.issue(b, "server", true)
	cc, _, _ := ca.issue(b, "client", false)
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			benchThroughput(b, ServerConfig{TLS: ServerTLS(sc, ca.pool)}, ClientConfig{Streams: n, TLS: ClientTLS(cc, ca.pool, "")})
		})
	}
}

func benchThroughput(b *testing.B, scfg ServerConfig, ccfg ClientConfig) {
	const size, perWindow = 1 << 20, 8
	c, s := pair(b, scfg, ccfg)
	ctx := context.Background()
	payload := benchPayload(size)
	windows := (b.N + perWindow - 1) / perWindow
	got := make(chan error, 1)
	go func() {
		for range windows {
			w, err := s.Next(ctx)
			if err != nil {
				got <- err
				return
			}
			w.Release()
			s.Ack(w.Seq)
		}
		got <- nil
	}()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w := uint64(i / perWindow)
		if err := c.SendFrame(ctx, Frame{Window: w, Entry: uint64(i), Payload: payload}); err != nil {
			b.Fatal(err)
		}
		if i%perWindow == perWindow-1 || i == b.N-1 {
			if err := c.EndWindow(ctx, w); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := <-got; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	var wire uint64
	for _, st := range c.Stats().Streams {
		wire += st.BytesOut
	}
	b.ReportMetric(float64(wire)/float64(b.N)/size, "wire/raw")
}
