package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/klauspost/compress/zstd"

	"github.com/logship/logship/devio"
	"github.com/logship/logship/journal"
	"github.com/logship/logship/parallel"
	"github.com/logship/logship/replay"
	"github.com/logship/logship/replica"
	"github.com/logship/logship/source"
)

func init() {
	register(command{name: "demo", summary: "ship an embedded kernel journal to an in-process server and verify the image", run: runDemo})
}

// The demo journal: a capture of the kernel's dm-log-writes target (see
// demo/README.md), and the sha256 and size of the guest's data disk after
// the run.
var (
	//go:embed demo/fsync-marks.log.zst
	demoJournal []byte
	//go:embed demo/fsync-marks.image
	demoImage string
)

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "[flags]",
		`Runs logship's main job on an embedded default, in a temporary directory:
a journal that the Linux kernel's dm-log-writes target recorded under ext4
(mkfs, then 20 steps of file operations, each followed by sync and a mark) is
shipped over --streams TCP streams on 127.0.0.1 to an in-process logship
server, which applies it window by window into its image. The image is then
compared with a local replay of the same journal, and with the checksum of
the data disk the kernel wrote. Exit status 1 if they differ.`)
	streams := fs.Int("streams", 4, "parallel TCP streams")
	keep := fs.Bool("keep", false, "keep the temporary directory (journal, server directory, replay)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *streams < 1 || *streams > parallel.MaxStreams {
		return usagef("--streams %d: want 1 to %d", *streams, parallel.MaxStreams)
	}
	var wantSum string
	var size int64
	if _, err := fmt.Sscanf(demoImage, "sha256 %s size %d", &wantSum, &size); err != nil {
		return fmt.Errorf("demo: embedded image description %q: %w", demoImage, err)
	}

	dir, err := os.MkdirTemp("", "logship-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	jpath := filepath.Join(dir, "fsync-marks.log")
	if err := unpackDemo(jpath); err != nil {
		return err
	}
	jr, err := openJournal(jpath)
	if err != nil {
		return err
	}
	jr.Close()
	fmt.Fprintf(e.stdout, "journal: %d entries, %s, %d-byte sectors, recorded by the Linux kernel's dm-log-writes target under ext4 (%s compressed in the binary)\n",
		jr.r.Len(), humanize.IBytes(uint64(jr.size)), jr.r.SectorSize(), humanize.IBytes(uint64(len(demoJournal))))

	// The server: replica on a loopback listener, as `logship serve --insecure`.
	srvDir := filepath.Join(dir, "server")
	var logs bytes.Buffer
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		fmt.Fprintf(&logs, "serve: "+format+"\n", args...)
		logMu.Unlock()
	}
	srv, err := replica.Open(ctx, replica.Config{Dir: srvDir, Logf: logf})
	if err != nil {
		return err
	}
	defer srv.Close()
	l, err := parallel.Listen("127.0.0.1:0", parallel.ServerConfig{Insecure: true, Handler: srv.Handle})
	if err != nil {
		return err
	}
	sctx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var serveErr error
	wg.Go(func() { serveErr = srv.Serve(sctx, l) })
	stop := func() error {
		stopServer()
		wg.Wait()
		l.Close()
		return serveErr
	}
	fmt.Fprintf(e.stdout, "server: in-process logship server on %s, directory %s\n", l.Addr(), srvDir)

	// The source: ship the journal as `logship ship --insecure` does.
	s, err := source.New(source.Config{
		Journal: jpath,
		Addr:    l.Addr().String(),
		Client:  parallel.ClientConfig{Task: "demo", Streams: *streams, Insecure: true},
		Size:    size,
		Log:     slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		stop()
		return err
	}
	st, err := s.Run(ctx)
	if serr := stop(); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		fmt.Fprint(e.stderr, logs.String())
		return fmt.Errorf("demo: shipping: %w", err)
	}
	secs := st.Elapsed.Seconds()
	fmt.Fprintf(e.stdout, "shipped: %d entries in %d windows, %s of entries (%s on the wire) over %d streams in %v (%s/s)\n",
		st.Entries, st.Windows, humanize.IBytes(uint64(st.Bytes)), humanize.IBytes(uint64(st.WireBytes)), st.Streams,
		st.Elapsed.Round(time.Millisecond), humanize.IBytes(uint64(float64(st.Bytes)/max(secs, 1e-9))))
	fmt.Fprintf(e.stdout, "  (a window is the run of entries up to a FLUSH, FUA or MARK: the server applies windows whole and in order, so its image is always a state the disk could have been in after a crash)\n")
	image := filepath.Join(srvDir, "demo", "image")
	fmt.Fprintf(e.stdout, "image: %s (%s), durable up to entry %d (window %d)\n", image, humanize.IBytes(uint64(size)), st.Durable.NextEntry, st.Durable.NextWindow)

	// The reference: a local replay of the same journal onto zeros.
	ref := filepath.Join(dir, "replay.img")
	start := time.Now()
	rs, err := replayDemo(ctx, jpath, ref, size)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "local replay: %d entries in %d windows onto %s in %v\n", rs.Entries, rs.Windows, ref, time.Since(start).Round(time.Millisecond))

	same, err := sameFiles(image, ref)
	if err != nil {
		return err
	}
	sum, err := sha256Of(image)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "image equals local replay: %s\n", yesNo(same))
	fmt.Fprintf(e.stdout, "image equals the guest's data disk (sha256 %s): %s\n", wantSum, yesNo(sum == wantSum))
	if *keep {
		fmt.Fprintf(e.stdout, "kept %s\n", dir)
	}
	if !same || sum != wantSum {
		return checkFailed{"the image differs from the reference"}
	}
	fmt.Fprint(e.stdout, demoNext)
	return nil
}

// demoNext is what the demo suggests trying after it.
const demoNext = `
Next, with a server of your own (docs/production.md has the whole setup):
  logship serve --listen 127.0.0.1:7000 --dir /tmp/logship-srv --insecure
  logship ship JOURNAL --to 127.0.0.1:7000 --task db --insecure --progress always
  logship status --to 127.0.0.1:7000 --insecure
  logship inspect --windows JOURNAL         the windows of a journal
  logship help COMMAND                      any command's flags
`

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// unpackDemo decompresses the embedded journal to path.
func unpackDemo(path string) error {
	zr, err := zstd.NewReader(bytes.NewReader(demoJournal))
	if err != nil {
		return fmt.Errorf("demo: embedded journal: %w", err)
	}
	defer zr.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, zr); err != nil {
		f.Close()
		return fmt.Errorf("demo: unpacking the embedded journal: %w", err)
	}
	return f.Close()
}

// replayDemo replays the journal at jpath onto a new file of size bytes.
func replayDemo(ctx context.Context, jpath, target string, size int64) (replay.Stats, error) {
	j, err := openJournal(jpath)
	if err != nil {
		return replay.Stats{}, err
	}
	defer j.Close()
	t, err := devio.Open(target, devio.Options{Create: true, Size: size})
	if err != nil {
		return replay.Stats{}, err
	}
	defer t.Close()
	st, err := replay.New(j.r, t, replay.Options{}).Run(ctx, journal.Stop{}, nil, nil)
	if err != nil {
		return st, j.wrap(err)
	}
	return st, t.Sync()
}

// sameFiles compares two files byte for byte.
func sameFiles(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF) {
			return ea == eb || errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF), nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

func sha256Of(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
