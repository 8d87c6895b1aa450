package digest_test

import (
	"fmt"
	"testing"

	"github.com/logship/logship/digest"
)

// BenchmarkBlockTree: digesting a 1 MiB block into its tree, the work
// both sides of a comparison do for every byte.
func BenchmarkBlockTree(b *testing.B) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, g := range []int64{512, 4096} {
		b.Run(fmt.Sprintf("granularity=%d", g), func(b *testing.B) {
			t := digest.Tree{Size: 1 << 30, Granularity: g, BlockSize: 1 << 20}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				t.BlockTree(3, data)
			}
		})
	}
}

// BenchmarkIsZero: the zero check that turns pieces into discards.
func BenchmarkIsZero(b *testing.B) {
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		digest.IsZero(data)
	}
}
