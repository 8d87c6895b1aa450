package parallel

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// The record layer of PSK mode (docs/protocol.md §4.2): after HELLO_OK,
// every byte of a stream travels in records sealed with AES-256-GCM
// under a key per stream and direction derived from the pre-shared key
// and the handshake.
//
//	record := u32 n || ciphertext of n bytes (plaintext and a 16-byte tag)
//	nonce  := 4 zero bytes || u64 record sequence number, from 0
//	AAD    := the 4 length bytes
//
// Record layout (frozen, protocol version 2).
const (
	recordLenSize  = 4
	recordTagSize  = 16
	recordMaxPlain = 64 << 10 // plaintext bytes per record
	recordMaxWire  = recordMaxPlain + recordTagSize
	// recordBatch is how many wire bytes a Write seals before it writes
	// them to the connection.
	recordBatch = 256 << 10
)

// Key derivation labels (frozen, protocol version 2).
const (
	labelKeyC2S = "logship v2 client to server"
	labelKeyS2C = "logship v2 server to client"
)

// ErrRecord: a sealed record that does not open (tampered with, cut, or
// sealed under another key), or a record length out of bounds.
var ErrRecord = errors.New("parallel: record does not authenticate")

// streamKeys derives the two keys of a stream from the pre-shared key and
// the handshake transcript.
func streamKeys(psk, t []byte) (c2s, s2c []byte, err error) {
	if c2s, err = hkdf.Key(sha256.New, psk, t, labelKeyC2S, 32); err != nil {
		return nil, nil, err
	}
	if s2c, err = hkdf.Key(sha256.New, psk, t, labelKeyS2C, 32); err != nil {
		return nil, nil, err
	}
	return c2s, s2c, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// recordConn seals what is written to a connection and opens what is read
// from it. Read and Write may run concurrently (one reader, one writer);
// the first error of each direction is sticky.
type recordConn struct {
	net.Conn
	rd recordReader
	wr recordWriter
}

// newRecordConn wraps nc with the keys of this side: out seals what it
// writes, in opens what it reads.
func newRecordConn(nc net.Conn, in, out []byte) (*recordConn, error) {
	rc := &recordConn{Conn: nc}
	var err error
	if rc.rd.aead, err = newGCM(in); err != nil {
		return nil, err
	}
	if rc.wr.aead, err = newGCM(out); err != nil {
		return nil, err
	}
	rc.rd.r, rc.wr.w = nc, nc
	return rc, nil
}

func (rc *recordConn) Read(p []byte) (int, error)  { return rc.rd.Read(p) }
func (rc *recordConn) Write(p []byte) (int, error) { return rc.wr.Write(p) }

// CloseWrite half-closes the connection underneath (records end on a
// record boundary, so the peer reads io.EOF).
func (rc *recordConn) CloseWrite() error {
	if cw, ok := rc.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// recordReader opens records read from r.
type recordReader struct {
	r     io.Reader
	aead  cipher.AEAD
	seq   uint64
	nonce recordNonce
	buf   []byte // the current record, allocated on first use
	plain []byte // what is left of the current record's plaintext
	err   error
}

// recordNonce is the nonce of a record: 4 zero bytes, then the record's
// sequence number.
type recordNonce [12]byte

func (n *recordNonce) at(seq uint64) []byte {
	binary.LittleEndian.PutUint64(n[4:], seq)
	return n[:]
}

func (rr *recordReader) Read(p []byte) (int, error) {
	for len(rr.plain) == 0 {
		if rr.err != nil {
			return 0, rr.err
		}
		rr.err = rr.next()
	}
	n := copy(p, rr.plain)
	rr.plain = rr.plain[n:]
	return n, nil
}

// next reads and opens one record. An io.EOF at a record boundary is
// returned as is; anything cut short is io.ErrUnexpectedEOF.
func (rr *recordReader) next() error {
	var hdr [recordLenSize]byte
	if _, err := io.ReadFull(rr.r, hdr[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n <= recordTagSize || n > recordMaxWire {
		return fmt.Errorf("%w: record %d of %d bytes, want %d..%d", ErrRecord, rr.seq, n, recordTagSize+1, recordMaxWire)
	}
	if rr.buf == nil {
		rr.buf = make([]byte, recordMaxWire)
	}
	ct := rr.buf[:n]
	if _, err := io.ReadFull(rr.r, ct); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	pt, err := rr.aead.Open(ct[:0], rr.nonce.at(rr.seq), ct, hdr[:])
	if err != nil {
		return fmt.Errorf("%w: record %d", ErrRecord, rr.seq)
	}
	rr.seq++
	rr.plain = pt
	return nil
}

// recordWriter seals what is written into records and writes them to w.
type recordWriter struct {
	w     io.Writer
	aead  cipher.AEAD
	seq   uint64
	nonce recordNonce
	buf   []byte // sealed records waiting to be written
	err   error
}

func (rw *recordWriter) Write(p []byte) (int, error) {
	if rw.err != nil {
		return 0, rw.err
	}
	done := 0
	for len(p) > 0 {
		n := min(len(p), recordMaxPlain)
		if rw.buf == nil {
			rw.buf = make([]byte, 0, recordBatch+recordLenSize+recordMaxWire)
		}
		var hdr [recordLenSize]byte
		binary.LittleEndian.PutUint32(hdr[:], uint32(n+recordTagSize))
		rw.buf = append(rw.buf, hdr[:]...)
		rw.buf = rw.aead.Seal(rw.buf, rw.nonce.at(rw.seq), p[:n], hdr[:])
		rw.seq++
		p = p[n:]
		if len(rw.buf) >= recordBatch || len(p) == 0 {
			if _, err := rw.w.Write(rw.buf); err != nil {
				rw.err = err
				return done, err
			}
			rw.buf = rw.buf[:0]
		}
		done += n
	}
	return done, nil
}
