package parallel

import (
	"encoding/binary"
	"errors"
	"testing"
)

// TestReadFrameHeader: an observer reads back what the frame writer wrote,
// compressed or not, and stops at a bad magic or an oversized length.
func TestReadFrameHeader(t *testing.T) {
	t.Parallel()
	big := make([]byte, 4096) // compresses
	for _, tc := range []struct {
		name     string
		f        Frame
		compress bool
	}{
		{"data", Frame{Type: TypeData, Window: 7, Entry: 42, Payload: []byte("entry")}, false},
		{"data/zstd", Frame{Type: TypeData, Window: 1 << 40, Entry: 1<<33 + 5, Payload: big}, true},
		{"window end", Frame{Type: TypeWindowEnd, Window: 9, Entry: 100}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encode(t, tc.f, tc.compress)
			h, err := ReadFrameHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			want := FrameHeader{Type: tc.f.Type, Length: uint32(len(b) - HeaderSize), Window: tc.f.Window, Entry: tc.f.Entry}
			if h != want {
				t.Fatalf("got %+v, want %+v", h, want)
			}
			if tc.compress && int(h.Length) >= len(tc.f.Payload) {
				t.Fatalf("length %d: not the compressed length", h.Length)
			}
		})
	}
	b := encode(t, Frame{Type: TypeData, Window: 1, Entry: 1, Payload: []byte("x")}, false)
	for _, tc := range []struct {
		name string
		edit func(b []byte)
		want error
	}{
		{"magic", func(b []byte) { b[offMagic] = 'X' }, ErrMalformed},
		{"length", func(b []byte) { binary.LittleEndian.PutUint32(b[offLength:], MaxPayload+1) }, ErrFrameTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := append([]byte(nil), b...)
			tc.edit(c)
			if _, err := ReadFrameHeader(c); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := ReadFrameHeader(b[:HeaderSize-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short header: %v", err)
	}
}

// TestReadHelloSession: an observer reads the session and stream count of
// a HELLO the client marshals.
func TestReadHelloSession(t *testing.T) {
	t.Parallel()
	h := hello{version: Version, mode: AuthInsecure, index: 2, count: 5, keepAlive: 1000, task: "t1"}
	for i := range h.session {
		h.session[i] = byte(i + 1)
	}
	p := h.marshal()
	session, streams, ok := ReadHelloSession(p)
	if !ok || session != h.session || streams != 5 {
		t.Fatalf("got %x, %d, %v; want %x, 5, true", session, streams, ok, h.session)
	}
	if _, _, ok := ReadHelloSession(p[:helloOffSession+15]); ok {
		t.Fatal("a truncated HELLO read as ok")
	}
}
