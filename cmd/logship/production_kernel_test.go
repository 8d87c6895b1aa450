package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logship/logship/fixtures/vm"
)

// guideBlock is a code block of docs/production.md.
type guideBlock struct {
	tag  string // "test" or "test-env"
	line int    // of the opening fence
	text string
}

// guideBlocks extracts the blocks fenced ```sh test and ```sh test-env.
func guideBlocks(t *testing.T, path string) []guideBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []guideBlock
	var cur *guideBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && (l == "```sh test" || l == "```sh test-env"):
			cur = &guideBlock{tag: strings.TrimPrefix(l, "```sh "), line: n}
		case cur != nil && l == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s: the block at line %d is not closed", path, cur.line)
	}
	return blocks
}

// TestProductionGuide runs the commands of docs/production.md, as written,
// in the kernel VM: the blocks fenced ```sh test, in order, with the names
// of the ```sh test-env block set to the VM's disks (DATA /dev/vda, LOG_A
// /dev/vdb, LOG_B /dev/vdc, SPARE /dev/vdd) and the server on loopback. The
// test adds only a file workload while the ship follows; the guide's last
// verify must say equal.
func TestProductionGuide(t *testing.T) {
	h := inGuestHarness(t)
	blocks := guideBlocks(t, filepath.Join("..", "..", "docs", "production.md"))
	var script strings.Builder
	script.WriteString(guestLib)
	// The harness's init made its own target over vda and vdb: the guide
	// makes its own.
	script.WriteString("dmsetup --noudevsync remove $DM_NAME\n")
	env, tests := 0, 0
	shipStarted, frozen, waited := false, false, false
	for _, b := range blocks {
		fmt.Fprintf(&script, "echo 'GUIDE block at line %d' >/dev/console\n", b.line)
		switch b.tag {
		case "test-env":
			env++
			// The same names, the VM's values.
			script.WriteString(`DATA=/dev/vda
LOG_A=/dev/vdb
LOG_B=/dev/vdc
SPARE=/dev/vdd
NAME=vol0
MNT=/srv/data
TASK=vol0
LISTEN=127.0.0.1:7300
BACKUP=127.0.0.1:7300
DIR=/srv/backup
PSK=/etc/logship/psk
`)
			for _, name := range []string{"DATA", "LOG_A", "LOG_B", "SPARE", "NAME", "MNT", "TASK", "LISTEN", "BACKUP", "DIR", "PSK"} {
				if !strings.Contains(b.text, name+"=") {
					t.Fatalf("docs/production.md line %d: the names block does not set %s", b.line, name)
				}
			}
			continue
		case "test":
			tests++
		}
		if strings.Contains(b.text, "--freeze $MNT") && shipStarted {
			frozen = true // and the workload still running: it waits
		}
		if strings.Contains(b.text, "umount $MNT") && shipStarted && !waited {
			script.WriteString("wait $WL\n")
			waited = true
		}
		script.WriteString(b.text)
		if strings.Contains(b.text, "logship ship --follow") && !shipStarted {
			// The volume in use while the ship follows.
			script.WriteString("workload 10 &\nWL=$!\n")
			shipStarted = true
		} else if strings.Contains(b.text, "logship ship --follow") {
			script.WriteString("workload 4\n")
		}
	}
	if env != 1 || tests < 8 || !shipStarted || !frozen {
		t.Fatalf("docs/production.md: %d names blocks, %d test blocks, ship started %v, verify with a freeze %v", env, tests, shipStarted, frozen)
	}
	script.WriteString("echo GUIDE-DONE\n")

	dir := t.TempDir()
	start := time.Now()
	res, err := h.Capture(t.Context(), vm.Run{
		Scenario:   "shell-cmd",
		Dir:        dir,
		DataSize:   64 << 20,
		LogSize:    64 << 20,
		ExtraDisks: []int64{64 << 20, 64 << 20},
		Env:        map[string]string{"LOGSHIP_CMD": script.String(), "LOGSHIP_SEED": fmt.Sprint(time.Now().UnixNano() % 100000)},
	})
	if err != nil {
		t.Fatalf("%v\n--- script ---\n%s", err, script.String())
	}
	out := res.Output
	if len(out) < 2 || out[len(out)-1] != "GUIDE-DONE" || out[len(out)-2] != "equal" {
		t.Fatalf("the guide's last verify did not say equal:\n%s", strings.Join(out, "\n"))
	}
	equal := 0
	for _, l := range out {
		if l == "equal" {
			equal++
		}
	}
	if equal != 3 {
		t.Fatalf("%d verifies said equal, want 3 (4.9, 4.10, 4.11):\n%s", equal, strings.Join(out, "\n"))
	}
	t.Logf("%s", strings.Join(out, "\n"))
	t.Logf("guest ran %v (test %v)", res.Elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
