package devio

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWriteAt writes 1 MiB blocks sequentially, wrapping around a
// 256 MiB file in /var/tmp (a disk file system, where O_DIRECT works), with
// and without O_DIRECT. Buffered writes measure the page cache; direct ones
// the disk.
func BenchmarkWriteAt(b *testing.B) {
	const (
		block = 1 << 20
		size  = 256 << 20
	)
	for _, direct := range []bool{false, true} {
		b.Run(map[bool]string{false: "buffered", true: "direct"}[direct], func(b *testing.B) {
			dir, err := os.MkdirTemp("/var/tmp", "devio-bench")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { os.RemoveAll(dir) })
			d, err := Open(filepath.Join(dir, "image"), Options{Create: true, Size: size, Direct: direct})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			buf := AlignedBuffer(block, 4096)
			copy(buf, pattern(block, 1))
			b.SetBytes(block)
			b.ReportAllocs()
			off := int64(0)
			for b.Loop() {
				if _, err := d.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
				off = (off + block) % size
			}
			b.StopTimer()
			if err := d.Sync(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
