package replica_test

import (
	"context"
	"fmt"
	"os"

	"github.com/logship/logship/control"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/replica"
)

func ExampleCheckTask() {
	for _, name := range []string{"db-01", "../etc", ".hidden", "a/b"} {
		fmt.Println(name, replica.CheckTask(name) == nil)
	}
	// Output:
	// db-01 true
	// ../etc false
	// .hidden false
	// a/b false
}

// A server on loopback, and a source that creates its task and ships one
// window: a 4 KiB write closed by a FLUSH.
func ExampleServer() {
	dir, _ := os.MkdirTemp("", "replica-example")
	defer os.RemoveAll(dir)
	ctx, stop := context.WithCancel(context.Background())
	srv, err := replica.Open(ctx, replica.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	l, err := parallel.Listen("127.0.0.1:0", parallel.ServerConfig{Insecure: true, Handler: srv.Handle})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	served := make(chan error)
	go func() { served <- srv.Serve(ctx, l) }()

	// The source.
	s, err := parallel.Dial(ctx, l.Addr().String(), parallel.ClientConfig{Task: "db", Insecure: true})
	if err != nil {
		panic(err)
	}
	req := control.Request{Op: control.OpOpen, Open: &control.Open{Size: 1 << 20, Journal: "example", SectorSize: 512}}
	resp, err := s.Call(ctx, control.Marshal(req))
	if err != nil {
		panic(err)
	}
	var task control.Task
	control.Unmarshal(resp, &task)
	fmt.Printf("created %v, resume at entry %d, window %d\n", task.Created, task.Durable.NextEntry, task.Durable.NextWindow)
	w := task.Durable.NextWindow
	data := make([]byte, 4096)
	copy(data, "hello")
	s.SendFrame(ctx, parallel.Frame{Window: w, Entry: 0, Payload: control.AppendEntry(nil, journal.Entry{Sector: 8, NrSectors: 8}, data)})
	s.SendFrame(ctx, parallel.Frame{Window: w, Entry: 1, Payload: control.AppendEntry(nil, journal.Entry{Flags: journal.FlagFlush}, nil)})
	s.EndWindow(ctx, w)
	if err := s.WaitAck(ctx, w); err != nil {
		panic(err)
	}
	fmt.Println("window", w, "durable")
	s.Close()

	stop()
	<-served
	img, _ := os.ReadFile(dir + "/db/image")
	fmt.Printf("%q\n", img[4096:4101])
	// Output:
	// created true, resume at entry 0, window 0
	// window 0 durable
	// "hello"
}
