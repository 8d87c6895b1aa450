package main

// Kernel tests of log rotation and of the logging_disabled repair: the
// server, ship and the workload all run in the guest (loopback is its only
// network), against the real dm-log-writes target; the image must end
// equal to the data disk.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logship/logship/fixtures/prereq"
	"github.com/logship/logship/fixtures/vm"
)

var (
	guestOnce    sync.Once
	guestHarness *vm.Harness
	guestErr     error
)

// inGuestHarness prepares a VM harness with a static logship in the
// initramfs and room (1 GiB) for a server, a ship and a workload.
func inGuestHarness(t *testing.T) *vm.Harness {
	t.Helper()
	prereq.VM(t)
	guestOnce.Do(func() {
		dir, err := os.MkdirTemp("", "logship-static-")
		if err != nil {
			guestErr = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "logship")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			guestErr = fmt.Errorf("building a static logship: %v\n%s", err, out)
			return
		}
		guestHarness, guestErr = vm.Prepare(t.Context(), vm.Config{LogshipBinary: bin, Timeout: 4 * time.Minute, Memory: 1024})
	})
	if guestErr != nil {
		t.Fatalf("kernel tier: %v\n(`make deps` installs the Debian packages: qemu-system-x86 busybox-static dmsetup e2fsprogs)", guestErr)
	}
	return guestHarness
}

// guestLib is shell for the guest scripts: a server on loopback and a
// workload of file writes, syncs and deletes on the mounted file system.
const guestLib = `
set -e
export SRV=127.0.0.1:7300
serve_start() {
	mkdir -p /backup
	logship serve --listen $SRV --dir /backup --insecure --credit 16MiB --log-level warn 2>/dev/console &
	SERVE=$!
	n=0
	until logship status --to $SRV --insecure >/dev/null 2>&1; do
		n=$((n + 1)); [ $n -lt 100 ] || { echo "serve did not start"; exit 1; }
		sleep 0.1
	done
}
# workload SECONDS: writes, overwrites, appends and deletes of files, a
# sync now and then, until SECONDS have passed or /tmp/workload.stop exists.
workload() {
	end=$(($(date +%s) + $1))
	i=0
	while [ $(date +%s) -lt $end ] && [ ! -e /tmp/workload.stop ]; do
		i=$((i + 1))
		pick 12; f=$MNT/f$R
		pick 4
		case $R in
		0) rm -f $f ;;
		1) pick 64; dd if=/dev/urandom of=$f bs=4096 count=$((R + 1)) conv=fsync 2>/dev/null ;;
		2) pick 16; dd if=/dev/urandom bs=4096 count=$((R + 1)) 2>/dev/null >>$f ;;
		3) pick 32; dd if=/dev/urandom of=$f bs=1024 seek=$R count=8 conv=notrunc 2>/dev/null ;;
		esac
		[ $((i % 8)) -ne 0 ] || sync
	done
	echo "WORKLOAD $i operations"
}
# finish: unmount, remove the target (the last log's end mark), wait for
# ship, stop the server, compare the image with the data disk.
finish() {
	umount $MNT
	dmsetup --noudevsync remove $DM_NAME
	rc=0; wait $SHIP || rc=$?
	echo "SHIP-EXIT $rc"
	logship status --to $SRV --insecure --json --task vol | sed 's/^/STATUS /'
	kill -TERM $SERVE; wait $SERVE || true
	if cmp /backup/vol/image /dev/vda; then echo "IMAGE equal"; else echo "IMAGE differs"; fi
}
`

// guestValue returns the rest of the first output line starting with
// prefix.
func guestValue(out []string, prefix string) (string, bool) {
	for _, l := range out {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v, true
		}
	}
	return "", false
}

func checkGuestImage(t *testing.T, res *vm.Result) {
	t.Helper()
	out := res.Output
	if v, _ := guestValue(out, "SHIP-EXIT "); v != "0" {
		t.Fatalf("ship exited with %q in the guest\n%s", v, strings.Join(out, "\n"))
	}
	if _, ok := guestValue(out, "IMAGE equal"); !ok {
		t.Fatalf("the image differs from the data disk\n%s\n%s", strings.Join(out, "\n"), tail(res.Console, 60))
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestRotateKernel: ship follows two log devices while `logship rotate`
// swaps them six times, a second apart, under a running workload (each swap
// waiting, through the server, until the log it reuses has been shipped),
// then ship itself rotates twice past --rotate-at; after all the rotations
// the image equals the data disk.
func TestRotateKernel(t *testing.T) {
	h := inGuestHarness(t)
	const script = guestLib + `
serve_start
logship ship --follow --dm-name $DM_NAME --log /dev/vdb --log /dev/vdc --tick 200ms \
	--to $SRV --task vol --insecure --rotate-at 50% --progress never --json --log-level info >/tmp/ship.json 2>/dev/console &
SHIP=$!
mkfs.ext4 -q $DEV
mount -t ext4 -o noinit_itable $DEV $MNT
workload 180 &
WL=$!
# Six manual rotations under the workload, each to the log the target does
# not use; then the workload goes on until ship has rotated twice by itself,
# past --rotate-at. Counted, not timed: a slow machine only takes longer.
rot=0
while [ $rot -lt 6 ]; do
	sleep 1
	cur=$(dmsetup table $DM_NAME | awk '{print $5}')
	if [ "$cur" = "$(stat -c %t:%T /dev/vdb | awk -F: '{printf "%d:%d", "0x"$1, "0x"$2}')" ]; then next=/dev/vdc; else next=/dev/vdb; fi
	if ! logship rotate --dm-name $DM_NAME --next-log $next --to $SRV --task vol --insecure --wait 60s >/tmp/rot.out 2>&1; then
		# ship may have rotated in between: then the other log is next.
		grep -q "in use by the target" /tmp/rot.out || { echo "ROTATE failed: $(cat /tmp/rot.out)"; exit 1; }
		[ $next = /dev/vdb ] && next=/dev/vdc || next=/dev/vdb
		logship rotate --dm-name $DM_NAME --next-log $next --to $SRV --task vol --insecure --wait 60s >/tmp/rot.out 2>&1 ||
			{ echo "ROTATE failed: $(cat /tmp/rot.out)"; exit 1; }
	fi
	rot=$((rot + 1)); cat /tmp/rot.out >/dev/console
done
# The source's report names the log sequence number ship follows (0 first).
while :; do
	seq=$(logship status --to $SRV --insecure --json --task vol | sed -n 's/.*"seq":\([0-9]*\).*/\1/p')
	[ "${seq:-0}" -lt $((rot + 2)) ] || break
	kill -0 $WL 2>/dev/null || { echo "the workload ended before ship rotated twice by itself"; break; }
	sleep 0.5
done
touch /tmp/workload.stop
wait $WL
echo "ROTATIONS $rot"
finish
sed 's/^/SUMMARY /' /tmp/ship.json
`
	dir := t.TempDir()
	start := time.Now()
	res, err := h.Capture(t.Context(), vm.Run{
		Scenario:   "shell-cmd",
		Dir:        dir,
		DataSize:   64 << 20,
		LogSize:    8 << 20,
		ExtraDisks: []int64{8 << 20},
		Env:        map[string]string{"LOGSHIP_CMD": script, "LOGSHIP_SEED": fmt.Sprint(time.Now().UnixNano() % 100000)},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkGuestImage(t, res)
	rot, _ := guestValue(res.Output, "ROTATIONS ")
	manual, _ := strconv.Atoi(rot)
	sum, _ := guestValue(res.Output, "SUMMARY ")
	var followed, made int
	fmt.Sscanf(jsonField(sum, "rotations"), "%d", &followed)
	fmt.Sscanf(jsonField(sum, "rotated"), "%d", &made)
	if manual < 6 || made < 2 || followed != manual+made {
		t.Fatalf("%d manual rotations, ship followed %d (made %d itself): want many\n%s", manual, followed, made, strings.Join(res.Output, "\n"))
	}
	wl, _ := guestValue(res.Output, "WORKLOAD ")
	t.Logf("%s", strings.Join(res.Output, "\n"))
	t.Logf("%s rotations by logship rotate, %d followed by ship (%d made by ship --rotate-at), workload %s; guest ran %v (test %v)",
		rot, followed, made, wl, res.Elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// jsonField pulls a number field out of a flat JSON object (enough for the
// summary line).
func jsonField(obj, name string) string {
	_, rest, ok := strings.Cut(obj, `"`+name+`":`)
	if !ok {
		return ""
	}
	end := strings.IndexAny(rest, ",}")
	if end < 0 {
		return rest
	}
	return rest[:end]
}

// TestLoggingDisabledKernel: a 2 MiB log fills while mkfs and a workload
// run. ship without --resync-on-gap says so loudly and exits 3; ship with
// it rotates to a fresh log, syncs the differences from the live device and
// ships the fresh log from its mark; the image ends equal to the data disk.
func TestLoggingDisabledKernel(t *testing.T) {
	h := inGuestHarness(t)
	const script = guestLib + `
serve_start
SHIPARGS="--follow --dm-name $DM_NAME --log /dev/vdb --log /dev/vdc --tick 200ms --to $SRV --task vol --insecure --progress never"
# The task starts with a first sync and a mark (docs/production.md 4.5).
MARK=$(logship sync $DEV --to $SRV --task vol --insecure --mark-first --dm-name $DM_NAME --progress never | sed -n 's/^mark \([^:]*\): .*/\1/p')
logship ship $SHIPARGS --from-mark $MARK 2>/tmp/ship1.err &
SHIP=$!
mkfs.ext4 -q $DEV
mount -t ext4 -o noinit_itable $DEV $MNT
workload 16 &
WL=$!
rc=0; wait $SHIP || rc=$?
echo "SHIP1-EXIT $rc"
echo "STATUS1 $(dmsetup status $DM_NAME)"
echo "LOUD $(grep -c 'LOGGING DISABLED' /tmp/ship1.err)"
echo "STATUSWARN $(logship status --to $SRV --insecure --task vol | grep -c 'WARNING.*logging_disabled')"
cat /tmp/ship1.err >/dev/console
logship ship $SHIPARGS --resync-on-gap --json 2>/dev/console >/tmp/ship2.json &
SHIP=$!
wait $WL
echo "STATUS2 $(dmsetup status $DM_NAME)"
finish
sed 's/^/SUMMARY /' /tmp/ship2.json
`
	dir := t.TempDir()
	start := time.Now()
	res, err := h.Capture(t.Context(), vm.Run{
		Scenario:   "shell-cmd",
		Dir:        dir,
		DataSize:   64 << 20,
		LogSize:    2 << 20,
		ExtraDisks: []int64{128 << 20},
		Env:        map[string]string{"LOGSHIP_CMD": script, "LOGSHIP_SEED": fmt.Sprint(time.Now().UnixNano() % 100000)},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Join(res.Output, "\n")
	if v, _ := guestValue(res.Output, "SHIP1-EXIT "); v != "3" {
		t.Fatalf("ship without --resync-on-gap exited %q, want 3\n%s", v, out)
	}
	if v, _ := guestValue(res.Output, "LOUD "); v == "0" || v == "" {
		t.Fatalf("ship did not say LOGGING DISABLED\n%s", out)
	}
	if v, _ := guestValue(res.Output, "STATUSWARN "); v != "1" {
		t.Fatalf("logship status after the first ship: %q WARNING lines, want 1\n%s", v, out)
	}
	if v, _ := guestValue(res.Output, "STATUS1 "); !strings.Contains(v, "logging_disabled") {
		t.Fatalf("the target's status after the first ship: %q, want logging_disabled\n%s", v, out)
	}
	if v, _ := guestValue(res.Output, "STATUS2 "); strings.Contains(v, "logging_disabled") {
		t.Fatalf("the target's status after the repair: %q\n%s", v, out)
	}
	checkGuestImage(t, res)
	sum, _ := guestValue(res.Output, "SUMMARY ")
	if jsonField(sum, "resyncs") != "1" {
		t.Fatalf("summary %s: want 1 resync\n%s", sum, out)
	}
	t.Logf("%s", out)
	for _, l := range strings.Split(res.Console, "\n") {
		if strings.Contains(l, "level=") && !strings.Contains(l, "level=INFO") {
			t.Logf("console: %s", l)
		}
	}
	t.Logf("guest ran %v (test %v)", res.Elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
