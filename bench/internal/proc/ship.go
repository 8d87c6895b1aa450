package proc

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/logship/logship/source"
)

// ParseShipSummary reads the last line of what `logship ship --json`
// printed.
func ParseShipSummary(out []byte) (source.Summary, error) {
	var s source.Summary
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
