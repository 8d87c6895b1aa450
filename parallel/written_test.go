package parallel

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestWrittenAndSum: ClientConfig.Written sees every DATA payload once,
// after it was written, through the buffered and the writev paths and
// with compression; a Sum given with the frame is sent as the checksum
// unless the payload went compressed.
func TestWrittenAndSum(t *testing.T) {
	for _, tc := range []struct {
		streams  int
		compress bool
	}{{1, false}, {4, false}, {2, true}} {
		t.Run(fmt.Sprintf("streams=%d/compress=%v", tc.streams, tc.compress), func(t *testing.T) {
			ctx := testCtx(t)
			var mu sync.Mutex
			seen := map[*byte]int{}
			written := func(p []byte) {
				mu.Lock()
				seen[&p[:1][0]]++
				mu.Unlock()
			}
			c, s := pair(t, ServerConfig{Credit: 32 << 20}, ClientConfig{Streams: tc.streams, Compress: tc.compress, Written: written})
			sizes := []int{1, 100, minDirect - 1, minDirect, 1 << 20, 3<<20 + 7, MaxPayload}
			const windows = 3
			var plan [windows][][]byte
			for w := range plan {
				for i, n := range sizes {
					plan[w] = append(plan[w], fill(uint64(w), uint32(i), n))
				}
				if tc.compress {
					plan[w] = append(plan[w], bytes.Repeat([]byte("compressible "), 20000))
				}
			}
			errc := make(chan error, 1)
			go func() {
				errc <- func() error {
					for w := range plan {
						win, err := s.Next(ctx)
						if err != nil {
							return err
						}
						if len(win.Frames) != len(plan[w]) {
							return fmt.Errorf("window %d: %d frames, want %d", win.Seq, len(win.Frames), len(plan[w]))
						}
						for i, f := range win.Frames {
							if !bytes.Equal(f.Payload, plan[w][i]) {
								return fmt.Errorf("window %d frame %d: payload of %d bytes differs", win.Seq, i, len(f.Payload))
							}
						}
						win.Release()
						if err := s.Ack(win.Seq); err != nil {
							return err
						}
					}
					return nil
				}()
			}()
			for w, frames := range plan {
				for i, p := range frames {
					f := Frame{Window: uint64(w), Entry: uint64(i), Payload: p}
					switch {
					case tc.compress && i == len(frames)-1:
						// Compressed: a wrong sum given must not be used.
						f.Sum, f.Summed = xxhash.Sum64(p)+1, true
					case i%2 == 1:
						f.Sum, f.Summed = xxhash.Sum64(p), true
					}
					if err := c.SendFrame(ctx, f); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.EndWindow(ctx, uint64(w)); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.WaitAck(ctx, windows-1); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			c.Close() // waits for the writers: every Written call is made
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, frames := range plan {
				for i, p := range frames {
					n++
					if k := seen[&p[0]]; k != 1 {
						t.Errorf("payload %d of %d bytes: Written %d times", i, len(p), k)
					}
				}
			}
			if len(seen) != n {
				t.Errorf("Written saw %d payloads, %d were sent", len(seen), n)
			}
		})
	}
}

// TestWrongSum: a Sum that is not the payload's fails the frame at the
// receiver.
func TestWrongSum(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t, ServerConfig{}, ClientConfig{Streams: 2})
	p := fill(1, 0, 200<<10)
	if err := c.SendFrame(ctx, Frame{Window: 1, Entry: 1, Payload: p, Sum: xxhash.Sum64(p) + 1, Summed: true}); err != nil {
		t.Fatal(err)
	}
	// The server may find the bad sum and end the session before the
	// window's end is queued: then EndWindow reports the server's verdict.
	if err := c.EndWindow(ctx, 1); err != nil && !errors.Is(err, ErrChecksum) {
		t.Fatal(err)
	}
	_, err := s.Next(ctx)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Next: %v, want ErrChecksum", err)
	}
}
