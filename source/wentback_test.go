package source

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/logship/logship/barrier"
	"github.com/logship/logship/control"
	"github.com/logship/logship/fixtures"
	"github.com/logship/logship/parallel"
)

// TestShipServerWentBack: a server that, after a reconnect, says a durable
// position behind what it acked to the ship (it lost acked windows) stops
// the ship with ErrWentBack, a permanent error naming both positions,
// instead of a resend over the gap.
func TestShipServerWentBack(t *testing.T) {
	t.Parallel()
	wl := fixtures.DefaultWorkload(9, 512)
	wl.Entries = 2000
	j, err := wl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, parallel.ServerConfig{Credit: 1 << 20})
	lost := false
	srv.mu.Lock()
	srv.onWindow = func(task string, seq uint64) error {
		if seq != 40 || lost {
			return nil
		}
		// The server loses what it made durable, then fails the session
		// (retryable: the ship reconnects).
		lost = true
		srv.mu.Lock()
		tk := srv.tasks[task]
		tk.pos = control.Position{Journal: tk.pos.Journal, NextEntry: 0, NextWindow: 0}
		srv.mu.Unlock()
		return errors.New("lost my staging log")
	}
	srv.mu.Unlock()
	cfg := config(t, writeJournal(t, j), srv.Addr(), 2, wl.DeviceSize)
	cfg.Limits = barrier.Limits{MaxEntries: 20}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := s.Run(ctx)
	var te *TaskError
	if !errors.Is(err, ErrWentBack) || !errors.As(err, &te) || !permanent(err) {
		t.Fatalf("Run: %v (stats %+v), want a permanent ErrWentBack", err, st)
	}
	// Acks are cumulative and come as the server sends them: some of the
	// 40 windows it acked reached the ship before the failure.
	if st.Durable.NextWindow == 0 || st.Durable.NextWindow > 40 || st.Sessions != 2 {
		t.Fatalf("stats %+v: want windows acked up to at most 40, and one reconnect", st)
	}
}
