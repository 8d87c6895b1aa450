package netbench_test

import (
	"fmt"

	"github.com/logship/logship/bench/netbench"
)

// A WAN model: every connection gets 50 Mbit/s on its own, all share
// 1 Gbit/s, and bytes take 20 ms each way. With 1% loss a 40 ms path
// holds one TCP flow to what the loss model allows instead.
func ExampleParseLink() {
	for _, s := range []string{"wan:rtt=40ms,flow=50Mbit,link=1Gbit", "wan:rtt=40ms,flow=50Mbit,link=1Gbit,loss=0.01"} {
		l, err := netbench.ParseLink(s)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: RTT %v, per flow %s, link %s\n", l, l.RTT, netbench.FormatRate(l.FlowCap()), netbench.FormatRate(l.Bandwidth))
	}
	// Output:
	// wan:rtt=40ms,flow=50Mbit,link=1Gbit: RTT 40ms, per flow 50Mbit, link 1Gbit
	// wan:rtt=40ms,flow=50Mbit,link=1Gbit,loss=0.01: RTT 40ms, per flow 2.208856Mbit, link 1Gbit
}
