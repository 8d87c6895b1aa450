package control_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/logship/logship/control"
	"github.com/logship/logship/parallel"
)

func TestRetryable(t *testing.T) {
	for code, want := range map[control.Code]bool{
		control.CodeTaskBusy: true, control.CodeNoSpace: true, control.CodeIO: true, control.CodeShutdown: true,
		control.CodeBadRequest: false, control.CodeBadTask: false, control.CodeNoTask: false, control.CodeMismatch: false,
		control.CodeNotOpen: false, control.CodeBadEntry: false, control.CodeSequence: false, control.CodeNoHistory: false,
		control.CodeReadOnly: false, control.CodeCorrupt: false, 0x100: false,
		control.Code(parallel.CodeBusy): false, // the transport's: retry.Classify sorts them
	} {
		if got := code.Retryable(); got != want {
			t.Errorf("%v.Retryable() = %v, want %v", code, got, want)
		}
	}
}

// TestCodeString: one String names the transport's codes and the
// application's by their protocol names; an undefined code is named by
// its number.
func TestCodeString(t *testing.T) {
	for _, tc := range []struct {
		code    control.Code
		name    string
		defined bool
	}{
		{control.Code(parallel.CodeClosed), "CLOSED", true},
		{control.Code(parallel.CodeAuth), "AUTH", true},
		{control.Code(parallel.CodeForbidden), "FORBIDDEN", true},
		{16, "code 0x10", false},
		{control.Code(parallel.CodeApplication), "code 0x100", false},
		{control.CodeBadRequest, "BAD_REQUEST", true},
		{control.CodeTaskBusy, "TASK_BUSY", true},
		{control.CodeNoTask, "NO_TASK", true},
		{control.CodeIO, "IO", true},
		{control.CodeReadOnly, "READ_ONLY", true},
		{control.CodeCorrupt, "CORRUPT", true},
		{0x10F, "code 0x10f", false},
		{0xFFFF, "code 0xffff", false},
	} {
		if got := tc.code.String(); got != tc.name {
			t.Errorf("Code(%#x).String() = %q, want %q", uint16(tc.code), got, tc.name)
		}
		if got := tc.code.Defined(); got != tc.defined {
			t.Errorf("Code(%#x).Defined() = %v, want %v", uint16(tc.code), got, tc.defined)
		}
	}
}

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code control.Code
		ok   bool
	}{
		{nil, 0, false},
		{errors.New("no code"), 0, false},
		{control.CodeNoTask.Remote("x"), control.CodeNoTask, true},
		{fmt.Errorf("open: %w", &control.TaskError{Task: "t", Err: control.CodeMismatch.Remote("")}), control.CodeMismatch, true},
		{&parallel.RemoteError{Code: parallel.CodeChecksum}, control.Code(parallel.CodeChecksum), true},
	} {
		code, ok := control.CodeOf(tc.err)
		if code != tc.code || ok != tc.ok {
			t.Errorf("CodeOf(%v) = %v, %v; want %v, %v", tc.err, code, ok, tc.code, tc.ok)
		}
	}
	// Remote keeps the wire value.
	if re := control.CodeShutdown.Remote("m"); re.Code != 0x10B || re.Msg != "m" {
		t.Errorf("CodeShutdown.Remote = %+v", re)
	}
}

// definedCodes returns every code the protocol defines, by its name.
func definedCodes(t *testing.T) map[control.Code]string {
	t.Helper()
	codes := make(map[control.Code]string)
	byName := make(map[string]control.Code)
	for i := range 1 << 16 {
		c := control.Code(i)
		if !c.Defined() {
			if s := c.String(); s != fmt.Sprintf("code %#x", i) {
				t.Errorf("undefined code %#x has the name %q", i, s)
			}
			continue
		}
		name := c.String()
		if name == "" || strings.ToUpper(name) != name || strings.ContainsAny(name, " -") {
			t.Errorf("code %#x: name %q is not an upper-case protocol name", i, name)
		}
		if d, ok := byName[name]; ok {
			t.Errorf("codes %#x and %#x have the same name %s", uint16(d), i, name)
		}
		byName[name] = c
		codes[c] = name
	}
	return codes
}

// TestCodesUnique: every defined code has a name of its own, and the
// codes are the frozen wire values.
func TestCodesUnique(t *testing.T) {
	codes := definedCodes(t)
	// 16 of the transport's (0-15), 14 of the application's (0x101-0x10E).
	if len(codes) != 30 {
		t.Errorf("%d codes defined, want 30", len(codes))
	}
	for i := range 16 {
		if _, ok := codes[control.Code(i)]; !ok {
			t.Errorf("transport code %d not defined", i)
		}
	}
	for c := control.CodeBadRequest; c <= control.CodeCorrupt; c++ {
		if _, ok := codes[c]; !ok {
			t.Errorf("application code %#x not defined", uint16(c))
		}
	}
}

// TestCodesDocumented: docs/protocol.md lists every code with the name
// String gives it (section 7.2, the application's, and section 8, the
// transport's), and no other.
func TestCodesDocumented(t *testing.T) {
	codes := definedCodes(t)
	f, err := os.Open("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	documented := make(map[control.Code]string)
	var inTable bool
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); {
		line++
		s := sc.Text()
		if strings.HasPrefix(s, "#") {
			inTable = strings.HasPrefix(s, "### 7.2 ") || strings.HasPrefix(s, "## 8. ")
			continue
		}
		if !inTable || !strings.HasPrefix(s, "| ") {
			continue
		}
		cells := strings.Split(s, "|")
		if len(cells) < 4 {
			continue
		}
		num, name := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		n, err := strconv.ParseUint(num, 0, 16)
		if err != nil {
			continue // the header row, the application range
		}
		c := control.Code(n)
		if d, ok := documented[c]; ok {
			t.Errorf("docs/protocol.md:%d: code %s listed again (as %s before)", line, num, d)
		}
		documented[c] = name
		if want, ok := codes[c]; !ok {
			t.Errorf("docs/protocol.md:%d: code %s (%s) is not defined", line, num, name)
		} else if name != want {
			t.Errorf("docs/protocol.md:%d: code %s is named %s, String says %s", line, num, name, want)
		}
		if c >= control.Code(parallel.CodeApplication) && !strings.HasPrefix(num, "0x") {
			t.Errorf("docs/protocol.md:%d: application code %s not in hex", line, num)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for c, name := range codes {
		if _, ok := documented[c]; !ok {
			t.Errorf("code %#x (%s) is not in docs/protocol.md sections 7.2 and 8", uint16(c), name)
		}
	}
}
