package digest_test

import (
	"fmt"

	"github.com/logship/logship/digest"
)

// The levels of the digest tree of a 1 GiB device with 4 KiB leaves and
// 1 MiB blocks.
func ExampleTree() {
	t := digest.Tree{Size: 1 << 30, Granularity: 4096, BlockSize: 1 << 20}
	for k := 0; k <= t.Top(); k++ {
		fmt.Printf("level %d: %d nodes of %d bytes\n", k, t.Nodes(k), t.Unit(k))
	}
	fmt.Println("blocks at level", t.BlockLevel())
	// Output:
	// level 0: 262144 nodes of 4096 bytes
	// level 1: 16384 nodes of 65536 bytes
	// level 2: 1024 nodes of 1048576 bytes
	// level 3: 64 nodes of 16777216 bytes
	// level 4: 4 nodes of 268435456 bytes
	// level 5: 1 nodes of 4294967296 bytes
	// blocks at level 2
}
