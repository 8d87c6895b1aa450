package source

// Summary is the summary `logship ship --json` prints when it ends: one
// JSON object on the last line of its standard output. The bench
// (bench/netbench, bench/campaign) reads it back.
type Summary struct {
	State         string  `json:"state"` // done, stopped, failed
	Task          string  `json:"task"`
	Journal       string  `json:"journal"`
	ImageSize     int64   `json:"image_size"`
	Streams       int     `json:"streams"`
	Entries       int64   `json:"entries"`
	Skipped       int64   `json:"skipped,omitempty"`
	Windows       int64   `json:"windows"`
	Frames        int64   `json:"frames"`
	Bytes         int64   `json:"bytes"`
	WireBytes     int64   `json:"wire_bytes"`
	Seconds       float64 `json:"seconds"`
	BytesPerSec   float64 `json:"bytes_per_second"`
	Reconnects    int     `json:"reconnects"`
	DurableEntry  int64   `json:"durable_entry"`
	DurableWindow uint64  `json:"durable_window"`
}

// Summary is the summary of st, for a ship that ended in state.
func (st Stats) Summary(state string) Summary {
	secs := st.Elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(st.Bytes) / secs
	}
	return Summary{
		State: state, Task: st.Task, Journal: st.Journal, ImageSize: st.ImageSize, Streams: st.Streams,
		Entries: st.Entries, Skipped: st.Skipped, Windows: st.Windows, Frames: st.Frames, Bytes: st.Bytes,
		WireBytes: st.WireBytes, Seconds: secs, BytesPerSec: rate, Reconnects: st.Reconnects,
		DurableEntry: st.Durable.NextEntry, DurableWindow: st.Durable.NextWindow,
	}
}
