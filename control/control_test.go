package control_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
)

func TestEntryRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		e    journal.Entry
		data []byte
	}{
		{journal.Entry{Sector: 8, NrSectors: 2, Flags: journal.FlagFUA}, bytes.Repeat([]byte{7}, 1024)},
		{journal.Entry{Sector: 16, NrSectors: 99, Flags: journal.FlagDiscard}, nil},
		{journal.Entry{Flags: journal.FlagMark, Label: "mkfs"}, nil},
		{journal.Entry{Flags: journal.FlagFlush}, nil},
	} {
		p := control.AppendEntry(nil, tc.e, tc.data)
		e, d, err := control.ParseEntry(p, 42, 512)
		if err != nil {
			t.Fatal(err)
		}
		if e.Index != 42 || e.Sector != tc.e.Sector || e.NrSectors != tc.e.NrSectors || e.Flags != tc.e.Flags || e.Label != tc.e.Label || !bytes.Equal(d, tc.data) {
			t.Fatalf("round trip of %+v gave %+v", tc.e, e)
		}
	}
}

func TestParseEntryRefuses(t *testing.T) {
	good := control.AppendEntry(nil, journal.Entry{Sector: 1, NrSectors: 1}, make([]byte, 512))
	for name, p := range map[string][]byte{
		"short":         good[:10],
		"short data":    good[:len(good)-1],
		"long data":     append(append([]byte{}, good...), 0),
		"unknown flags": control.AppendEntry(nil, journal.Entry{Flags: 0x40}, nil),
		"label on write": func() []byte {
			return control.AppendEntry(nil, journal.Entry{Sector: 1, NrSectors: 1, Label: "x"}, make([]byte, 512))
		}(),
	} {
		if _, _, err := control.ParseEntry(p, 1, 512); !errors.Is(err, control.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzParseEntry(f *testing.F) {
	f.Add(control.AppendEntry(nil, journal.Entry{Sector: 1, NrSectors: 1}, make([]byte, 512)))
	f.Add(control.AppendEntry(nil, journal.Entry{Flags: journal.FlagMark, Label: "m"}, nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		e, d, err := control.ParseEntry(p, 0, 512)
		if err != nil {
			return
		}
		q := control.AppendEntry(nil, e, d)
		if !bytes.Equal(p, q) {
			t.Fatalf("re-encoding differs")
		}
	})
}
