package main

// The kernel live-tail acceptance test (issue 4): the host tails the log
// disk file while the guest's kernel writes it through dm-log-writes, and
// ships it to a local `logship serve`; when the guest removes the target
// the ship ends, and the image must equal the guest's data disk.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/logship/logship/fixtures/vm"
	"github.com/logship/logship/journal"
)

var (
	vmShipOnce    sync.Once
	vmShipHarness *vm.Harness
	vmShipErr     error
)

// shipHarness prepares a VM harness whose initramfs holds a static
// logship binary (/bin/logship), so that the guest can run `logship mark`.
func shipHarness(t *testing.T) *vm.Harness {
	t.Helper()
	vmShipOnce.Do(func() {
		dir, err := os.MkdirTemp("", "logship-static-")
		if err != nil {
			vmShipErr = err
			return
		}
		bin := filepath.Join(dir, "logship")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			vmShipErr = fmt.Errorf("building a static logship: %v\n%s", err, out)
			return
		}
		vmShipHarness, vmShipErr = vm.Prepare(t.Context(), vm.Config{LogshipBinary: bin, Timeout: 5 * time.Minute})
	})
	if vmShipErr != nil {
		t.Fatalf("kernel tier: %v\n(`make deps` installs the Debian packages: qemu-system-x86 busybox-static dmsetup e2fsprogs)", vmShipErr)
	}
	return vmShipHarness
}

// tickScript runs fsync-marks in the guest with `logship mark` sending a
// mark every 200 ms meanwhile (and for the scenario's own marks).
const tickScript = `
(while :; do logship mark --dm-name "$DM_NAME" tick || exit 1; sleep 0.2; done) &
TICK=$!
. /scenarios/fsync-marks.sh
kill $TICK
`

func TestShipKernelFollow(t *testing.T) {
	h := shipHarness(t)
	for _, lbs := range []int{512, 4096} {
		t.Run(fmt.Sprint(lbs), func(t *testing.T) {
			const dataSize = 64 << 20
			dir := t.TempDir()
			p := startServe(t, filepath.Join(dir, "srv"))
			run := vm.Run{
				Scenario:         "shell-cmd",
				LogicalBlockSize: lbs,
				DataSize:         dataSize,
				LogSize:          128 << 20,
				Dir:              dir,
				Env: map[string]string{
					"LOGSHIP_CMD":   tickScript,
					"LOGSHIP_MARK":  "logship",
					"LOGSHIP_STEPS": "30",
					"LOGSHIP_SEED":  fmt.Sprint(time.Now().UnixNano() % 100000),
				},
			}
			in, err := h.Start(t.Context(), run)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{in.Journal, "--to", p.addr, "--task", "vm", "--insecure", "--follow",
				"--streams", "4", "--size", fmt.Sprint(dataSize), "-v"}
			if lbs == 4096 {
				args = append(args, "--compress", "zstd") // ext4 metadata compresses
			}
			s := startShip(t, args...)
			// Live: entries become durable while the guest still runs.
			s.waitDurable(t, 50)
			select {
			case <-in.Done():
				t.Fatalf("the guest had finished before 50 entries were durable: not a live tail\n%s", s.log())
			default:
			}
			res, err := in.Wait()
			if err != nil {
				t.Fatalf("guest: %v", err)
			}
			s.wait(t)

			f, err := os.Open(res.Journal)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			jr, err := journal.NewReader(f, fi.Size())
			if err != nil {
				t.Fatal(err)
			}
			out := s.stdout.String()
			if !strings.Contains(out, fmt.Sprintf("durable up to entry %d ", jr.Len())) {
				t.Fatalf("ship: %q; the journal has %d entries\n%s", out, jr.Len(), s.log())
			}
			// The ship saw the log while it grew: several sessions' worth
			// of windows, closed by the guest's tick marks among others.
			ticks := 0
			for e, err := range jr.All() {
				if err != nil {
					t.Fatal(err)
				}
				if e.IsMark() && e.Label == "tick" {
					ticks++
				}
			}
			if ticks == 0 {
				t.Fatalf("no tick marks in the journal: logship mark did not run in the guest\n%s", res.Console)
			}
			want, err := os.ReadFile(res.Data)
			if err != nil {
				t.Fatal(err)
			}
			if lbs == 4096 {
				m := regexp.MustCompile(`, (\S+ \S+) \((\S+ \S+) on the wire\)`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no byte counts in %q", out)
				}
				data, _ := humanize.ParseBytes(m[1])
				wire, _ := humanize.ParseBytes(m[2])
				if wire >= data/2 {
					t.Fatalf("--compress zstd: %s of entries took %s on the wire", m[1], m[2])
				}
			}
			imageAfterStop(t, p, "vm", want)
			t.Logf("%d entries (%d tick marks), guest ran %v; %s", jr.Len(), ticks, res.Elapsed.Round(time.Millisecond), strings.TrimSpace(out))
		})
	}
}
