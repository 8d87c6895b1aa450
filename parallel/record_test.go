package parallel

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// testRecordKeys are fixed keys for the record layer tests.
var testRecordKeys = func() (k1, k2 []byte) {
	c2s, s2c, err := streamKeys([]byte("0123456789abcdef"), []byte("transcript"))
	if err != nil {
		panic(err)
	}
	return c2s, s2c
}

func sealed(t testing.TB, key []byte, writes ...[]byte) []byte {
	t.Helper()
	var wire bytes.Buffer
	rw := recordWriter{w: &wire}
	var err error
	if rw.aead, err = newGCM(key); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if _, err := rw.Write(w); err != nil {
			t.Fatal(err)
		}
	}
	return wire.Bytes()
}

func opener(t testing.TB, key []byte, wire []byte) *recordReader {
	t.Helper()
	rr := &recordReader{r: bytes.NewReader(wire)}
	var err error
	if rr.aead, err = newGCM(key); err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	k, other := testRecordKeys()
	rng := rand.New(rand.NewPCG(1, 2))
	var writes [][]byte
	var all []byte
	for _, n := range []int{1, 100, recordMaxPlain - 1, recordMaxPlain, recordMaxPlain + 1, 3*recordBatch + 7, 0, 5} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		writes = append(writes, b)
		all = append(all, b...)
	}
	wire := sealed(t, k, writes...)
	got, err := io.ReadAll(opener(t, k, wire))
	if err != nil || !bytes.Equal(got, all) {
		t.Fatalf("round trip: %d bytes of %d, %v", len(got), len(all), err)
	}
	if bytes.Contains(wire, all[100:140]) {
		t.Fatal("plaintext on the wire")
	}
	for _, tc := range []struct {
		name string
		wire func() []byte
		want error
	}{
		{"flipped bit", func() []byte { w := bytes.Clone(wire); w[len(w)/2] ^= 4; return w }, ErrRecord},
		{"flipped length", func() []byte { w := bytes.Clone(wire); w[0] ^= 1; return w }, ErrRecord},
		{"cut inside a record", func() []byte { return wire[:len(wire)-3] }, io.ErrUnexpectedEOF},
		{"records swapped", func() []byte {
			a := sealed(t, k, []byte("first record"), []byte("second record"))
			n := recordLenSize + len("first record") + recordTagSize
			return append(bytes.Clone(a[n:]), a[:n]...)
		}, ErrRecord},
		{"other key", func() []byte { return sealed(t, other, []byte("sealed for the other direction")) }, ErrRecord},
		{"oversized length", func() []byte { return []byte{0xff, 0xff, 0xff, 0x7f, 0} }, ErrRecord},
	} {
		_, err := io.ReadAll(opener(t, k, tc.wire()))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzRecord: the record reader refuses whatever does not authenticate
// and never allocates more than one record.
func FuzzRecord(f *testing.F) {
	k, _ := testRecordKeys()
	f.Add(sealed(f, k, []byte("hello, records")))
	f.Add(sealed(f, k, make([]byte, recordMaxPlain+10)))
	f.Add([]byte{17, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rr := opener(t, k, b)
		n, err := io.Copy(io.Discard, rr)
		if err == nil && n > 0 {
			// Only sealed records open: what opened must be what was sealed.
			var plain bytes.Buffer
			io.Copy(&plain, opener(t, k, b))
			if !bytes.Equal(sealed(t, k, splitRecords(t, plain.Bytes(), b)...), b) {
				t.Fatalf("%d bytes opened from records that do not re-seal to the input", n)
			}
		}
		if cap(rr.buf) > recordMaxWire {
			t.Fatalf("record buffer of %d bytes", cap(rr.buf))
		}
	})
}

// splitRecords cuts plain along the record boundaries of wire.
func splitRecords(t *testing.T, plain, wire []byte) [][]byte {
	var out [][]byte
	for len(wire) >= recordLenSize {
		n := int(wire[0]) | int(wire[1])<<8 | int(wire[2])<<16 | int(wire[3])<<24
		p := n - recordTagSize
		out = append(out, plain[:p])
		plain, wire = plain[p:], wire[recordLenSize+n:]
	}
	return out
}
