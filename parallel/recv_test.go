package parallel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// largeSizes straddle the thresholds of the receive path: bufio below
// minDirectRead, reads of at most maxHashedRead, whole payloads, one after
// the other on one stream so that headers are read past bufio too.
var largeSizes = []int{
	5, minDirectRead - 1, minDirectRead, minDirectRead + 1, maxHashedRead - 1, maxHashedRead, maxHashedRead + 1,
	1<<20 + 17, 100, 1 << 20, MaxPayload, 0, 3*maxHashedRead + 5,
}

// TestReadLarge decodes frames of every size of largeSizes from a stream
// that a reader delivers in pieces of every kind, through bufio as a
// session reads them, and checks each payload and that a flipped byte
// past bufio is still caught.
func TestReadLarge(t *testing.T) {
	var stream []byte
	for i, n := range largeSizes {
		stream = append(stream, encode(t, Frame{Type: TypeData, Window: 1, Entry: uint64(i), Ordinal: uint32(i), Payload: fill(1, uint32(i), n)}, false)...)
	}
	for _, tc := range []struct {
		name string
		raw  func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"half reads", iotest.HalfReader},
		{"one byte", iotest.OneByteReader},
		{"data and EOF", iotest.DataErrReader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.raw(bytes.NewReader(stream))
			fr := newBufferedFrameReader(bufio.NewReaderSize(raw, readBufSize), raw, 0)
			fr.pool = &payloadPool{limit: 64 << 20}
			for i, n := range largeSizes {
				f, err := fr.read()
				if err != nil {
					t.Fatalf("frame %d (%d bytes): %v", i, n, err)
				}
				if f.Entry != uint64(i) || !bytes.Equal(f.Payload, fill(1, uint32(i), n)) {
					t.Fatalf("frame %d (%d bytes): entry %d, payload of %d bytes differs", i, n, f.Entry, len(f.Payload))
				}
				fr.pool.put(f.Payload)
			}
			if _, err := fr.read(); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
	// A byte flipped deep in a large payload, read straight from the
	// connection, fails the checksum; one cut short is unexpected EOF.
	one := encode(t, Frame{Type: TypeData, Window: 1, Payload: fill(1, 0, 1<<20)}, false)
	bad := bytes.Clone(one)
	bad[HeaderSize+900<<10] ^= 1
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"flipped", bad, ErrChecksum},
		{"cut", one[:HeaderSize+700<<10], io.ErrUnexpectedEOF},
	} {
		raw := bytes.NewReader(append(bytes.Clone(one), tc.b...))
		fr := newBufferedFrameReader(bufio.NewReaderSize(raw, readBufSize), raw, 0)
		if _, err := fr.read(); err != nil {
			t.Fatalf("%s: the good frame before: %v", tc.name, err)
		}
		if _, err := fr.read(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestLargePayloadsModes sends frames of every size of largeSizes over one
// stream in each security mode (the direct reads go through TLS and the
// PSK record layer too).
func TestLargePayloadsModes(t *testing.T) {
	ca := newCA(t, "logship test CA")
	serverCert, _, _ := ca.issue(t, "server", true)
	clientCert, _, _ := ca.issue(t, "client", false)
	for _, tc := range []struct {
		name string
		scfg ServerConfig
		ccfg ClientConfig
	}{
		{"insecure", ServerConfig{}, ClientConfig{}},
		{"psk", ServerConfig{PSK: psk}, ClientConfig{PSK: psk}},
		{"tls", ServerConfig{TLS: ServerTLS(serverCert, ca.pool)}, ClientConfig{TLS: ClientTLS(clientCert, ca.pool, "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			tc.scfg.Credit = 32 << 20
			tc.ccfg.Streams, tc.ccfg.Task = 1, "large"
			c, s := pair(t, tc.scfg, tc.ccfg)
			var plan []planned
			for w := range 3 {
				plan = append(plan, planned{seq: uint64(10 + w), sizes: largeSizes})
			}
			errc := make(chan error, 1)
			go func() { errc <- receivePlan(ctx, s, plan, true) }()
			if err := sendPlan(ctx, c, plan); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(fmt.Errorf("%s: %w", tc.name, err))
			}
			if err := c.WaitAck(ctx, plan[len(plan)-1].seq); err != nil {
				t.Fatal(err)
			}
		})
	}
}
