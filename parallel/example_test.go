package parallel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/logship/logship/parallel"
)

// A client ships one window of two DATA frames over four streams; the
// server receives it whole, releases it and acks it.
func Example() {
	ctx := context.Background()
	l, err := parallel.Listen("127.0.0.1:0", parallel.ServerConfig{Insecure: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	shipped := make(chan error, 1)
	go func() {
		c, err := parallel.Dial(ctx, l.Addr().String(), parallel.ClientConfig{Task: "demo", Streams: 4, Insecure: true})
		if err != nil {
			shipped <- err
			return
		}
		defer c.Close()
		c.SendFrame(ctx, parallel.Frame{Window: 7, Entry: 100, Payload: []byte("hello")})
		c.SendFrame(ctx, parallel.Frame{Window: 7, Entry: 101, Payload: []byte("world!")})
		c.EndWindow(ctx, 7)
		shipped <- c.WaitAck(ctx, 7)
	}()

	s, err := l.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	w, err := s.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("task %s, window %d: %d frames, %d bytes\n", s.Task(), w.Seq, len(w.Frames), w.Bytes)
	for _, f := range w.Frames {
		fmt.Printf("entry %d: %q\n", f.Entry, f.Payload)
	}
	w.Release()
	s.Ack(w.Seq)
	if err := <-shipped; err != nil {
		log.Fatal(err)
	}
	// Output:
	// task demo, window 7: 2 frames, 11 bytes
	// entry 100: "hello"
	// entry 101: "world!"
}
