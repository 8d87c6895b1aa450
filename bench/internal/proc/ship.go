package proc

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// ShipSummary is the part of `logship ship --json` the bench reads.
type ShipSummary struct {
	State        string  `json:"state"`
	Entries      int64   `json:"entries"`
	Windows      int64   `json:"windows"`
	Bytes        int64   `json:"bytes"`
	WireBytes    int64   `json:"wire_bytes"`
	Seconds      float64 `json:"seconds"`
	Reconnects   int     `json:"reconnects"`
	DurableEntry int64   `json:"durable_entry"`
}

// ParseShipSummary reads the last line of what `logship ship --json`
// printed.
func ParseShipSummary(out []byte) (ShipSummary, error) {
	var s ShipSummary
	line := out
	if i := lastLine(out); i >= 0 {
		line = out[i:]
	}
	if err := json.Unmarshal(line, &s); err != nil {
		return s, fmt.Errorf("reading the summary of logship ship %q: %w", out, err)
	}
	return s, nil
}

// lastLine is the offset of the last non-empty line of b, or -1.
func lastLine(b []byte) int {
	for len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i + 1
		}
	}
	if len(b) == 0 {
		return -1
	}
	return 0
}

// ShipArgs are the flags of a `logship ship` of the journal to addr.
func ShipArgs(journal, addr, task string, streams int, size int64, extra []string) []string {
	args := []string{"ship", journal, "--to", addr, "--task", task, "--insecure",
		"--streams", strconv.Itoa(streams), "--json", "--progress", "never"}
	if size > 0 {
		args = append(args, "--size", strconv.FormatInt(size, 10))
	}
	return append(args, extra...)
}
