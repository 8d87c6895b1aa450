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
//
// In a WAN model every TCP connection is held to Flow on its own (the
// per-flow cap of real long paths: window limits, per-flow policing, a
// single congestion-controlled flow), all connections share Bandwidth,
// and every byte is delayed by RTT/2 in each direction. Loss is modelled
// by its effect on a TCP flow rather than by dropping bytes (the proxy
// carries TCP payload, which TCP has already made reliable): it lowers
// the per-flow cap to the Mathis et al. bound MSS/RTT × 1.22/√loss.
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
)

// mss is the TCP segment size the loss model assumes (Ethernet, with
// timestamps).
const mss = 1448

// ParseLink parses a link model (see Link).
func ParseLink(s string) (Link, error) {
	switch s {
	case "direct":
		return Link{Kind: LinkDirect}, nil
	case "loopback":
		return Link{Kind: LinkLoopback}, nil
	}
	params, ok := strings.CutPrefix(s, "wan:")
	if s == "wan" {
		params, ok = "", true
	}
	if !ok {
		return Link{}, fmt.Errorf("%w: %q: want direct, loopback or wan:rtt=D,flow=RATE,link=RATE,loss=P", ErrBadLink, s)
	}
	l := Link{Kind: LinkWAN}
	for kv := range strings.SplitSeq(params, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Link{}, fmt.Errorf("%w: %q: %q is not key=value", ErrBadLink, s, kv)
		}
		var err error
		switch k {
		case "rtt":
			l.RTT, err = time.ParseDuration(v)
			if err == nil && (l.RTT < 0 || l.RTT > time.Minute) {
				err = errors.New("want 0 to 1m")
			}
		case "flow":
			l.Flow, err = ParseRate(v)
		case "link":
			l.Bandwidth, err = ParseRate(v)
		case "loss":
			l.Loss, err = strconv.ParseFloat(v, 64)
			if err == nil && (l.Loss < 0 || l.Loss >= 1 || math.IsNaN(l.Loss)) {
				err = errors.New("want a probability in [0, 1)")
			}
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

// Proxied reports whether connections go through the bench's proxy.
func (l Link) Proxied() bool { return l.Kind != LinkDirect }

// FlowCap is the rate one connection gets in one direction, in bytes per
// second (0: no cap): Flow, lowered by the loss model.
func (l Link) FlowCap() int64 {
	c := l.Flow
	if l.Loss > 0 && l.RTT > 0 {
		m := int64(mss / l.RTT.Seconds() * 1.22 / math.Sqrt(l.Loss))
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
