package netbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/logship/logship/fixtures"
)

// A netns link is the kernel's own TCP between two network namespaces of
// this host joined by a veth pair: the server in one, the source in the
// other. On each end's egress, netem delays every packet by RTT/2 and drops
// it with probability Loss, and a tbf under it holds the direction to
// Bandwidth with a queue of one bandwidth-delay product. Both ends send one
// segment per packet (gso_max_segs 1): netem drops whole packets, and a
// 64 KiB GSO packet dropped would be 45 segments lost at once. Setting it up
// needs root, iproute2's ip and tc, and the veth, sch_netem and sch_tbf
// modules (loaded on demand by the kernel, or by the netlink scenario in
// the VM).

// Addresses of the two ends, inside their own namespaces.
const (
	netnsServerIP = "10.231.0.1"
	netnsSourceIP = "10.231.0.2"
)

// netnsSeq numbers this process's namespace pairs.
var netnsSeq atomic.Int64

// netnsPair is one pair of namespaces with the shaped veth pair between.
type netnsPair struct {
	ip             string // iproute2's ip
	server, source string // namespace names
}

// newNetnsPair builds the namespaces and the link of l; Close removes them.
func newNetnsPair(ctx context.Context, l Link) (*netnsPair, error) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("bench: a netns link needs iproute2's ip: %w", err)
	}
	tc, err := exec.LookPath("tc")
	if err != nil {
		return nil, fmt.Errorf("bench: a netns link needs iproute2's tc: %w", err)
	}
	n := netnsSeq.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid(), n)
	p := &netnsPair{ip: ip, server: "logship-srv-" + id, source: "logship-src-" + id}
	// Interface names are at most 15 bytes.
	tag := strconv.FormatInt(int64(os.Getpid())%100000, 36) + "x" + strconv.FormatInt(n, 36)
	ends := []struct{ ns, dev, addr string }{
		{p.server, "lss" + tag, netnsServerIP},
		{p.source, "lsc" + tag, netnsSourceIP},
	}
	cmds := [][]string{
		{ip, "netns", "add", p.server},
		{ip, "netns", "add", p.source},
		{ip, "link", "add", ends[0].dev, "netns", ends[0].ns, "type", "veth", "peer", "name", ends[1].dev, "netns", ends[1].ns},
	}
	for _, e := range ends {
		cmds = append(cmds,
			[]string{ip, "-n", e.ns, "link", "set", "lo", "up"},
			[]string{ip, "-n", e.ns, "link", "set", e.dev, "gso_max_segs", "1"},
			[]string{ip, "-n", e.ns, "addr", "add", e.addr + "/24", "dev", e.dev},
			[]string{ip, "-n", e.ns, "link", "set", e.dev, "up"},
			netemArgs(tc, e.ns, e.dev, l))
		if l.Bandwidth > 0 {
			cmds = append(cmds, tbfArgs(tc, e.ns, e.dev, l))
		}
	}
	for _, c := range cmds {
		out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("bench: netns link %s: %q: %v: %s", l, c, err, bytes.TrimSpace(out))
		}
	}
	return p, nil
}

// netemArgs: tc qdisc add dev DEV root handle 1: netem delay RTT/2 loss P.
func netemArgs(tc, ns, dev string, l Link) []string {
	a := []string{tc, "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem",
		"delay", strconv.FormatInt(int64(l.RTT/2/time.Microsecond), 10) + "us", "limit", "100000"}
	if l.Loss > 0 {
		a = append(a, "loss", strconv.FormatFloat(l.Loss*100, 'g', 6, 64)+"%")
	}
	return a
}

// tbfArgs: a tbf under netem holding the direction to the link's rate,
// with a burst of 20 ms of it (at least 16 kB: in the emulated guest a
// timer often fires late, and with a burst of 5 ms tbf idled the link: one
// stream got 0.47 times 16 Mbit/s without loss, 0.68 with 20 ms) and a
// queue of one bandwidth-delay product (at least 64 kB).
func tbfArgs(tc, ns, dev string, l Link) []string {
	burst := max(l.Bandwidth/50, 16000)
	limit := max(int64(float64(l.Bandwidth)*l.RTT.Seconds()), 64000)
	return []string{tc, "-n", ns, "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "tbf",
		"rate", strconv.FormatInt(l.Bandwidth*8, 10) + "bit",
		"burst", strconv.FormatInt(burst, 10), "limit", strconv.FormatInt(limit, 10)}
}

// exec is the command prefix that runs a program in namespace ns (ip netns
// exec, which execs the program in its place).
func (p *netnsPair) exec(ns string) []string { return []string{p.ip, "netns", "exec", ns} }

// Close removes both namespaces (the veth pair goes with them). The
// processes in them must have exited.
func (p *netnsPair) Close() {
	for _, ns := range []string{p.server, p.source} {
		exec.Command(p.ip, "netns", "del", ns).Run()
	}
}

// writePSK writes a random pre-shared key into dir and returns the flags
// that use it, for serve and ship across a netns link (no loopback
// address there, so no --insecure).
func writePSK(dir string) ([]string, error) {
	f := filepath.Join(dir, "psk")
	if err := os.WriteFile(f, []byte(rand.Text()+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []string{"--psk-file", f}, nil
}

// withAuth replaces the --insecure of ship's flags by auth.
func withAuth(args, auth []string) []string {
	if len(auth) == 0 {
		return args
	}
	var out []string
	for _, a := range args {
		if a == "--insecure" {
			out = append(out, auth...)
			continue
		}
		out = append(out, a)
	}
	return out
}

// ErrDiverged: with Setup.Verify, the server's image is not the journal
// replayed.
var ErrDiverged = errors.New("bench: the server's image differs from the journal replayed")

// verifyImage compares the server's image with the journal replayed onto
// zeros (fixtures.ReplaySequential).
func verifyImage(journalPath, imagePath string) error {
	j, err := os.ReadFile(journalPath)
	if err != nil {
		return err
	}
	img, err := os.ReadFile(imagePath)
	if err != nil {
		return fmt.Errorf("bench: verify: %w", err)
	}
	want := make([]byte, len(img))
	if err := fixtures.ReplaySequential(j, want, -1); err != nil {
		return fmt.Errorf("bench: verify: replaying %s: %w", journalPath, err)
	}
	for off := 0; off < len(img); off += 4096 {
		end := min(off+4096, len(img))
		if !bytes.Equal(img[off:end], want[off:end]) {
			return fmt.Errorf("%w: %s at byte %d", ErrDiverged, imagePath, off)
		}
	}
	return nil
}
