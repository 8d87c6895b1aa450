// Command testprogress turns the event stream of `go test -json` into
// progress a person can follow while a long tier runs: a line as each
// package finishes (ok, FAIL or no tests, with its time), the output of
// every failed test as soon as it fails, and, when nothing has finished for
// a while, which packages are still running. It exits 1 if any test or
// package failed, so `go test -json ./... | go run ./scripts/testprogress`
// keeps the exit status of the tests (with pipefail for the build errors).
//
// Usage:
//
//	go test -json ./... | go run ./scripts/testprogress [-quiet 60s]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// event is one line of `go test -json` (cmd/test2json's TestEvent).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// state is what has been seen so far; methods are called with mu held.
type state struct {
	mu                      sync.Mutex
	out                     io.Writer
	start                   time.Time
	last                    time.Time
	running                 map[string]time.Time        // packages started and not finished
	output                  map[string]*strings.Builder // package/test → its output, until it ends
	failedTests, failedPkgs int
	done                    int
}

func key(e event) string { return e.Package + "\x00" + e.Test }

func (s *state) handle(e event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Action == "build-output" { // compiler errors, keyed by ImportPath
		io.WriteString(s.out, e.Output)
		return
	}
	if e.Package == "" {
		return
	}
	switch e.Action {
	case "start":
		s.running[e.Package] = time.Now()
	case "output":
		b := s.output[key(e)]
		if b == nil {
			b = new(strings.Builder)
			s.output[key(e)] = b
		}
		b.WriteString(e.Output)
	case "pass", "skip":
		delete(s.output, key(e))
		if e.Test == "" {
			s.finish(e, map[string]string{"pass": "ok  ", "skip": "--  "}[e.Action])
		}
	case "fail":
		if e.Test != "" {
			s.failedTests++
			fmt.Fprintf(s.out, "--- FAIL %s %s (%.1fs)\n", e.Package, e.Test, e.Elapsed)
		}
		if b := s.output[key(e)]; b != nil {
			io.WriteString(s.out, indent(b.String()))
			delete(s.output, key(e))
		}
		if e.Test == "" {
			s.failedPkgs++
			s.finish(e, "FAIL")
		}
	}
}

// finish prints the line of a package that ended.
func (s *state) finish(e event, word string) {
	delete(s.running, e.Package)
	s.done++
	s.last = time.Now()
	fmt.Fprintf(s.out, "%s %-50s %7.1fs  [%d done, %d running, %v]\n", word, e.Package, e.Elapsed,
		s.done, len(s.running), time.Since(s.start).Round(time.Second))
}

// idle prints the packages still running when nothing finished for quiet.
func (s *state) idle(quiet time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.last) < quiet || len(s.running) == 0 {
		return
	}
	s.last = time.Now()
	var names []string
	for p, t := range s.running {
		names = append(names, fmt.Sprintf("%s (%v)", p, time.Since(t).Round(time.Second)))
	}
	slices.Sort(names)
	fmt.Fprintf(s.out, "...  still running: %s\n", strings.Join(names, ", "))
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

func main() {
	quiet := flag.Duration("quiet", time.Minute, "after this long without a package finishing, list the ones still running")
	flag.Parse()
	now := time.Now()
	s := &state{out: os.Stdout, start: now, last: now, running: map[string]time.Time{}, output: map[string]*strings.Builder{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(*quiet / 4)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				s.idle(*quiet)
			}
		}
	})
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Println(sc.Text()) // build errors and other plain lines
			continue
		}
		s.handle(e)
	}
	close(stop)
	wg.Wait()
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testprogress:", err)
		os.Exit(2)
	}
	fmt.Printf("%d packages in %v: %d failed, %d tests failed\n", s.done, time.Since(s.start).Round(time.Second), s.failedPkgs, s.failedTests)
	if s.failedPkgs+s.failedTests > 0 {
		os.Exit(1)
	}
}
