package journal_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/journal"
)

// TestTailer follows a journal file while a writer appends to it the way
// the kernel does: the superblock is rewritten only after FUA and MARK
// entries, and the log holds a stale, longer journal from an earlier run
// behind a zeroed first sector. The tailer must see exactly the new
// entries and payloads, then io.EOF after the end mark.
func TestTailer(t *testing.T) {
	t.Parallel()
	for _, ss := range []int{512, 4096} {
		path := filepath.Join(t.TempDir(), "log")
		// The earlier run: a longer journal, then the start zeroed.
		old := fixtures.DefaultWorkload(99, ss)
		old.Entries = 900
		oldJ, _ := old.Bytes()
		clear(oldJ[:ss])
		if err := os.WriteFile(path, oldJ, 0o644); err != nil {
			t.Fatal(err)
		}
		wl := fixtures.DefaultWorkload(uint64(ss), ss)
		wl.Entries = 300
		want, _ := wl.Bytes()
		wantR, _ := journal.NewReader(bytes.NewReader(want), int64(len(want)))
		var wantE []journal.Entry
		var wantP [][]byte
		for e, err := range wantR.All() {
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, e.PayloadLen())
			wantR.ReadPayload(e, p)
			wantE, wantP = append(wantE, e), append(wantP, p)
		}

		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			w, _ := journal.NewWriter(f, ss)
			for i, e := range wantE {
				if err := w.Append(e, wantP[i]); err != nil {
					done <- err
					return
				}
				if e.Flags&(journal.FlagFUA|journal.FlagMark) != 0 {
					if err := w.WriteSuper(); err != nil {
						done <- err
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
			w.Mark(journal.EndMark)
			done <- w.Close()
		}()

		tl := journal.NewTailer(f, journal.TailOptions{Poll: 2 * time.Millisecond, Settle: 5 * time.Millisecond})
		var got []journal.Entry
		for {
			e, err := tl.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("ss=%d after %d entries: %v", ss, len(got), err)
			}
			if e.IsMark() && e.Label == journal.EndMark {
				continue
			}
			p := make([]byte, e.PayloadLen())
			if err := tl.ReadPayload(e, p); err != nil {
				t.Fatal(err)
			}
			if int(e.Index) >= len(wantP) || !bytes.Equal(p, wantP[e.Index]) {
				t.Fatalf("ss=%d: payload of entry %d differs", ss, e.Index)
			}
			got = append(got, e)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantE, got); diff != "" {
			t.Fatalf("ss=%d: tailed entries differ (-want +got):\n%s", ss, diff)
		}
	}
}

// TestTailerWaitsForSuperblock: a zeroed log is waited on until ctx ends.
func TestTailerWaitsForSuperblock(t *testing.T) {
	t.Parallel()
	z := make([]byte, 8192)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := journal.NewTailer(bytes.NewReader(z), journal.TailOptions{Poll: time.Millisecond}).Next(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

// TestTailerBusyLog: a superblock rewritten more often than the settle time
// (marks ticking fast) must not starve the tailer: entries come out while
// the writer is still going.
func TestTailerBusyLog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		w, _ := journal.NewWriter(f, 512)
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- w.Close()
				return
			default:
			}
			w.Mark("tick")
			if err := w.WriteSuper(); err != nil {
				writerDone <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tl := journal.NewTailer(f, journal.TailOptions{Poll: 5 * time.Millisecond, Settle: 20 * time.Millisecond})
	_, err = tl.Next(ctx)
	close(stop)
	if werr := <-writerDone; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatalf("no entry while the superblock kept moving: %v", err)
	}
}
