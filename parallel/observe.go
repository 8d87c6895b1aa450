package parallel

import (
	"encoding/binary"
	"fmt"
)

// FrameHeader is what an observer of the wire (a proxy, a tap) reads of a
// frame header to follow the frames of a connection it does not own.
type FrameHeader struct {
	Type   Type
	Length uint32 // payload bytes on the wire, which follow the header
	Window uint64
	Entry  uint64
}

// ReadFrameHeader reads the frame header at the start of b, which must
// hold at least HeaderSize bytes. It checks only what an observer needs
// to find the next frame: the magic (ErrMalformed) and the length
// (ErrFrameTooLarge past MaxPayload); a session validates much more.
func ReadFrameHeader(b []byte) (FrameHeader, error) {
	if len(b) < HeaderSize {
		return FrameHeader{}, fmt.Errorf("%w: frame header of %d bytes", ErrMalformed, len(b))
	}
	h := (*header)(b[:HeaderSize])
	fh := FrameHeader{Type: h.typ(), Length: h.length(), Window: h.window(), Entry: h.entry()}
	switch {
	case h[offMagic] != magic0 || h[offMagic+1] != magic1:
		return fh, fmt.Errorf("%w: bad magic 0x%02x%02x", ErrMalformed, h[0], h[1])
	case fh.Length > MaxPayload:
		return fh, fmt.Errorf("%w: payload %d bytes, limit %d", ErrFrameTooLarge, fh.Length, MaxPayload)
	}
	return fh, nil
}

// ReadHelloSession reads the session identity and the stream count of a
// HELLO payload, for an observer; nothing else of the HELLO is checked.
// ok is false when the payload is too short to hold them.
func ReadHelloSession(payload []byte) (session [16]byte, streams int, ok bool) {
	if len(payload) < helloOffSession+len(session) {
		return session, 0, false
	}
	copy(session[:], payload[helloOffSession:])
	return session, int(binary.LittleEndian.Uint16(payload[helloOffCount:])), true
}
