package replica

import (
	"testing"

	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
)

// TestBadInput ships good windows, then a bad one: the session is refused
// with the right code, the image is the state after the last good window,
// and the next session resumes there.
func TestBadInput(t *testing.T) {
	t.Parallel()
	payload := func(sector, n uint64, flags journal.Flags) []byte {
		e := journal.Entry{Sector: sector, NrSectors: n, Flags: flags, SectorSize: 512}
		return control.AppendEntry(nil, e, make([]byte, e.PayloadLen()))
	}
	// Each case builds the bad window's frames given the expected position.
	for _, tc := range []struct {
		name   string
		seq    func(p control.Position) uint64
		frames func(p control.Position) []parallel.Frame
		code   control.Code
	}{
		{"malformed frame", nil, func(p control.Position) []parallel.Frame {
			return []parallel.Frame{{Entry: uint64(p.NextEntry), Payload: []byte("not an entry")}}
		}, control.CodeBadEntry},
		{"sectors beyond the image", nil, func(p control.Position) []parallel.Frame {
			return []parallel.Frame{{Entry: uint64(p.NextEntry), Payload: payload(0, 1, 0)}, {Entry: uint64(p.NextEntry + 1), Payload: payload(8191, 2, 0)}}
		}, control.CodeBadEntry},
		{"barrier inside the window", nil, func(p control.Position) []parallel.Frame {
			return []parallel.Frame{{Entry: uint64(p.NextEntry), Payload: payload(0, 0, journal.FlagFlush)}, {Entry: uint64(p.NextEntry + 1), Payload: payload(0, 1, 0)}}
		}, control.CodeBadEntry},
		{"gap", nil, func(p control.Position) []parallel.Frame {
			return []parallel.Frame{{Entry: uint64(p.NextEntry), Payload: payload(0, 1, 0)}, {Entry: uint64(p.NextEntry + 2), Payload: payload(1, 1, 0)}}
		}, control.CodeSequence},
		{"duplicate entry", nil, func(p control.Position) []parallel.Frame {
			return []parallel.Frame{{Entry: uint64(p.NextEntry), Payload: payload(0, 1, 0)}, {Entry: uint64(p.NextEntry), Payload: payload(0, 1, 0)}}
		}, control.CodeSequence},
		{"resent entries", nil, func(p control.Position) []parallel.Frame {
			return []parallel.Frame{{Entry: uint64(p.NextEntry - 1), Payload: payload(0, 1, 0)}}
		}, control.CodeSequence},
		{"missing first entry", nil, func(p control.Position) []parallel.Frame {
			return []parallel.Frame{{Entry: uint64(p.NextEntry + 1), Payload: payload(0, 1, 0)}}
		}, control.CodeSequence},
	} {
		for _, m := range modes {
			t.Run(tc.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				j := newJournal(t, fixtures.DefaultWorkload(21, 512))
				ts := startServer(t, m.cfg)
				ctx := t.Context()
				s := ts.dial(t, "t", 3)
				sent := openAndShip(ctx, t, s, j, shipOpts{stopAt: 150})
				good := sent[len(sent)-1]
				pos := control.Position{Journal: j.id, NextEntry: good.last + 1, NextWindow: good.seq + 1}
				seq := pos.NextWindow
				for _, f := range tc.frames(pos) {
					f.Window = seq
					if err := s.SendFrame(ctx, f); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.EndWindow(ctx, seq); err != nil {
					t.Fatal(err)
				}
				err := s.WaitAck(ctx, seq)
				if codeOfErr(err) != tc.code {
					t.Fatalf("bad window: %v, want %v", err, tc.code)
				}
				t.Log(err)
				ts.waitIdle(t)
				sameBytes(t, "image", readImage(t, ts.cfg.Dir, "t"), j.replayTo(t, pos.NextEntry))
				// The next session resumes after the last good window.
				s2 := ts.dial(t, "t", 1)
				task, err := openCall(ctx, s2, j.open(0))
				if err != nil {
					t.Fatal(err)
				}
				if task.Durable != pos {
					t.Fatalf("after the refusal: durable %+v, want %+v", task.Durable, pos)
				}
				var st control.Status
				if err := call(ctx, s2, control.Request{Op: control.OpStatus}, &st); err != nil {
					t.Fatal(err)
				}
				if len(st.Tasks) != 1 || st.Tasks[0].Durable != pos {
					t.Fatalf("status %+v", st)
				}
			})
		}
	}
}

// TestFirstWindowNumber: the first window must carry the number open
// gave.
func TestFirstWindowNumber(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	j := newJournal(t, fixtures.DefaultWorkload(2, 512))
	ctx := t.Context()
	s := ts.dial(t, "t", 1)
	task, err := openCall(ctx, s, j.open(j.size))
	if err != nil {
		t.Fatal(err)
	}
	from := task.Durable
	from.NextWindow = 5
	shipJournal(ctx, s, j, from, shipOpts{stopAt: 10})
	if err := s.WaitAck(ctx, 5); codeOfErr(err) != control.CodeSequence {
		t.Fatalf("window 5 first: %v, want code SEQUENCE", err)
	}
}
