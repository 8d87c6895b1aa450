package parallel

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// These constants are part of the wire format of protocol version 1
// (docs/protocol.md) and must not be changed.
const (
	// Version is the protocol version this package speaks.
	Version = 2
	// HeaderSize is the size of a frame header.
	HeaderSize = 48
	// MaxPayload bounds a frame's payload, on the wire and decompressed.
	MaxPayload = 8 << 20
	// MaxStreams bounds the number of streams in a session.
	MaxStreams = 64
	// CreditOverhead is what a frame costs in credit beyond its raw payload
	// bytes; a window end costs CreditOverhead per stream.
	CreditOverhead = 64
	// MaxErrorMessage bounds the message of an ERROR frame or error reply.
	MaxErrorMessage = 1024
)

// Header field offsets (frozen).
const (
	offMagic       = 0  // [2]byte "LS"
	offType        = 2  // u8
	offFlags       = 3  // u8
	offLength      = 4  // u32 payload bytes on the wire
	offWindow      = 8  // u64
	offEntry       = 16 // u64
	offOrdinal     = 24 // u32
	offRawLength   = 28 // u32 payload bytes after decompression
	offChecksum    = 32 // u64 xxhash64 of the wire payload
	offReserved    = 40 // u32 zero
	offHeaderCheck = 44 // u32 low half of xxhash64(header[:44])
)

const magic0, magic1 = 'L', 'S'

// Type is a frame type.
type Type uint8

// Frame types (frozen).
const (
	TypeHello     Type = 0x01
	TypeAuth      Type = 0x02
	TypeHelloOK   Type = 0x03
	TypeData      Type = 0x10
	TypeWindowEnd Type = 0x11
	TypeAck       Type = 0x12
	TypeCredit    Type = 0x13
	TypeCall      Type = 0x20
	TypeReply     Type = 0x21
	TypePing      Type = 0x30
	TypeError     Type = 0x3F
)

// typeInfo is what the codec knows about each type: name, payload length
// bounds (raw bytes) and whether the payload may be compressed.
type typeInfo struct {
	name     string
	min, max int
	compress bool
	flags    Flags // flags allowed besides FlagZstd
}

var types = map[Type]typeInfo{
	TypeHello:     {"HELLO", helloMinSize, helloMaxSize, false, 0},
	TypeAuth:      {"AUTH", 32, 32, false, 0},
	TypeHelloOK:   {"HELLO_OK", helloOKSize, helloOKSize, false, 0},
	TypeData:      {"DATA", 0, MaxPayload, true, 0},
	TypeWindowEnd: {"WINDOW_END", windowEndSize, windowEndSize, false, 0},
	TypeAck:       {"ACK", 0, 0, false, 0},
	TypeCredit:    {"CREDIT", 8, 8, false, 0},
	TypeCall:      {"CALL", 0, MaxPayload, true, 0},
	TypeReply:     {"REPLY", 0, MaxPayload, true, FlagError},
	TypePing:      {"PING", 0, 0, false, 0},
	TypeError:     {"ERROR", 2, 2 + MaxErrorMessage, false, 0},
}

func (t Type) String() string {
	if ti, ok := types[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("type 0x%02x", uint8(t))
}

// Flags are the frame flag bits.
type Flags uint8

// Flag bits (frozen).
const (
	// FlagZstd marks a zstd-compressed payload. The codec sets and clears
	// it; a decoded Frame never has it.
	FlagZstd Flags = 1 << 0
	// FlagError marks an error reply (REPLY only).
	FlagError Flags = 1 << 1
)

// Frame is one decoded frame. For DATA frames, Window is the window
// sequence, Entry the upper layer's entry index and Ordinal the frame's
// position in its window. Payload is always the decompressed payload.
type Frame struct {
	Type    Type
	Flags   Flags
	Window  uint64
	Entry   uint64
	Ordinal uint32
	Payload []byte
}

// header is a frame header on the wire.
type header [HeaderSize]byte

func (h *header) typ() Type         { return Type(h[offType]) }
func (h *header) flags() Flags      { return Flags(h[offFlags]) }
func (h *header) length() uint32    { return binary.LittleEndian.Uint32(h[offLength:]) }
func (h *header) window() uint64    { return binary.LittleEndian.Uint64(h[offWindow:]) }
func (h *header) entry() uint64     { return binary.LittleEndian.Uint64(h[offEntry:]) }
func (h *header) ordinal() uint32   { return binary.LittleEndian.Uint32(h[offOrdinal:]) }
func (h *header) rawLength() uint32 { return binary.LittleEndian.Uint32(h[offRawLength:]) }
func (h *header) checksum() uint64  { return binary.LittleEndian.Uint64(h[offChecksum:]) }
func (h *header) reserved() uint32  { return binary.LittleEndian.Uint32(h[offReserved:]) }
func (h *header) check() uint32     { return binary.LittleEndian.Uint32(h[offHeaderCheck:]) }

func (h *header) computeCheck() uint32 { return uint32(xxhash.Sum64(h[:offHeaderCheck])) }

// put fills the header for f with a wire payload of wireLen bytes whose
// xxhash64 is sum.
func (h *header) put(f *Frame, flags Flags, wireLen, rawLen int, sum uint64) {
	h[offMagic], h[offMagic+1] = magic0, magic1
	h[offType] = byte(f.Type)
	h[offFlags] = byte(flags)
	binary.LittleEndian.PutUint32(h[offLength:], uint32(wireLen))
	binary.LittleEndian.PutUint64(h[offWindow:], f.Window)
	binary.LittleEndian.PutUint64(h[offEntry:], f.Entry)
	binary.LittleEndian.PutUint32(h[offOrdinal:], f.Ordinal)
	binary.LittleEndian.PutUint32(h[offRawLength:], uint32(rawLen))
	binary.LittleEndian.PutUint64(h[offChecksum:], sum)
	binary.LittleEndian.PutUint32(h[offReserved:], 0)
	binary.LittleEndian.PutUint32(h[offHeaderCheck:], h.computeCheck())
}

// frameError builds a FrameError naming the frame in h.
func (h *header) frameError(stream int, err error) *FrameError {
	return &FrameError{Stream: stream, Type: h.typ(), Window: h.window(), Entry: h.entry(), Ordinal: h.ordinal(), Err: err}
}

// validate checks everything that can be checked before the payload is
// read, so that nothing is allocated for a frame that will be refused.
func (h *header) validate(stream int) error {
	if h[offMagic] != magic0 || h[offMagic+1] != magic1 {
		return &FrameError{Stream: stream, Err: fmt.Errorf("%w: bad magic 0x%02x%02x", ErrMalformed, h[0], h[1])}
	}
	if got, want := h.check(), h.computeCheck(); got != want {
		return &FrameError{Stream: stream, Err: fmt.Errorf("%w: header check 0x%08x, header hashes to 0x%08x", ErrMalformed, got, want)}
	}
	ti, ok := types[h.typ()]
	if !ok {
		return h.frameError(stream, ErrUnknownType)
	}
	if r := h.reserved(); r != 0 {
		return h.frameError(stream, fmt.Errorf("%w: reserved field is 0x%x", ErrMalformed, r))
	}
	allowed := ti.flags
	if ti.compress {
		allowed |= FlagZstd
	}
	if f := h.flags(); f&^allowed != 0 {
		return h.frameError(stream, fmt.Errorf("%w: flags 0x%02x not allowed", ErrMalformed, uint8(f)))
	}
	n, raw := h.length(), h.rawLength()
	if n > MaxPayload || raw > MaxPayload {
		return h.frameError(stream, fmt.Errorf("%w: payload %d bytes (%d decompressed), limit %d", ErrFrameTooLarge, n, raw, MaxPayload))
	}
	if h.flags()&FlagZstd == 0 && n != raw {
		return h.frameError(stream, fmt.Errorf("%w: uncompressed payload of %d bytes claims raw length %d", ErrMalformed, n, raw))
	}
	min := ti.min
	if h.flags()&FlagError != 0 && min < 2 {
		min = 2
	}
	if int(raw) < min || int(raw) > ti.max {
		return h.frameError(stream, fmt.Errorf("%w: %s payload of %d bytes, want %d..%d", ErrMalformed, ti.name, raw, min, ti.max))
	}
	return nil
}

// frameWriter encodes frames onto a buffered writer.
type frameWriter struct {
	w   *bufio.Writer
	enc *zstd.Encoder // created on first compressed frame
	buf []byte        // compression output, reused
	hdr header
}

func newFrameWriter(w io.Writer, size int) *frameWriter {
	return &frameWriter{w: bufio.NewWriterSize(w, size)}
}

// minCompress is the smallest payload worth trying to compress.
const minCompress = 256

// write encodes f, compressing the payload if compress is set, the type
// allows it and it gets smaller. It returns the bytes written (header and
// wire payload). f.Payload must not exceed MaxPayload.
func (fw *frameWriter) write(f *Frame, compress bool) (int, error) {
	payload := f.Payload
	flags := f.Flags &^ FlagZstd
	if compress && len(payload) >= minCompress && types[f.Type].compress {
		if fw.enc == nil {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true),
				zstd.WithEncoderCRC(false)) // the frame checksum covers the wire bytes
			if err != nil {
				return 0, err
			}
			fw.enc = enc
		}
		fw.buf = fw.enc.EncodeAll(payload, fw.buf[:0])
		if len(fw.buf) < len(payload) {
			payload = fw.buf
			flags |= FlagZstd
		}
	}
	fw.hdr.put(f, flags, len(payload), len(f.Payload), xxhash.Sum64(payload))
	if _, err := fw.w.Write(fw.hdr[:]); err != nil {
		return 0, err
	}
	if _, err := fw.w.Write(payload); err != nil {
		return 0, err
	}
	return HeaderSize + len(payload), nil
}

func (fw *frameWriter) flush() error { return fw.w.Flush() }

func (fw *frameWriter) close() {
	if fw.enc != nil {
		fw.enc.Close()
	}
}

// frameReader decodes frames from a reader. It never allocates more than
// a validated header allows.
type frameReader struct {
	r       io.Reader
	stream  int           // for error messages
	dec     *zstd.Decoder // created on first compressed frame
	scratch []byte        // compressed payloads, reused
	hdr     header
}

func newFrameReader(r io.Reader, stream int) *frameReader {
	return &frameReader{r: r, stream: stream}
}

// readHeader reads and validates the next header. An io.EOF before the
// first byte is returned as is; a header cut short is io.ErrUnexpectedEOF.
func (fr *frameReader) readHeader() (*header, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	if err := fr.hdr.validate(fr.stream); err != nil {
		return nil, err
	}
	return &fr.hdr, nil
}

// readPayload reads the payload of the frame whose header readHeader just
// returned, verifies its checksum and decompresses it.
func (fr *frameReader) readPayload(h *header) (Frame, error) {
	n, raw := int(h.length()), int(h.rawLength())
	f := Frame{Type: h.typ(), Flags: h.flags() &^ FlagZstd, Window: h.window(), Entry: h.entry(), Ordinal: h.ordinal()}
	compressed := h.flags()&FlagZstd != 0
	var wire []byte
	if compressed {
		if cap(fr.scratch) < n {
			fr.scratch = make([]byte, n)
		}
		wire = fr.scratch[:n]
	} else {
		wire = getPayload(n)
	}
	if _, err := io.ReadFull(fr.r, wire); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	if got := xxhash.Sum64(wire); got != h.checksum() {
		return Frame{}, h.frameError(fr.stream, fmt.Errorf("%w: header says 0x%016x, payload hashes to 0x%016x", ErrChecksum, h.checksum(), got))
	}
	if !compressed {
		f.Payload = wire
		return f, nil
	}
	if fr.dec == nil {
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(MaxPayload))
		if err != nil {
			return Frame{}, err
		}
		fr.dec = dec
	}
	out, err := fr.dec.DecodeAll(wire, getPayload(raw)[:0])
	if err != nil {
		return Frame{}, h.frameError(fr.stream, fmt.Errorf("%w: zstd: %v", ErrMalformed, err))
	}
	if len(out) != raw {
		return Frame{}, h.frameError(fr.stream, fmt.Errorf("%w: zstd payload decompresses to %d bytes, header says %d", ErrMalformed, len(out), raw))
	}
	f.Payload = out
	return f, nil
}

// read reads one whole frame.
func (fr *frameReader) read() (Frame, error) {
	h, err := fr.readHeader()
	if err != nil {
		return Frame{}, err
	}
	return fr.readPayload(h)
}

func (fr *frameReader) close() {
	if fr.dec != nil {
		fr.dec.Close()
	}
}

// frameCost is what a DATA frame with a raw payload of n bytes costs in
// credit.
func frameCost(n int) int64 { return int64(n) + CreditOverhead }

// windowEnd is the payload of a WINDOW_END frame.
type windowEnd struct {
	streamFrames, streamBytes uint64 // this stream's DATA frames of the window
	frames, bytes             uint64 // the whole window
}

const windowEndSize = 32

func (e windowEnd) marshal() []byte {
	b := make([]byte, windowEndSize)
	binary.LittleEndian.PutUint64(b[0:], e.streamFrames)
	binary.LittleEndian.PutUint64(b[8:], e.streamBytes)
	binary.LittleEndian.PutUint64(b[16:], e.frames)
	binary.LittleEndian.PutUint64(b[24:], e.bytes)
	return b
}

func parseWindowEnd(b []byte) windowEnd {
	return windowEnd{
		streamFrames: binary.LittleEndian.Uint64(b[0:]),
		streamBytes:  binary.LittleEndian.Uint64(b[8:]),
		frames:       binary.LittleEndian.Uint64(b[16:]),
		bytes:        binary.LittleEndian.Uint64(b[24:]),
	}
}

// errorBody encodes the payload of an ERROR frame or error reply.
// Absolute paths in msg are shortened (redactPaths).
func errorBody(code Code, msg string) []byte {
	msg = redactPaths(msg)
	if len(msg) > MaxErrorMessage {
		msg = msg[:MaxErrorMessage]
	}
	b := make([]byte, 2, 2+len(msg))
	binary.LittleEndian.PutUint16(b, uint16(code))
	return append(b, msg...)
}

// parseErrorBody decodes an ERROR payload; the codec guarantees len(b) ≥ 2.
func parseErrorBody(b []byte) *RemoteError {
	return &RemoteError{Code: Code(binary.LittleEndian.Uint16(b)), Msg: string(b[2:])}
}

func creditBody(n int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(n)) }
