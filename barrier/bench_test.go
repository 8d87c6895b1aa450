package barrier_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// benchJournal is a 100k-entry synthetic journal (about 280 MB), built once.
var benchJournal struct {
	sync.Once
	d       *journalData
	payload int64 // payload bytes of all entries
}

func loadBench(b *testing.B) (*journalData, int64) {
	benchJournal.Do(func() {
		wl := fixtures.DefaultWorkload(1, 512)
		wl.Entries, wl.DeviceSize, wl.MaxWriteSectors = 100_000, 64<<20, 8
		benchJournal.d = load(b, wl)
		for _, e := range benchJournal.d.entries {
			benchJournal.payload += e.PayloadLen()
		}
	})
	if d := benchJournal.d; d == nil || len(d.entries) != 100_000 {
		b.Fatal("no 100k-entry benchmark journal")
	}
	return benchJournal.d, benchJournal.payload
}

// BenchmarkSplit cuts the journal into windows: from entries in memory
// (the Splitter alone), and from the journal bytes through a Reader.
func BenchmarkSplit(b *testing.B) {
	d, payload := loadBench(b)
	b.Run("Splitter", func(b *testing.B) {
		b.SetBytes(payload)
		b.ReportAllocs()
		for b.Loop() {
			s := barrier.NewSplitter(barrier.Limits{})
			for _, e := range d.entries {
				s.Add(e)
			}
			s.Close()
		}
	})
	b.Run("Reader", func(b *testing.B) {
		b.SetBytes(payload)
		b.ReportAllocs()
		for b.Loop() {
			r, err := journal.NewReader(bytes.NewReader(d.j), int64(len(d.j)))
			if err != nil {
				b.Fatal(err)
			}
			for _, err := range barrier.Split(r, barrier.Limits{}) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkCoalesce coalesces the journal window by window (default caps),
// and all 100k entries in one call.
func BenchmarkCoalesce(b *testing.B) {
	d, payload := loadBench(b)
	ws := splitAll(d.entries, barrier.Limits{})
	b.Run("windows", func(b *testing.B) {
		b.SetBytes(payload)
		b.ReportAllocs()
		for b.Loop() {
			for _, w := range ws {
				w.Coalesce()
			}
		}
	})
	b.Run("whole", func(b *testing.B) {
		b.SetBytes(payload)
		b.ReportAllocs()
		for b.Loop() {
			barrier.Coalesce(d.entries)
		}
	})
}
