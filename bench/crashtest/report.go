package crashtest

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// Record is one line of `logship crashtest --json`: a checked state.
type Record struct {
	Type    string  `json:"type"` // "point" or "explored"
	Point   int     `json:"point"`
	Explore int     `json:"explore,omitempty"`
	Entry   int64   `json:"entry"`
	Kind    string  `json:"kind"`
	Mark    string  `json:"mark,omitempty"`
	First   int64   `json:"window_first,omitempty"`
	Last    int64   `json:"window_last,omitempty"`
	Writes  int     `json:"window_writes,omitempty"`
	Keep    []int64 `json:"keep,omitempty"`
	Result  string  `json:"result"` // "ok" or "FAIL"
	// SameAs: the state is the one of point SameAs, whose verdict it took
	// without a check of its own (Options.Dedupe).
	SameAs    int     `json:"same_as,omitempty"`
	Error     string  `json:"error,omitempty"`
	Files     int     `json:"manifest_files,omitempty"`
	PrepareMS float64 `json:"prepare_ms"`
	CheckMS   float64 `json:"check_ms"`
	Output    string  `json:"output,omitempty"`
}

// Label is the state's name in reports: POINT, or POINT.K for the K-th
// explored state of point POINT.
func (r Record) Label() string {
	if r.Explore > 0 {
		return strconv.Itoa(r.Point) + "." + strconv.Itoa(r.Explore)
	}
	return strconv.Itoa(r.Point)
}

// Failed reports whether the state failed.
func (r Record) Failed() bool { return r.Result == "FAIL" }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// NewRecord is the Record of a result; the check's output is kept for a
// failing state, or always with withOutput.
func NewRecord(r Result, withOutput bool) Record {
	j := Record{Type: "point", Point: r.Seq, Entry: r.Entry.Index, Kind: r.Entry.Flags.String(),
		Result: "ok", SameAs: r.SameAs, Files: r.Files, PrepareMS: ms(r.Prepare), CheckMS: ms(r.Check)}
	if r.Entry.IsMark() {
		j.Mark = r.Entry.Label
	}
	if r.Explore > 0 {
		j.Type, j.Explore, j.First, j.Last, j.Writes, j.Keep = "explored", r.Explore, r.First, r.Last, r.Writes, r.Keep
	}
	if r.Err != nil {
		j.Result, j.Error, j.Output = "FAIL", r.Err.Error(), r.Output
	} else if withOutput {
		j.Output = r.Output
	}
	return j
}

// SummaryRecord is the last line of `logship crashtest --json`.
type SummaryRecord struct {
	Type      string  `json:"type"` // "summary"
	Journal   string  `json:"journal"`
	Entries   int64   `json:"entries"`
	Points    int     `json:"points"`
	Explored  int     `json:"explored"`
	Deduped   int     `json:"same_as_before"`
	Manifests int     `json:"manifests"`
	Failed    int     `json:"failed"`
	TotalMS   float64 `json:"total_ms"`
	PrepareMS float64 `json:"prepare_ms"`
	CheckMS   float64 `json:"check_ms"`
	Copied    int64   `json:"copied_bytes"`
	Compared  int64   `json:"compared_bytes"`
	ImageSize int64   `json:"image_size"`
	Strategy  string  `json:"strategy"`
	Jobs      int     `json:"jobs"`
	// Shard is "K/N", or empty for the whole run.
	Shard string `json:"shard,omitempty"`
	// Run says what was run (points, from-mark, explore, seed, dedupe):
	// shards merge only when it is the same.
	Run string `json:"run"`
	// RunPoints and RunStates count the whole run's points and states,
	// every shard's; RunStates is 0 unless Complete.
	RunPoints int  `json:"run_points"`
	RunStates int  `json:"run_states"`
	Complete  bool `json:"complete"`
}

// NewSummaryRecord is the SummaryRecord of a Summary.
func NewSummaryRecord(s Summary, journal, strategy, run string, shard Shard) SummaryRecord {
	return SummaryRecord{Type: "summary", Journal: journal, Entries: s.Entries, Points: s.Points,
		Explored: s.Explored, Deduped: s.Deduped, Manifests: s.Manifests, Failed: s.Failed,
		TotalMS: ms(s.Total), PrepareMS: ms(s.Prepare), CheckMS: ms(s.Check), Copied: s.Copied,
		Compared: s.Compared, ImageSize: s.Size, Strategy: strategy, Jobs: s.Jobs, Shard: shard.String(),
		Run: run, RunPoints: s.RunPoints, RunStates: s.RunStates, Complete: s.Complete}
}

// Report is a whole --json report: the states, then the summary.
type Report struct {
	Records []Record
	Summary SummaryRecord
}

// ErrReport: a --json report is malformed.
var ErrReport = errors.New("bench: bad crashtest report")

// ReadReport reads a --json report; name names it in errors.
func ReadReport(r io.Reader, name string) (Report, error) {
	var rep Report
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	seen := false
	for n := 1; sc.Scan(); n++ {
		var t struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return rep, fmt.Errorf("%w: %s line %d: %v", ErrReport, name, n, err)
		}
		var err error
		switch t.Type {
		case "point", "explored":
			var rec Record
			err = json.Unmarshal(sc.Bytes(), &rec)
			rep.Records = append(rep.Records, rec)
		case "summary":
			err = json.Unmarshal(sc.Bytes(), &rep.Summary)
			seen = true
		default:
			err = fmt.Errorf("type %q", t.Type)
		}
		if err != nil {
			return rep, fmt.Errorf("%w: %s line %d: %v", ErrReport, name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("%s: %w", name, err)
	}
	if !seen {
		return rep, fmt.Errorf("%w: %s has no summary line (did the run end?)", ErrReport, name)
	}
	return rep, nil
}

// ErrCoverage: shard reports do not cover a run's states exactly once.
var ErrCoverage = errors.New("bench: shards do not cover the run exactly once")

// Merge combines the reports of a run's shards into the report of the
// whole run: the states in order, the counts added up. It returns the
// merged report and, when the shards do not cover every state of the run
// exactly once (a shard missing, twice, stopped early, or from another
// run), an error wrapping ErrCoverage that names the first problems.
func Merge(reps []Report, names []string) (Report, error) {
	var out Report
	if len(reps) == 0 {
		return out, fmt.Errorf("%w: no reports", ErrCoverage)
	}
	var problems []string
	first := reps[0].Summary
	s := &out.Summary
	*s = SummaryRecord{Type: "summary", Journal: first.Journal, Entries: first.Entries, ImageSize: first.ImageSize,
		Strategy: first.Strategy, Run: first.Run, RunPoints: first.RunPoints, RunStates: first.RunStates, Complete: true}
	n := 0
	if sh, err := ParseShard(first.Shard); err == nil {
		n = sh.N
	}
	shards := map[int]string{}
	for i, r := range reps {
		name := names[i]
		m := r.Summary
		switch {
		case m.Run != first.Run || m.Entries != first.Entries || m.RunPoints != first.RunPoints:
			problems = append(problems, fmt.Sprintf("%s is another run (%s, %d entries) than %s (%s, %d entries)",
				name, m.Run, m.Entries, names[0], first.Run, first.Entries))
		case !m.Complete:
			problems = append(problems, fmt.Sprintf("%s did not go to the end of the journal (it stopped at a failure without --keep-going, or failed)", name))
		case m.RunStates != first.RunStates && first.Complete:
			problems = append(problems, fmt.Sprintf("%s counts %d states in the run, %s %d", name, m.RunStates, names[0], first.RunStates))
		}
		if m.Shard == "" {
			if len(reps) > 1 {
				problems = append(problems, fmt.Sprintf("%s is a whole run, not a shard", name))
			}
		} else if sh, err := ParseShard(m.Shard); err != nil || sh.N != n {
			problems = append(problems, fmt.Sprintf("%s is shard %q, not one of %d", name, m.Shard, n))
		} else if prev, dup := shards[sh.K]; dup {
			problems = append(problems, fmt.Sprintf("%s and %s are both shard %s", prev, name, m.Shard))
		} else {
			shards[sh.K] = name
		}
		s.Complete = s.Complete && m.Complete
		s.Points += m.Points
		s.Explored += m.Explored
		s.Deduped += m.Deduped
		s.Manifests += m.Manifests
		s.Failed += m.Failed
		s.TotalMS = max(s.TotalMS, m.TotalMS)
		s.PrepareMS += m.PrepareMS
		s.CheckMS += m.CheckMS
		s.Copied += m.Copied
		s.Compared += m.Compared
		s.Jobs += m.Jobs
		out.Records = append(out.Records, r.Records...)
	}
	for k := 1; k <= n; k++ {
		if _, ok := shards[k]; !ok {
			problems = append(problems, fmt.Sprintf("shard %d/%d is missing", k, n))
		}
	}
	slices.SortStableFunc(out.Records, func(a, b Record) int {
		return cmp.Or(cmp.Compare(a.Point, b.Point), cmp.Compare(a.Explore, b.Explore))
	})
	for i := 1; i < len(out.Records); i++ {
		a, b := out.Records[i-1], out.Records[i]
		if a.Point == b.Point && a.Explore == b.Explore {
			problems = append(problems, fmt.Sprintf("state %s is in more than one report", b.Label()))
		}
	}
	if len(out.Records) != first.RunStates {
		problems = append(problems, fmt.Sprintf("the reports hold %d states, the run has %d", len(out.Records), first.RunStates))
	}
	if len(problems) > 0 {
		err := fmt.Errorf("%w: %s", ErrCoverage, problems[0])
		if len(problems) > 1 {
			err = fmt.Errorf("%w (and %d more problems)", err, len(problems)-1)
		}
		return out, err
	}
	return out, nil
}
