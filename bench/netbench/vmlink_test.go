package netbench_test

import (
	"path/filepath"
	"testing"

	"github.com/logship/logship/bench/netbench"
)

// TestVMLink is the kernel tier's short run of the vm link model: in the
// Debian kernel under qemu, a journal shipped over 2 streams between two
// network namespaces with 40 ms of RTT, 1% loss each way and a 10 Mbit/s
// rate. It fails if the link cannot be made, if nothing is shipped, or if
// the server's image is not the journal replayed (Setup.Verify); it
// asserts no speed.
func TestVMLink(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the kernel VM (qemu, TCG) and needs root")
	}
	bin := netbench.LogshipBinary(t)
	dir := t.TempDir()
	g, err := netbench.Workload{Kind: "rand4k", Size: 2 << 20, Device: 8 << 20, Compressible: 0.5, Seed: 7}.Generate(filepath.Join(dir, "rand4k.log"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := netbench.ParseLink("vm:rtt=40ms,loss=1%,rate=10Mbit")
	if err != nil {
		t.Fatal(err)
	}
	sw := netbench.Sweep{
		Setup:   netbench.Setup{Binary: bin, Journal: g.Path, Size: g.Device, Dir: dir, Verify: true},
		Streams: []int{2},
		Links:   []netbench.Link{l},
	}
	var ms []netbench.Measurement
	if err := sw.Run(t.Context(), func(m netbench.Measurement) error {
		ms = append(ms, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("%d measurements, want 1", len(ms))
	}
	m := ms[0]
	t.Logf("%+v", m)
	if m.Link != l.String() || m.Streams != 2 {
		t.Errorf("measured %s with %d streams, want %s with 2", m.Link, m.Streams, l)
	}
	if m.Bytes < g.Bytes || m.Entries != g.Entries || m.Seconds <= 0 {
		t.Errorf("shipped %d bytes, %d entries in %gs; the journal has %d bytes, %d entries", m.Bytes, m.Entries, m.Seconds, g.Bytes, g.Entries)
	}
}
