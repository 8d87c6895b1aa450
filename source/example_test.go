package source_test

import (
	"context"
	"fmt"
	"log"

	"github.com/logship/logship/parallel"
	"github.com/logship/logship/source"
)

// The identity of a journal depends on its sector size and its first
// entries.
func ExampleJournalID() {
	header := make([]byte, 512) // an entry header: sector 0, nothing else
	fmt.Println(source.JournalID(512, header))
	fmt.Println(source.JournalID(4096, header))
	// Output:
	// xxh64:f5b934455d913766
	// xxh64:7738005899e45d50
}

// Ship a journal file to a server over 4 streams, creating the task with
// an image of 256 MiB if it does not exist.
func ExampleShipper() {
	psk, err := parallel.LoadPSK("/etc/logship/psk")
	if err != nil {
		log.Fatal(err)
	}
	s, err := source.New(source.Config{
		Journal: "/var/tmp/db.log",
		Addr:    "backup.example:7070",
		Client:  parallel.ClientConfig{Task: "db", Streams: 4, PSK: psk},
		Size:    256 << 20,
	})
	if err != nil {
		log.Fatal(err)
	}
	st, err := s.Run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d entries in %d windows, durable up to entry %d\n", st.Entries, st.Windows, st.Durable.NextEntry)
}
