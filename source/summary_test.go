package source_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/logship/logship/control"
	"github.com/logship/logship/source"
)

// TestSummary: the --json summary of ship, field by field, and its rate.
func TestSummary(t *testing.T) {
	t.Parallel()
	st := source.Stats{Journal: "xxh64:1", Task: "t", ImageSize: 1 << 20, Streams: 3, Entries: 10, Skipped: 2,
		Windows: 4, Frames: 11, Bytes: 4096, WireBytes: 5000, Reconnects: 1,
		Durable: control.Position{NextEntry: 9, NextWindow: 4}, Elapsed: 2 * time.Second}
	b, err := json.Marshal(st.Summary("done"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"state":"done","task":"t","journal":"xxh64:1","image_size":1048576,"streams":3,"entries":10,"skipped":2,` +
		`"windows":4,"frames":11,"bytes":4096,"wire_bytes":5000,"seconds":2,"bytes_per_second":2048,"reconnects":1,` +
		`"durable_entry":9,"durable_window":4}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if s := (source.Stats{}).Summary("failed"); s.BytesPerSec != 0 || s.State != "failed" {
		t.Fatalf("no time elapsed: %+v", s)
	}
}
