package netbench

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrBadLink: a link model that does not parse.
var ErrBadLink = errors.New("bench: bad link model")

// Link is a model of the network between a source and its server.
//
//	direct                       no proxy: the source dials the server
//	loopback                     through the bench's proxy, unshaped
//	wan:rtt=40ms,flow=50Mbit,link=1Gbit,loss=0.001
//	netns:rtt=40ms,loss=0.1%,rate=100Mbit
//	vm:rtt=40ms,loss=0.1%,rate=100Mbit
//
// The netns and vm models are the kernel's own TCP (see netns.go and
// vmlink.go): the source and the server run in two network namespaces
// joined by a veth pair, netem delays every packet by RTT/2 and drops it
// with probability Loss in each direction, and tbf holds each direction to
// Bandwidth (rate=). netns builds them on this host's kernel; vm in the
// Debian kernel of fixtures/vm under qemu, where the whole sweep of the
// link runs in one boot.
//
// In a WAN model every TCP connection is held to Flow on its own (the
// per-flow cap of real long paths: window limits, per-flow policing, a
// single congestion-controlled flow), all connections share Bandwidth,
// and every byte is delayed by RTT/2 in each direction. Loss is modelled
// by its effect on a TCP flow rather than by dropping bytes (the proxy
// carries TCP payload, which TCP has already made reliable): it lowers
// the per-flow cap to what one TCP flow gets over such a path (lossRate:
// the Padhye et al. model, with timeouts and delayed ACKs).
type Link struct {
	Kind      LinkKind
	RTT       time.Duration
	Flow      int64   // bytes per second per connection and direction; 0: no cap
	Bandwidth int64   // bytes per second shared by all connections, per direction; 0: no cap
	Loss      float64 // packet loss probability, 0 ≤ Loss < 1
}

// LinkKind says whether and how a link is shaped.
type LinkKind int

// Link kinds.
const (
	LinkDirect   LinkKind = iota // no proxy
	LinkLoopback                 // the proxy, unshaped
	LinkWAN                      // the proxy, shaped
	LinkNetns                    // the kernel's TCP between two network namespaces of this host
	LinkVM                       // the kernel's TCP between two network namespaces in the kernel VM
)

// kindPrefix is the prefix of each shaped kind in ParseLink and String.
var kindPrefix = map[LinkKind]string{LinkWAN: "wan", LinkNetns: "netns", LinkVM: "vm"}

// mss is the TCP segment size the loss model assumes (Ethernet, with
// timestamps).
const mss = 1448

// The loss model's other constants: segments acknowledged per ACK (Linux
// delays ACKs) and the minimum retransmission timeout (Linux's
// TCP_RTO_MIN), which a timeout adds to the RTT.
const (
	ackedPerACK = 2
	minRTO      = 0.2 // seconds
)

// lossRate is the throughput of one TCP flow over a path with the round
// trip rtt (seconds) losing packets with probability p, in bytes per
// second: the model of Padhye, Firoiu, Towsley and Kurose (1998), which
// counts retransmission timeouts and delayed ACKs,
//
//	MSS / (RTT·√(2bp/3) + T0·min(1, 3·√(3bp/8))·p·(1+32p²))
//
// with b = 2 and T0 = RTT + 200 ms. It replaced the Mathis et al. bound
// MSS/RTT × 1.22/√p, which the Debian kernel's own TCP (CUBIC, SACK) beat
// by far less than it promised: at 40 ms one flow got 0.56 times the Mathis
// bound with 0.1% loss and 0.72 times with 1% (docs/bench.md, "The kernel's
// TCP against the model"); this model is within 25% of both.
func lossRate(rtt, p float64) float64 {
	b := float64(ackedPerACK)
	t0 := rtt + minRTO
	d := rtt*math.Sqrt(2*b*p/3) + t0*min(1, 3*math.Sqrt(3*b*p/8))*p*(1+32*p*p)
	return mss / d
}

// ParseLink parses a link model (see Link).
func ParseLink(s string) (Link, error) {
	switch s {
	case "direct":
		return Link{Kind: LinkDirect}, nil
	case "loopback":
		return Link{Kind: LinkLoopback}, nil
	}
	kind, params, _ := strings.Cut(s, ":")
	l := Link{Kind: -1}
	for k, p := range kindPrefix {
		if kind == p {
			l.Kind = k
		}
	}
	if l.Kind < 0 {
		return Link{}, fmt.Errorf("%w: %q: want direct, loopback, wan:rtt=D,flow=RATE,link=RATE,loss=P, netns:rtt=D,loss=P,rate=RATE or vm:rtt=D,loss=P,rate=RATE", ErrBadLink, s)
	}
	kernel := l.Kind != LinkWAN
	for kv := range strings.SplitSeq(params, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Link{}, fmt.Errorf("%w: %q: %q is not key=value", ErrBadLink, s, kv)
		}
		var err error
		switch {
		case k == "rtt":
			l.RTT, err = time.ParseDuration(v)
			if err == nil && (l.RTT < 0 || l.RTT > time.Minute) {
				err = errors.New("want 0 to 1m")
			}
		case k == "flow" && !kernel:
			l.Flow, err = ParseRate(v)
		case k == "link" && !kernel, k == "rate" && kernel:
			l.Bandwidth, err = ParseRate(v)
		case k == "loss":
			l.Loss, err = parseLoss(v)
		case kernel:
			err = errors.New("unknown key (want rtt, loss or rate)")
		default:
			err = errors.New("unknown key (want rtt, flow, link or loss)")
		}
		if err != nil {
			return Link{}, fmt.Errorf("%w: %q: %s: %v", ErrBadLink, s, kv, err)
		}
	}
	return l, nil
}

// String gives the model back in the form ParseLink reads.
func (l Link) String() string {
	switch l.Kind {
	case LinkDirect:
		return "direct"
	case LinkLoopback:
		return "loopback"
	}
	var p []string
	if l.RTT > 0 {
		p = append(p, "rtt="+l.RTT.String())
	}
	if l.Kind != LinkWAN {
		if l.Loss > 0 {
			p = append(p, "loss="+strconv.FormatFloat(l.Loss*100, 'g', 6, 64)+"%")
		}
		if l.Bandwidth > 0 {
			p = append(p, "rate="+FormatRate(l.Bandwidth))
		}
		return kindPrefix[l.Kind] + ":" + strings.Join(p, ",")
	}
	if l.Flow > 0 {
		p = append(p, "flow="+FormatRate(l.Flow))
	}
	if l.Bandwidth > 0 {
		p = append(p, "link="+FormatRate(l.Bandwidth))
	}
	if l.Loss > 0 {
		p = append(p, "loss="+strconv.FormatFloat(l.Loss, 'g', -1, 64))
	}
	return "wan:" + strings.Join(p, ",")
}

// parseLoss reads a loss probability, as a fraction (0.001) or a
// percentage (0.1%).
func parseLoss(v string) (float64, error) {
	num, pct := strings.CutSuffix(v, "%")
	p, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, err
	}
	if pct {
		p /= 100
	}
	if p < 0 || p >= 1 || math.IsNaN(p) {
		return 0, errors.New("want a probability in [0, 1) or a percentage below 100%")
	}
	return p, nil
}

// Model is the WAN model of the proxy that predicts a kernel link (netns
// or vm): the same RTT, loss and shared rate, no per-flow cap but the
// loss's bound (lossRate). For other kinds it is l itself.
func (l Link) Model() Link {
	if l.Kind != LinkNetns && l.Kind != LinkVM {
		return l
	}
	return Link{Kind: LinkWAN, RTT: l.RTT, Bandwidth: l.Bandwidth, Loss: l.Loss}
}

// Proxied reports whether connections go through the bench's proxy.
func (l Link) Proxied() bool { return l.Kind == LinkLoopback || l.Kind == LinkWAN }

// FlowCap is the rate one connection gets in one direction, in bytes per
// second (0: no cap): Flow, lowered by the loss model. For the kernel's
// links (netns, vm) it is what the WAN model predicts.
func (l Link) FlowCap() int64 {
	if l.Kind != LinkWAN {
		l = l.Model()
	}
	c := l.Flow
	if l.Loss > 0 && l.RTT > 0 {
		m := int64(lossRate(l.RTT.Seconds(), l.Loss))
		if c == 0 || m < c {
			c = max(m, 1)
		}
	}
	return c
}

// ParseRate parses a bit rate such as 50Mbit, 1Gbit, 800kbit or 1e9bit
// (decimal prefixes, as for networks) and returns bytes per second.
func ParseRate(s string) (int64, error) {
	num, ok := strings.CutSuffix(strings.ToLower(s), "bit")
	if !ok {
		num, ok = strings.CutSuffix(strings.ToLower(s), "bps")
	}
	if !ok {
		return 0, fmt.Errorf("rate %q: want a number of bits per second such as 50Mbit", s)
	}
	mult := 1.0
	switch {
	case strings.HasSuffix(num, "k"):
		mult, num = 1e3, num[:len(num)-1]
	case strings.HasSuffix(num, "m"):
		mult, num = 1e6, num[:len(num)-1]
	case strings.HasSuffix(num, "g"):
		mult, num = 1e9, num[:len(num)-1]
	case strings.HasSuffix(num, "t"):
		mult, num = 1e12, num[:len(num)-1]
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || v*mult > 1e15 {
		return 0, fmt.Errorf("rate %q: want a positive number of bits per second such as 50Mbit", s)
	}
	return max(1, int64(v*mult/8)), nil
}

// FormatRate prints bytes per second as a bit rate ParseRate reads.
func FormatRate(bytesPerSec int64) string {
	bits := float64(bytesPerSec) * 8
	for _, u := range []struct {
		div  float64
		name string
	}{{1e12, "Tbit"}, {1e9, "Gbit"}, {1e6, "Mbit"}, {1e3, "kbit"}} {
		if bits >= u.div {
			return strconv.FormatFloat(bits/u.div, 'f', -1, 64) + u.name
		}
	}
	return strconv.FormatFloat(bits, 'f', -1, 64) + "bit"
}
