package devio_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/logship/logship/devio"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "devio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "image")

	// A new sparse 1 MiB image.
	img, err := devio.Open(path, devio.Options{Create: true, Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Kind(), img.Size(), img.LogicalBlockSize())
	if _, err := img.WriteAt([]byte("hello, block 8"), 8*512); err != nil {
		log.Fatal(err)
	}
	if err := img.Sync(); err != nil {
		log.Fatal(err)
	}
	img.Close()

	// Reopened without Create, the file behaves like a device of fixed size.
	dev, err := devio.Open(path, devio.Options{Write: true, Exclusive: true})
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	_, err = dev.WriteAt(make([]byte, 512), 1<<20)
	fmt.Println(errors.Is(err, devio.ErrOutOfRange))

	// Discarded ranges read back as zeros.
	if err := dev.Discard(8*512, 512); err != nil {
		log.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := dev.ReadAt(b, 8*512); err != nil {
		log.Fatal(err)
	}
	fmt.Println(b)
	// Output:
	// file 1048576 512
	// true
	// [0 0 0 0 0]
}
