package netbench

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/logship/logship/fixtures"
)

// verifyImage accepts the journal replayed and refuses an image with one
// byte changed, or one that is missing.
func TestVerifyImage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g, err := Workload{Kind: "rand4k", Size: 256 << 10, Device: 1 << 20, Compressible: 0.5, Seed: 3}.Generate(filepath.Join(dir, "j.log"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile(g.Path)
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, g.Device)
	if err := fixtures.ReplaySequential(j, img, -1); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.img")
	bad := filepath.Join(dir, "bad.img")
	worse := slices.Clone(img)
	worse[len(worse)/2+5] ^= 1
	for name, b := range map[string][]byte{good: img, bad: worse} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := verifyImage(g.Path, good); err != nil {
		t.Errorf("the journal replayed: %v", err)
	}
	if err := verifyImage(g.Path, bad); !errors.Is(err, ErrDiverged) {
		t.Errorf("one byte changed: %v, want ErrDiverged", err)
	}
	if err := verifyImage(g.Path, filepath.Join(dir, "none.img")); err == nil {
		t.Error("no image: no error")
	}
}

// The tc commands of a link: netem with half the RTT and the loss as a
// percentage, and a tbf at the rate with a queue of one bandwidth-delay
// product.
func TestNetnsCommands(t *testing.T) {
	t.Parallel()
	l, err := ParseLink("netns:rtt=40ms,loss=0.1%,rate=16Mbit")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want []string }{
		{netemArgs("tc", "n", "d", l), []string{"tc", "-n", "n", "qdisc", "add", "dev", "d", "root", "handle", "1:", "netem", "delay", "20000us", "limit", "100000", "loss", "0.1%"}},
		{tbfArgs("tc", "n", "d", l), []string{"tc", "-n", "n", "qdisc", "add", "dev", "d", "parent", "1:1", "handle", "10:", "tbf", "rate", "16000000bit", "burst", "40000", "limit", "80000"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("got %q\nwant %q", tc.got, tc.want)
		}
	}
	if got := withAuth([]string{"ship", "--insecure", "--json"}, []string{"--psk-file", "k"}); !slices.Equal(got, []string{"ship", "--psk-file", "k", "--json"}) {
		t.Errorf("withAuth: %q", got)
	}
}

// The guest's command runs the netns form of the link over the journal in
// /in, every repetition its own run, with the sweep's flags quoted for
// the shell.
func TestVMBenchCommand(t *testing.T) {
	t.Parallel()
	l, err := ParseLink("vm:rtt=40ms,loss=1%,rate=10Mbit")
	if err != nil {
		t.Fatal(err)
	}
	sw := Sweep{
		Setup:   Setup{Size: 8 << 20, ShipArgs: []string{"--window-bytes", "4 MiB"}, Verify: true},
		Streams: []int{1, 4},
	}
	got := vmBenchCommand(sw, l, []Variant{{}, Variants["zstd"]}, 2)
	want := `'/bin/logship' 'bench' '--journal' '/in/journal.log' '--link' 'netns:rtt=40ms,loss=1%,rate=10Mbit' ` +
		`'--streams' '1,1,4,4' '--json' '--quiet' '--dir' '/srv' '--compare' 'zstd' '--task-size' '8388608' ` +
		`'--ship-args' '--window-bytes 4 MiB' '--verify'`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
