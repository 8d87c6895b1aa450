package netbench_test

import (
	"errors"
	"testing"
	"time"

	"github.com/logship/logship/bench/netbench"
)

func TestParseLink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want netbench.Link
		back string // String(), if not in
		cap  int64  // FlowCap
	}{
		{in: "direct", want: netbench.Link{Kind: netbench.LinkDirect}},
		{in: "loopback", want: netbench.Link{Kind: netbench.LinkLoopback}},
		{in: "wan:rtt=40ms,flow=50Mbit,link=1Gbit", want: netbench.Link{Kind: netbench.LinkWAN, RTT: 40 * time.Millisecond, Flow: 6_250_000, Bandwidth: 125_000_000}, cap: 6_250_000},
		{in: "wan:rtt=40ms,flow=50Mbit,link=1Gbit,loss=0", want: netbench.Link{Kind: netbench.LinkWAN, RTT: 40 * time.Millisecond, Flow: 6_250_000, Bandwidth: 125_000_000},
			back: "wan:rtt=40ms,flow=50Mbit,link=1Gbit", cap: 6_250_000},
		{in: "wan:flow=800kbit", want: netbench.Link{Kind: netbench.LinkWAN, Flow: 100_000}, cap: 100_000},
		{in: "wan:rtt=1.5ms,link=2.5Gbit", want: netbench.Link{Kind: netbench.LinkWAN, RTT: 1500 * time.Microsecond, Bandwidth: 312_500_000}},
		{in: "wan", want: netbench.Link{Kind: netbench.LinkWAN}, back: "wan:"},
		// Padhye et al. with b = 2, T0 = 240 ms: 1448 B / (40 ms * sqrt(4 * 0.01 / 3)
		// + 240 ms * 3 * sqrt(6 * 0.01 / 8) * 0.01 * (1 + 32e-4)) = 276 107 B/s,
		// below the flow cap (the Mathis bound was 441 640).
		{in: "wan:rtt=40ms,flow=50Mbit,loss=0.01", want: netbench.Link{Kind: netbench.LinkWAN, RTT: 40 * time.Millisecond, Flow: 6_250_000, Loss: 0.01}, cap: 276_107},
		// Loss without a flow cap still caps.
		{in: "wan:rtt=10ms,loss=0.0001", want: netbench.Link{Kind: netbench.LinkWAN, RTT: 10 * time.Millisecond, Loss: 0.0001}, cap: 12_481_074},
		{in: "wan:rtt=40ms,loss=1%", want: netbench.Link{Kind: netbench.LinkWAN, RTT: 40 * time.Millisecond, Loss: 0.01}, back: "wan:rtt=40ms,loss=0.01", cap: 276_107},
		// The kernel's links: the cap is what the WAN model predicts.
		{in: "vm:rtt=40ms,loss=1%,rate=16Mbit", want: netbench.Link{Kind: netbench.LinkVM, RTT: 40 * time.Millisecond, Bandwidth: 2_000_000, Loss: 0.01}, cap: 276_107},
		{in: "netns:rtt=40ms,loss=0.1%,rate=200Mbit", want: netbench.Link{Kind: netbench.LinkNetns, RTT: 40 * time.Millisecond, Bandwidth: 25_000_000, Loss: 0.001}, cap: 978_172},
		{in: "vm:rate=1Gbit,loss=0.01,rtt=4ms", want: netbench.Link{Kind: netbench.LinkVM, RTT: 4 * time.Millisecond, Bandwidth: 125_000_000, Loss: 0.01},
			back: "vm:rtt=4ms,loss=1%,rate=1Gbit", cap: 1_457_350},
		{in: "vm:", want: netbench.Link{Kind: netbench.LinkVM}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			l, err := netbench.ParseLink(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if l != tc.want {
				t.Fatalf("got %+v, want %+v", l, tc.want)
			}
			back := tc.back
			if back == "" {
				back = tc.in
			}
			if l.String() != back {
				t.Errorf("String() = %q, want %q", l.String(), back)
			}
			if c := l.FlowCap(); c < tc.cap-1 || c > tc.cap+1 {
				t.Errorf("FlowCap() = %d, want %d", c, tc.cap)
			}
			if again, err := netbench.ParseLink(l.String()); err != nil || again != l {
				t.Errorf("ParseLink(String()) = %+v, %v", again, err)
			}
		})
	}
}

func TestParseLinkErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "lan", "wan:rtt", "wan:rtt=-1ms", "wan:rtt=2m", "wan:flow=50", "wan:flow=50MB", "wan:flow=-5Mbit",
		"wan:flow=0bit", "wan:link=xGbit", "wan:loss=1", "wan:loss=-0.1", "wan:loss=NaN", "wan:jitter=5ms",
		"wan:rate=1Gbit", "vm:flow=50Mbit", "vm:link=1Gbit", "vm:loss=100%", "netns:loss=x%", "vm:rate=5", "direct:", "vms",
	} {
		if l, err := netbench.ParseLink(in); !errors.Is(err, netbench.ErrBadLink) {
			t.Errorf("ParseLink(%q) = %+v, %v; want ErrBadLink", in, l, err)
		}
	}
}

func TestRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
		back string
	}{
		{"50Mbit", 6_250_000, "50Mbit"},
		{"1Gbit", 125_000_000, "1Gbit"},
		{"100mbps", 12_500_000, "100Mbit"},
		{"8bit", 1, "8bit"},
		{"1e9bit", 125_000_000, "1Gbit"},
		{"0.5Gbit", 62_500_000, "500Mbit"},
	} {
		got, err := netbench.ParseRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if s := netbench.FormatRate(got); s != tc.back {
			t.Errorf("FormatRate(%d) = %q, want %q", got, s, tc.back)
		}
	}
}

// The model of a kernel link is the WAN model with the same RTT, loss and
// shared rate, and no per-flow cap of its own.
func TestLinkModel(t *testing.T) {
	t.Parallel()
	l, err := netbench.ParseLink("vm:rtt=40ms,loss=0.1%,rate=16Mbit")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Model().String(), "wan:rtt=40ms,link=16Mbit,loss=0.001"; got != want {
		t.Errorf("Model() = %q, want %q", got, want)
	}
	w, _ := netbench.ParseLink("wan:rtt=40ms,flow=50Mbit")
	if w.Model() != w {
		t.Errorf("the model of a WAN link is itself: %v", w.Model())
	}
}
