package crashtest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// The JUnit XML that CI systems display (GitLab, Jenkins, Buildkite's test
// analytics, GitHub Actions through a reporter action): one testsuite, one
// testcase per state.

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the states of a report as JUnit XML: a test suite
// named suite (the journal, say), a test case per state named by its
// point, entry and kind, failing with the error and the check's output.
// A state Dedupe did not check says whose verdict it took.
func WriteJUnit(w io.Writer, suite string, recs []Record, totalMS float64) error {
	s := junitSuite{Name: suite, Tests: len(recs), Time: seconds(totalMS)}
	for _, r := range recs {
		kind := r.Kind
		if r.Mark != "" {
			kind = fmt.Sprintf("MARK %q", r.Mark)
		}
		name := fmt.Sprintf("point %s, entry %d (%s)", r.Label(), r.Entry, kind)
		if r.Explore > 0 {
			name = fmt.Sprintf("point %s, entry %d, explored: %d of %d writes of entries %d-%d", r.Label(), r.Entry, len(r.Keep), r.Writes, r.First, r.Last)
		}
		tc := junitCase{Name: name, Classname: "crashtest." + r.Type, Time: seconds(r.PrepareMS + r.CheckMS)}
		if r.SameAs != 0 {
			tc.SystemOut = fmt.Sprintf("not checked: the same state as point %d, whose verdict it takes\n", r.SameAs)
		}
		if r.Failed() {
			s.Failures++
			tc.Failure = &junitFailure{Message: r.Error, Type: "crash state failed", Text: strings.ToValidUTF8(r.Output, "\uFFFD")}
		}
		s.Cases = append(s.Cases, tc)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	e := xml.NewEncoder(w)
	e.Indent("", "  ")
	if err := e.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(ms float64) string { return fmt.Sprintf("%.3f", ms/1000) }
