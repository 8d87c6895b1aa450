package parallel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// encode returns f as it goes on the wire.
func encode(t testing.TB, f Frame, compress bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw := newFrameWriter(&buf, 64<<10)
	defer fw.close()
	if _, err := fw.write(&f, compress); err != nil {
		t.Fatal(err)
	}
	if err := fw.flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rehash fixes the header check of an encoded frame after an edit.
func rehash(b []byte) []byte {
	h := (*header)(b[:HeaderSize])
	binary.LittleEndian.PutUint32(h[offHeaderCheck:], h.computeCheck())
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	text := bytes.Repeat([]byte("abcdefgh"), 1000)
	for _, tc := range []struct {
		name     string
		f        Frame
		compress bool
		zstd     bool // expect the compressed flag on the wire
	}{
		{"empty data", Frame{Type: TypeData, Window: 1, Entry: 2, Ordinal: 3}, false, false},
		{"data", Frame{Type: TypeData, Window: 1 << 60, Entry: 99, Ordinal: 7, Payload: fill(1, 2, 5000)}, false, false},
		{"compressed", Frame{Type: TypeData, Window: 4, Entry: 5, Payload: text}, true, true},
		{"incompressible", Frame{Type: TypeData, Window: 4, Entry: 5, Payload: fill(3, 3, 5000)}, true, false},
		{"too small to compress", Frame{Type: TypeData, Payload: text[:100]}, true, false},
		{"window end", Frame{Type: TypeWindowEnd, Window: 8, Payload: windowEnd{1, 2, 3, 4}.marshal()}, true, false},
		{"error reply", Frame{Type: TypeReply, Flags: FlagError, Entry: 4, Payload: errorBody(CodeApplication, "x")}, false, false},
		{"max payload", Frame{Type: TypeData, Payload: make([]byte, MaxPayload)}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encode(t, tc.f, tc.compress)
			h := (*header)(b[:HeaderSize])
			if got := h.flags()&FlagZstd != 0; got != tc.zstd {
				t.Fatalf("compressed flag %v, want %v", got, tc.zstd)
			}
			if int(h.length())+HeaderSize != len(b) {
				t.Fatalf("length field %d, frame of %d bytes", h.length(), len(b))
			}
			fr := newFrameReader(bytes.NewReader(b), 0)
			defer fr.close()
			got, err := fr.read()
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tc.f.Type || got.Flags != tc.f.Flags || got.Window != tc.f.Window || got.Entry != tc.f.Entry ||
				got.Ordinal != tc.f.Ordinal || !bytes.Equal(got.Payload, tc.f.Payload) {
				t.Fatalf("decoded %+v, want %+v", got.Type, tc.f.Type)
			}
			if _, err := fr.read(); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
}

func TestFrameRefused(t *testing.T) {
	data := encode(t, Frame{Type: TypeData, Window: 5, Entry: 3, Payload: []byte("hello, frame")}, false)
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(data)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"bad checksum", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrChecksum, "DATA frame (window 5, entry 3, ordinal 0)"},
		{"bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return rehash(b) }), ErrMalformed, "bad magic"},
		{"bad header check", edit(func(b []byte) []byte { b[offWindow] ^= 1; return b }), ErrMalformed, "header check"},
		{"oversize", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[offLength:], MaxPayload+1)
			binary.LittleEndian.PutUint32(b[offRawLength:], MaxPayload+1)
			return rehash(b)[:HeaderSize]
		}), ErrFrameTooLarge, "DATA frame (window 5, entry 3, ordinal 0): parallel: frame too large: payload 8388609"},
		{"oversize raw", edit(func(b []byte) []byte {
			b[offFlags] = byte(FlagZstd)
			binary.LittleEndian.PutUint32(b[offRawLength:], 1<<31)
			return rehash(b)
		}), ErrFrameTooLarge, "2147483648 decompressed"},
		{"unknown type", edit(func(b []byte) []byte { b[offType] = 0x7e; return rehash(b) }), ErrUnknownType, "type 0x7e frame"},
		{"reserved", edit(func(b []byte) []byte { b[offReserved] = 1; return rehash(b) }), ErrMalformed, "reserved"},
		{"flags", edit(func(b []byte) []byte { b[offFlags] = 0x80; return rehash(b) }), ErrMalformed, "flags 0x80"},
		{"raw length without zstd", edit(func(b []byte) []byte { b[offRawLength]++; return rehash(b) }), ErrMalformed, "raw length"},
		{"bad zstd", func() []byte {
			b := encode(t, Frame{Type: TypeData, Window: 5, Entry: 3, Payload: []byte("not zstd at all")}, false)
			b[offFlags] = byte(FlagZstd)
			binary.LittleEndian.PutUint32(b[offRawLength:], 100)
			return rehash(b)
		}(), ErrMalformed, "zstd"},
		{"short window end", rehash(encode(t, Frame{Type: TypeWindowEnd, Window: 2, Payload: make([]byte, 31)}, false)), ErrMalformed, "WINDOW_END payload of 31 bytes"},
		{"truncated", data[:len(data)-1], io.ErrUnexpectedEOF, ""},
		{"truncated header", data[:10], io.ErrUnexpectedEOF, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := newFrameReader(bytes.NewReader(tc.b), 2)
			defer fr.close()
			_, err := fr.read()
			if !errors.Is(err, tc.want) {
				t.Fatalf("read: %v, want %v", err, tc.want)
			}
			if !strings.Contains(fmt.Sprint(err), tc.msg) {
				t.Fatalf("error %q does not contain %q", err, tc.msg)
			}
			if tc.msg != "" && !strings.HasPrefix(err.Error(), "parallel: stream 2: ") {
				t.Fatalf("error %q does not name the stream", err)
			}
		})
	}
}

// step is one hand-made frame a raw client writes on a stream.
type step struct {
	stream int
	b      []byte
}

// TestRefusedBySession: a server session refuses bad frames with an error
// naming the frame, tells the client with an ERROR frame, and delivers
// nothing.
func TestRefusedBySession(t *testing.T) {
	data := func(w, e uint64, ord uint32, n int) []byte {
		return encode(t, Frame{Type: TypeData, Window: w, Entry: e, Ordinal: ord, Payload: fill(w, ord, n)}, false)
	}
	end := func(w uint64, sf, sb, tf, tb uint64) []byte {
		return encode(t, Frame{Type: TypeWindowEnd, Window: w, Payload: windowEnd{sf, sb, tf, tb}.marshal()}, false)
	}
	corrupt := data(5, 3, 0, 100)
	corrupt[len(corrupt)-1] ^= 0xff
	blocking := func(ctx context.Context, s *Session, req []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for _, tc := range []struct {
		name  string
		cfg   ServerConfig
		steps []step
		want  error
		code  Code
		msg   string
	}{
		{"bad checksum", ServerConfig{}, []step{{1, corrupt}}, ErrChecksum, CodeChecksum,
			"stream 1: DATA frame (window 5, entry 3, ordinal 0): parallel: checksum mismatch"},
		{"oversize", ServerConfig{}, []step{{0, func() []byte {
			b := data(5, 3, 0, 10)
			binary.LittleEndian.PutUint32(b[offLength:], MaxPayload+1)
			binary.LittleEndian.PutUint32(b[offRawLength:], MaxPayload+1)
			return rehash(b)[:HeaderSize]
		}()}}, ErrFrameTooLarge, CodeTooLarge, "stream 0: DATA frame (window 5, entry 3, ordinal 0): parallel: frame too large"},
		{"unknown type", ServerConfig{}, []step{{1, func() []byte {
			b := data(5, 3, 0, 10)
			b[offType] = 0x42
			return rehash(b)
		}()}}, ErrUnknownType, CodeUnknownType, "stream 1: type 0x42 frame (window 5, entry 3)"},
		{"wrong direction", ServerConfig{}, []step{{0, encode(t, Frame{Type: TypeAck, Window: 3}, false)}},
			ErrProtocol, CodeProtocol, "stream 0: ACK frame"},
		{"hello again", ServerConfig{}, []step{{1, encode(t, Frame{Type: TypeHello, Payload: (&hello{version: 1, mode: 3, count: 1, keepAlive: 1}).marshal()}, false)}},
			ErrProtocol, CodeProtocol, "stream 1: HELLO frame"},
		{"call on stream 1", ServerConfig{}, []step{{1, encode(t, Frame{Type: TypeCall, Entry: 1}, false)}},
			ErrProtocol, CodeProtocol, "stream 1: CALL frame (call 1)"},
		{"lost frame", ServerConfig{}, []step{{0, data(5, 0, 0, 10)}, {0, end(5, 2, 20, 2, 20)}},
			ErrWindow, CodeWindow, "stream 0: WINDOW_END frame (window 5): parallel: window incomplete or inconsistent: 1 DATA frames (10 bytes)"},
		{"lost bytes", ServerConfig{}, []step{{0, data(5, 0, 0, 10)}, {0, end(5, 1, 11, 1, 11)}},
			ErrWindow, CodeWindow, "WINDOW_END says 1 (11 bytes)"},
		{"duplicate", ServerConfig{}, []step{{0, data(5, 0, 0, 10)}, {1, data(5, 0, 0, 10)}, {0, end(5, 1, 10, 2, 20)}, {1, end(5, 1, 10, 2, 20)}},
			ErrWindow, CodeWindow, "two DATA frames with ordinal 0"},
		{"ordinal out of range", ServerConfig{}, []step{{0, data(5, 0, 9, 10)}, {0, end(5, 1, 10, 1, 10)}, {1, end(5, 0, 0, 1, 10)}},
			ErrWindow, CodeWindow, "ordinal 9 in a window of 1 frames"},
		{"totals differ", ServerConfig{}, []step{{0, end(5, 0, 0, 1, 10)}, {1, end(5, 0, 0, 2, 10)}},
			ErrWindow, CodeWindow, "another stream said"},
		{"frames missing from all streams", ServerConfig{}, []step{{0, end(5, 0, 0, 1, 10)}, {1, end(5, 0, 0, 1, 10)}},
			ErrWindow, CodeWindow, "the streams carried 0 frames (0 bytes), the window has 1 (10 bytes)"},
		{"window skipped on a stream", ServerConfig{}, []step{{0, data(5, 0, 0, 10)}, {0, data(6, 0, 1, 10)}},
			ErrWindow, CodeWindow, "window 5 is open on this stream"},
		{"stream starts late", ServerConfig{}, []step{{0, end(5, 0, 0, 0, 0)}, {0, end(6, 0, 0, 0, 0)}, {1, end(6, 0, 0, 0, 0)}},
			ErrWindow, CodeWindow, "parallel: window incomplete or inconsistent: the stream's first window is"},
		{"credit overrun", ServerConfig{Credit: MinCredit}, []step{{0, data(5, 0, 0, 40<<10)}, {1, data(5, 1, 1, 40<<10)}},
			ErrCredit, CodeCredit, "credit exceeded: frame costs 41024 bytes with 41024 of 65536 in use"},
		{"too many calls", ServerConfig{MaxCalls: 1, Handler: blocking}, []step{{0, encode(t, Frame{Type: TypeCall, Entry: 1}, false)}, {0, encode(t, Frame{Type: TypeCall, Entry: 2}, false)}},
			ErrProtocol, CodeProtocol, "CALL frame (call 2): parallel: protocol violation: more than 1 outstanding calls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, tc.cfg)
			conns := rawDial(t, l, 2, 5*time.Second, "")
			s := accept(t, l)
			for _, st := range tc.steps {
				if _, err := conns[st.stream].nc.Write(st.b); err != nil {
					t.Fatal(err)
				}
			}
			w, err := s.Next(testCtx(t))
			if err == nil {
				t.Fatalf("Next delivered window %d", w.Seq)
			}
			var fe *FrameError
			if !errors.Is(err, tc.want) || !errors.As(err, &fe) {
				t.Fatalf("Next: %v (%T), want a *FrameError wrapping %v", err, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not contain %q", err, tc.msg)
			}
			re := readError(t, conns[0])
			for _, c := range conns {
				c.nc.Close() // lets the server's readers end without waiting
			}
			if re.Code != tc.code || !strings.Contains(re.Msg, tc.msg) || !errors.Is(re, tc.want) {
				t.Fatalf("client got ERROR %v %q, want %v containing %q", re.Code, re.Msg, tc.code, tc.msg)
			}
		})
	}
}

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzFrame")

// fuzzSeeds are the seed inputs of FuzzFrame: valid frames of every
// kind, alone and in sequence, and damaged ones.
func fuzzSeeds(t testing.TB) map[string][]byte {
	text := bytes.Repeat([]byte("seed text "), 100)
	data := encode(t, Frame{Type: TypeData, Window: 5, Entry: 3, Ordinal: 1, Payload: []byte("hello, frame")}, false)
	seeds := map[string][]byte{
		"data":        data,
		"data-zstd":   encode(t, Frame{Type: TypeData, Window: 6, Payload: text}, true),
		"window-end":  encode(t, Frame{Type: TypeWindowEnd, Window: 5, Payload: windowEnd{1, 12, 2, 24}.marshal()}, false),
		"hello":       encode(t, Frame{Type: TypeHello, Payload: (&hello{version: 1, mode: AuthPSK, count: 4, index: 2, keepAlive: 5000, task: "db"}).marshal()}, false),
		"hello-ok":    encode(t, Frame{Type: TypeHelloOK, Payload: (&helloOK{version: 1, mode: AuthTLS, keepAlive: 5000, credit: DefaultCredit, maxCalls: 8}).marshal()}, false),
		"error":       encode(t, Frame{Type: TypeError, Payload: errorBody(CodeWindow, "window 5 incomplete")}, false),
		"reply-error": encode(t, Frame{Type: TypeReply, Flags: FlagError, Entry: 9, Payload: errorBody(CodeApplication, "no")}, false),
		"credit":      encode(t, Frame{Type: TypeCredit, Payload: creditBody(1 << 20)}, false),
		"ping-ack":    append(encode(t, Frame{Type: TypePing}, false), encode(t, Frame{Type: TypeAck, Window: 77}, false)...),
		"bad-sum":     append(bytes.Clone(data[:len(data)-1]), data[len(data)-1]^1),
		"truncated":   data[:HeaderSize+3],
	}
	return seeds
}

// TestFuzzSeeds writes the committed corpus with -write-seeds and checks
// otherwise that it is there and up to date with the frame layout.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzFrame")
	for name, b := range fuzzSeeds(t) {
		path := filepath.Join(dir, name)
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if *writeSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test -run TestFuzzSeeds -write-seeds writes the corpus)", err)
		}
		// Compressed seeds depend on the zstd version; the rest must match.
		if !strings.Contains(name, "zstd") && string(got) != want {
			t.Errorf("%s differs from the seed the code makes (go test -run TestFuzzSeeds -write-seeds)", path)
		}
	}
}

// FuzzFrame: the decoder never panics nor allocates past its bounds, and
// whatever it accepts re-encodes to a frame that decodes the same.
func FuzzFrame(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b), 0)
		defer fr.close()
		for {
			got, err := fr.read()
			if err != nil {
				return
			}
			if len(got.Payload) > MaxPayload {
				t.Fatalf("payload of %d bytes accepted", len(got.Payload))
			}
			if _, ok := types[got.Type]; !ok {
				t.Fatalf("unknown %v accepted", got.Type)
			}
			for _, compress := range []bool{false, true} {
				again, err := newFrameReader(bytes.NewReader(encode(t, got, compress)), 0).read()
				if err != nil {
					t.Fatalf("re-encoded %v frame refused: %v", got.Type, err)
				}
				if again.Type != got.Type || again.Flags != got.Flags || again.Window != got.Window ||
					again.Entry != got.Entry || again.Ordinal != got.Ordinal || !bytes.Equal(again.Payload, got.Payload) {
					t.Fatalf("re-encoded %v frame decodes differently", got.Type)
				}
			}
		}
	})
}

func BenchmarkFrameEncode(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		for _, compress := range []bool{false, true} {
			b.Run(fmt.Sprintf("size=%d/zstd=%v", size, compress), func(b *testing.B) {
				f := Frame{Type: TypeData, Window: 1, Entry: 2, Payload: benchPayload(size)}
				fw := newFrameWriter(io.Discard, writeBufSize)
				defer fw.close()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := fw.write(&f, compress); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkFrameDecode(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		for _, compress := range []bool{false, true} {
			b.Run(fmt.Sprintf("size=%d/zstd=%v", size, compress), func(b *testing.B) {
				wire := encode(b, Frame{Type: TypeData, Window: 1, Entry: 2, Payload: benchPayload(size)}, compress)
				r := bytes.NewReader(wire)
				fr := newFrameReader(r, 0)
				defer fr.close()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					r.Reset(wire)
					if _, err := fr.read(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchPayload is half random, half text: compressible about 2:1, like a
// disk block of mixed content.
func benchPayload(n int) []byte {
	b := fill(7, 7, n)
	text := []byte("the quick brown fox jumps over the lazy dog; ")
	for i := n / 2; i < n; i += len(text) {
		copy(b[i:], text)
	}
	return b
}

// FuzzHello: parseHello never panics, and a HELLO it accepts encodes back
// to the same bytes (no field is ignored, nothing trails the task name).
func FuzzHello(f *testing.F) {
	for _, h := range []hello{
		{version: Version, mode: AuthInsecure, index: 0, count: 1, keepAlive: 1000},
		{version: Version, mode: AuthPSK, index: 3, count: 4, keepAlive: 30000, task: "vol-1.img"},
		{version: Version, mode: AuthTLS, index: 0, count: MaxStreams, keepAlive: 1, task: strings.Repeat("t", MaxTask)},
	} {
		h.session[0], h.nonce[31] = 0xa5, 0x5a
		f.Add(h.marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHello(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("refused with %v, want ErrMalformed or ErrVersion", err)
			}
			return
		}
		if h.count == 0 || h.index >= h.count || h.count > MaxStreams || checkTask(h.task) != nil {
			t.Fatalf("accepted %+v", h)
		}
		if again := h.marshal(); !bytes.Equal(again, b) {
			t.Fatalf("accepted HELLO encodes back as %x, was %x", again, b)
		}
	})
}
