package main

// The kernel live-tail acceptance test (issue 4): the host tails the log
// disk file while the guest's kernel writes it through dm-log-writes, and
// ships it to a local `logship serve`; when the guest removes the target
// the ship ends, and the image must equal the guest's data disk.

import (
	"crypto/md5"
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

	"github.com/logship/logship/fixtures/prereq"
	"github.com/logship/logship/fixtures/vm"
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
	prereq.VM(t)
	vmShipOnce.Do(func() {
		dir, err := os.MkdirTemp("", "logship-static-")
		if err != nil {
			vmShipErr = err
			return
		}
		defer os.RemoveAll(dir) // Prepare copies it into the initramfs
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

			jr := readJournal(t, res.Journal)
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

// guestShip runs serve and `ship --follow --dm-name` inside the guest, on
// the log device itself (/dev/vdb: O_DIRECT on a block device the kernel
// writes behind its page cache; the target's status and marks by ioctl),
// while fsync-marks runs; the scenario then removes the target itself, so
// that it can wait for the ship to see the end mark and compare the image.
const guestShip = `
ip link set lo up
mkdir -p /tmp/srv
logship serve --listen 127.0.0.1:7070 --dir /tmp/srv --insecure 2>/tmp/serve.log &
SERVE=$!
logship ship /dev/vdb --follow --dm-name "$DM_NAME" --tick 200ms --to 127.0.0.1:7070 --task vm --insecure --retry-for 1m -v >/tmp/ship.out 2>/tmp/ship.err &
SHIP=$!
( . /scenarios/fsync-marks.sh ) >/dev/null || echo "SCENARIO-FAILED $?"
if [ "$LOGSHIP_REMOVE" = 1 ]; then dmsetup --noudevsync remove "$DM_NAME"; fi
rc=0; wait $SHIP || rc=$?
echo "SHIP-EXIT $rc"
sed 's/^/SHIP-OUT /' /tmp/ship.out
kill $SERVE; wait $SERVE || true
[ -f /tmp/srv/vm/image ] && echo "IMAGE $(md5sum /tmp/srv/vm/image | cut -d' ' -f1)"
echo "DATA $(md5sum /dev/vda | cut -d' ' -f1)"
dmsetup status "$DM_NAME" 2>/dev/null | sed 's/^/STATUS /' || true
sed 's/^/SHIP-ERR /' /tmp/ship.err
sed 's/^/SERVE-ERR /' /tmp/serve.log
`

// guestLines returns the guest's output lines that start with prefix, without it.
func guestLines(out []string, prefix string) []string {
	var ls []string
	for _, l := range out {
		if s, ok := strings.CutPrefix(l, prefix); ok {
			ls = append(ls, s)
		}
	}
	return ls
}

// TestShipKernelDMName: `logship ship --follow --dm-name` inside the
// guest, on the log device, with marks and status by ioctl: the image
// equals the data disk. With a log device too small for the workload, the
// target disables logging and ship stops with a clear error.
func TestShipKernelDMName(t *testing.T) {
	h := shipHarness(t)
	for _, tc := range []struct {
		name    string
		lbs     int
		logSize int64
		full    bool
	}{
		{"4096", 4096, 64 << 20, false}, // TestShipKernelFollow covers 512 from the host
		{"log-full", 512, 2 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remove := "1"
			if tc.full {
				remove = "0"
			}
			res, err := h.Capture(t.Context(), vm.Run{
				Scenario: "shell-cmd", LogicalBlockSize: tc.lbs, DataSize: 64 << 20, LogSize: tc.logSize, Dir: t.TempDir(),
				Env: map[string]string{"LOGSHIP_CMD": guestShip, "LOGSHIP_STEPS": "20", "LOGSHIP_REMOVE": remove,
					"LOGSHIP_SEED": fmt.Sprint(time.Now().UnixNano() % 100000)},
			})
			if err != nil {
				t.Fatalf("guest: %v", err)
			}
			out := res.Output
			report := func() string { return strings.Join(out, "\n") }
			exit := guestLines(out, "SHIP-EXIT ")
			if len(exit) != 1 {
				t.Fatalf("no ship exit status in the guest's output:\n%s\n%s", report(), res.Console)
			}
			if tc.full {
				errs := strings.Join(guestLines(out, "SHIP-ERR "), "\n")
				if exit[0] != "3" || !strings.Contains(errs, "logging_disabled") || !strings.Contains(errs, "reload the target") {
					t.Fatalf("ship on a full log: exit %s, want 3 and the logging_disabled error:\n%s", exit[0], report())
				}
				if st := guestLines(out, "STATUS "); len(st) != 1 || !strings.Contains(st[0], "logging_disabled") {
					t.Fatalf("the target's status %q does not say logging_disabled:\n%s", st, report())
				}
				t.Logf("ship stopped with: %s", guestLines(out, "SHIP-ERR ")[len(guestLines(out, "SHIP-ERR "))-1])
				return
			}
			img, data := guestLines(out, "IMAGE "), guestLines(out, "DATA ")
			if exit[0] != "0" || len(img) != 1 || len(data) != 1 || img[0] != data[0] {
				t.Fatalf("ship exit %s, image %q, data disk %q:\n%s", exit[0], img, data, report())
			}
			// The data disk the guest hashed is the host's file.
			b, err := os.ReadFile(res.Data)
			if err != nil {
				t.Fatal(err)
			}
			if sum := fmt.Sprintf("%x", md5.Sum(b)); sum != data[0] {
				t.Fatalf("the guest's /dev/vda hashes to %s, the host's data disk to %s", data[0], sum)
			}
			ticks := 0
			jr := readJournal(t, res.Journal)
			for e, err := range jr.All() {
				if err != nil {
					t.Fatal(err)
				}
				if e.IsMark() && e.Label == "logship-tick" {
					ticks++
				}
			}
			if ticks == 0 {
				t.Fatalf("no logship-tick marks in the journal: --tick sent none\n%s", report())
			}
			t.Logf("image = data disk (md5 %s); %d entries, %d tick marks; %s", data[0], jr.Len(), ticks, strings.Join(guestLines(out, "SHIP-OUT "), " "))
		})
	}
}
