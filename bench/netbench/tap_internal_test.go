package netbench

import (
	"encoding/binary"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/logship/logship/parallel"
)

// rawFrame is a frame as the protocol lays it out (docs/protocol.md §2),
// written here from the document rather than by parallel: magic "LS",
// type at byte 2, length at 4, window at 8, entry at 16 (the fields the
// tap reads).
func rawFrame(typ parallel.Type, window, entry uint64, payload []byte) []byte {
	h := make([]byte, parallel.HeaderSize)
	h[0], h[1], h[2] = 'L', 'S', byte(typ)
	binary.LittleEndian.PutUint32(h[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:], window)
	binary.LittleEndian.PutUint64(h[16:], entry)
	return append(h, payload...)
}

// helloPayload is a HELLO payload (docs/protocol.md §4): stream index at
// byte 4, count at 6, session at 8, task name length at 60, name at 61.
func helloPayload(session byte, index, count uint16) []byte {
	p := make([]byte, 61+4)
	binary.LittleEndian.PutUint16(p[4:], index)
	binary.LittleEndian.PutUint16(p[6:], count)
	for i := range 16 {
		p[8+i] = session
	}
	p[60] = 4
	copy(p[61:], "task")
	return p
}

// TestTapChunks feeds the same frames to a tap in chunks of many sizes:
// the events and the DATA payload spans must not depend on the cuts.
func TestTapChunks(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i)
	}
	hello := helloPayload(7, 1, 2)
	errBody := append(binary.LittleEndian.AppendUint16(nil, uint16(parallel.CodeChecksum)), "bad"...)
	var stream []byte
	var dataAt []int // offsets of DATA payload bytes in stream
	add := func(f []byte, isData bool) {
		if isData {
			for i := parallel.HeaderSize; i < len(f); i++ {
				dataAt = append(dataAt, len(stream)+i)
			}
		}
		stream = append(stream, f...)
	}
	add(rawFrame(parallel.TypeHello, 0, 0, hello), false)
	add(rawFrame(parallel.TypeData, 3, 30, data), true)
	add(rawFrame(parallel.TypeData, 3, 31, data[:10]), true)
	add(rawFrame(parallel.TypeData, 3, 32, nil), false)
	add(rawFrame(parallel.TypeWindowEnd, 3, 0, make([]byte, 32)), false)
	add(rawFrame(parallel.TypeAck, 3, 0, nil), false)
	add(rawFrame(parallel.TypeError, 0, 0, errBody), false)
	want := []tapEvent{
		{typ: parallel.TypeHello, payload: hello},
		{typ: parallel.TypeData, window: 3, entry: 30},
		{typ: parallel.TypeData, window: 3, entry: 31},
		{typ: parallel.TypeData, window: 3, entry: 32},
		{typ: parallel.TypeWindowEnd, window: 3},
		{typ: parallel.TypeAck, window: 3},
		{typ: parallel.TypeError, payload: errBody},
	}
	for _, size := range []int{1, 2, 7, 47, 48, 49, 1000, len(stream)} {
		var got []tapEvent
		tp := &tap{emit: func(ev tapEvent) {
			ev.at = time.Time{}
			ev.payload = slices.Clone(ev.payload)
			got = append(got, ev)
		}}
		var spans []int
		for off := 0; off < len(stream); off += size {
			sp := tp.feed(stream[off:min(off+size, len(stream))], time.Now())
			if sp.data >= 0 {
				for i := sp.data; i < sp.dataEnd; i++ {
					spans = append(spans, off+i)
				}
			}
		}
		if d := cmp.Diff(want, got, cmp.AllowUnexported(tapEvent{}), cmp.Comparer(func(a, b []byte) bool { return slices.Equal(a, b) })); d != "" {
			t.Errorf("chunks of %d: events differ (-want +got):\n%s", size, d)
		}
		// Every DATA payload byte reported is one; the first of each
		// chunk that holds any is reported.
		for _, i := range spans {
			if _, ok := slices.BinarySearch(dataAt, i); !ok {
				t.Fatalf("chunks of %d: byte %d reported as DATA payload", size, i)
			}
		}
		if len(spans) == 0 {
			t.Errorf("chunks of %d: no DATA payload reported", size)
		}
		if tp.broken {
			t.Errorf("chunks of %d: the tap gave up", size)
		}
	}
}

// TestTapBroken: a stream that is not frames stops the tap, without
// events.
func TestTapBroken(t *testing.T) {
	t.Parallel()
	n := 0
	tp := &tap{emit: func(tapEvent) { n++ }}
	tp.feed([]byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n-------------------"), time.Now())
	big := rawFrame(parallel.TypeData, 0, 0, nil)
	binary.LittleEndian.PutUint32(big[4:], parallel.MaxPayload+1)
	tp2 := &tap{emit: func(tapEvent) { n++ }}
	tp2.feed(big, time.Now())
	if !tp.broken || !tp2.broken || n != 0 {
		t.Errorf("broken %v %v, %d events", tp.broken, tp2.broken, n)
	}
}

// TestLedger follows two sessions of two streams: windows, acks (one of
// them naming a window of the earlier session), boundaries, latencies.
func TestLedger(t *testing.T) {
	t.Parallel()
	l := NewLedger()
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	s1 := l.hello(helloPayload(1, 0, 2))
	if l.hello(helloPayload(1, 1, 2)) != s1 {
		t.Fatal("the second stream of a session got another log")
	}
	c := func(s *sessionLog, typ parallel.Type, w, e uint64, ms int) {
		l.clientFrame(s, tapEvent{typ: typ, window: w, entry: e, at: at(ms)})
	}
	ack := func(s *sessionLog, w uint64, ms int) {
		l.serverFrame(s, tapEvent{typ: parallel.TypeAck, window: w, at: at(ms)})
	}
	// Session 1: window 0 = entries 0-4, window 1 = 5-9 (empty on stream 1), window 2 empty.
	for e := range uint64(5) {
		c(s1, parallel.TypeData, 0, e, 0)
	}
	c(s1, parallel.TypeWindowEnd, 0, 0, 1)
	c(s1, parallel.TypeWindowEnd, 0, 0, 2)
	c(s1, parallel.TypeData, 1, 9, 3)
	c(s1, parallel.TypeData, 1, 5, 3)
	c(s1, parallel.TypeWindowEnd, 1, 0, 4)
	if l.IsBoundary(Boundary{2, 10}) {
		t.Error("window 1 is a boundary before its second WINDOW_END")
	}
	c(s1, parallel.TypeWindowEnd, 1, 0, 6)
	c(s1, parallel.TypeWindowEnd, 2, 0, 7)
	c(s1, parallel.TypeWindowEnd, 2, 0, 7)
	if a := l.Acked(); a.Valid {
		t.Errorf("acked %+v before any ack", a)
	}
	ack(s1, 0, 12)
	if a := l.Acked(); a != (AckedPosition{true, 0, 5}) {
		t.Errorf("acked %+v after ack 0", a)
	}
	// Window 3 of session 1 never completes; session 2 resends it as
	// entries 10-11 and the server's first ack in it names window 2.
	c(s1, parallel.TypeData, 3, 10, 8)
	c(s1, parallel.TypeData, 3, 15, 8)
	s2 := l.hello(helloPayload(2, 0, 2))
	ack(s2, 2, 20)
	if a := l.Acked(); a != (AckedPosition{true, 2, 10}) {
		t.Errorf("acked %+v after an ack naming the earlier session's window 2", a)
	}
	c(s2, parallel.TypeData, 3, 10, 21)
	c(s2, parallel.TypeData, 3, 11, 21)
	c(s2, parallel.TypeWindowEnd, 3, 0, 22)
	c(s2, parallel.TypeWindowEnd, 3, 0, 25)
	ack(s2, 3, 30)
	if a := l.Acked(); a != (AckedPosition{true, 3, 12}) {
		t.Errorf("acked %+v after ack 3 of session 2", a)
	}
	for _, tc := range []struct {
		b    Boundary
		want bool
	}{
		{Boundary{0, 0}, true}, {Boundary{1, 5}, true}, {Boundary{2, 10}, true}, {Boundary{3, 10}, true},
		{Boundary{4, 12}, true}, {Boundary{4, 16}, false}, {Boundary{1, 4}, false}, {Boundary{0, 5}, false}, {Boundary{9, 12}, false},
	} {
		if got := l.IsBoundary(tc.b); got != tc.want {
			t.Errorf("IsBoundary(%+v) = %v, want %v", tc.b, got, tc.want)
		}
	}
	// Latency: from the last WINDOW_END to the ack: window 0 10 ms; the
	// session-1 windows 1 and 2 were never acked in their session; window
	// 3 of session 2 5 ms.
	if got, want := l.Latencies(), []time.Duration{10 * time.Millisecond, 5 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("latencies %v, want %v", got, want)
	}
	if l.Sessions() != 2 {
		t.Errorf("%d sessions", l.Sessions())
	}
}

// BenchmarkTap: what reading the frames costs the proxy, per byte
// carried, for DATA frames of 4 KiB and 1 MiB fed in 256 KiB chunks.
func BenchmarkTap(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			var stream []byte
			for e := uint64(0); len(stream) < 8<<20; e++ {
				stream = append(stream, rawFrame(parallel.TypeData, e/16, e, make([]byte, size))...)
			}
			n := 0
			tp := &tap{emit: func(tapEvent) { n++ }}
			now := time.Now()
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				for off := 0; off < len(stream); off += rawChunk {
					tp.feed(stream[off:min(off+rawChunk, len(stream))], now)
				}
			}
			if n == 0 || tp.broken {
				b.Fatal("the tap saw no frames")
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}
