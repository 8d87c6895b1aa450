package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/logship/logship/bench/crashtest"
)

// runCrashtestMerge is `logship crashtest merge`.
func runCrashtestMerge(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "crashtest merge", "[--json] [--junit FILE] SHARD.json...",
		`Combines the --json reports of the shards of one crashtest run (--shard
K/N, or CI_NODE_INDEX/CI_NODE_TOTAL) into the run's report, in point order:
the table, or with --json the report crashtest --json would have printed
(times added up, total_ms the slowest shard's). Exit status 1 if any state
failed, 3 if the reports do not cover every state of the run exactly once
(a shard missing or given twice, a shard that stopped early: run shards
with --keep-going, or reports of different runs).`)
	var (
		asJSON = fs.Bool("json", false, "print the merged report as JSON lines")
		junit  = fs.String("junit", "", "write a JUnit XML report, a test case per state, to `FILE`")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want the shards' --json reports")
	}
	var reps []crashtest.Report
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		r, err := crashtest.ReadReport(bufio.NewReader(f), name)
		f.Close()
		if err != nil {
			return err
		}
		reps = append(reps, r)
	}
	m, cerr := crashtest.Merge(reps, fs.Args())
	if cerr != nil && !errors.Is(cerr, crashtest.ErrCoverage) {
		return cerr
	}
	out := bufio.NewWriter(e.stdout)
	if *asJSON {
		for _, r := range m.Records {
			writeJSON(out, r)
		}
		writeJSON(out, m.Summary)
	} else {
		fmt.Fprintf(out, "%7s %9s  %-24s %-6s  %s\n", "POINT", "ENTRY", "KIND", "RESULT", "NOTE")
		for _, r := range m.Records {
			kind := r.Kind
			if r.Mark != "" {
				kind = fmt.Sprintf("MARK %q", r.Mark)
			}
			if r.Explore > 0 {
				kind = fmt.Sprintf("+%d/%d of %d-%d", len(r.Keep), r.Writes, r.First, r.Last)
			}
			note := r.Error
			if r.SameAs != 0 {
				note = fmt.Sprintf("same as point %d %s", r.SameAs, note)
			}
			fmt.Fprintf(out, "%7s %9d  %-24s %-6s  %s\n", r.Label(), r.Entry, kind, r.Result, note)
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if *junit != "" {
		if err := writeJUnitFile(*junit, filepath.Base(m.Summary.Journal), m.Records, m.Summary.TotalMS); err != nil {
			return err
		}
	}
	s := m.Summary
	fmt.Fprintf(e.stderr, "crashtest merge: %d reports, %d points (%d the same as the point before), %d explored states, %d manifests; %d failed\n",
		len(reps), s.Points, s.Deduped, s.Explored, s.Manifests, s.Failed)
	if s.Failed > 0 {
		for _, r := range m.Records {
			if r.Failed() {
				msg := fmt.Sprintf("%d failing states, the first at point %s, entry %d: %s", s.Failed, r.Label(), r.Entry, r.Error)
				if cerr != nil {
					msg += fmt.Sprintf(" (and %v)", cerr)
				}
				return checkFailed{msg}
			}
		}
	}
	return cerr
}
