package netbench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/logship/logship/journal"
)

// ErrBadWorkload: a workload that cannot be generated.
var ErrBadWorkload = errors.New("bench: bad workload")

// Workload is a synthetic journal for benchmark runs.
//
//	seq     sequential writes of 1 MiB over the device, a FLUSH after every
//	        16 (an fio or dd writer with periodic fsync)
//	rand4k  4 KiB writes at random 4 KiB-aligned offsets, a FLUSH after
//	        every 64 (a database's random writes with group commit)
//	fs      the shape of a kernel-captured ext4 journal (Shape): its
//	        entries in order (sectors, sizes, FLUSH, FUA, DISCARD, MARK),
//	        repeated until Size, every repetition with its payloads
//	        changed slightly so no two writes are alike but the data
//	        compresses as the file system's did
//
// seq and rand4k payloads are Compressible zeros and the rest random
// bytes, in every 4 KiB block, so that compression has something to do.
type Workload struct {
	Kind string
	Size int64 // payload bytes to write (at least one entry is written)
	// Device is the device size for seq and rand4k (Size if 0); seq wraps
	// around at its end.
	Device int64
	// Shape is the kernel journal fs repeats (a dm-log-writes log, or one
	// compressed with zstd, named *.zst).
	Shape        string
	Compressible float64 // fraction of zeros in each 4 KiB block (seq, rand4k)
	Seed         uint64
}

// Workload kinds.
var WorkloadKinds = []string{"seq", "rand4k", "fs"}

// Generated is a journal a Workload wrote.
type Generated struct {
	Path    string
	Entries int64
	Bytes   int64 // write payload bytes
	Device  int64 // the device size the journal needs (a multiple of 1 MiB)
}

const sector = 512

// Generate writes the workload's journal to path.
func (wl Workload) Generate(path string) (Generated, error) {
	g := Generated{Path: path}
	if wl.Size <= 0 {
		return g, fmt.Errorf("%w: size %d", ErrBadWorkload, wl.Size)
	}
	if wl.Compressible < 0 || wl.Compressible > 1 {
		return g, fmt.Errorf("%w: compressible %v, want 0 to 1", ErrBadWorkload, wl.Compressible)
	}
	f, err := os.Create(path)
	if err != nil {
		return g, err
	}
	defer f.Close()
	var ss int
	var gen func(w *journal.Writer) error
	switch wl.Kind {
	case "seq", "rand4k":
		ss = sector
		g.Device = roundUp(max(wl.Device, wl.Size), 1<<20)
		if wl.Device > 0 {
			g.Device = roundUp(wl.Device, 1<<20)
		}
		gen = func(w *journal.Writer) error { return wl.synth(w, &g) }
	case "fs":
		sh, err := loadShape(wl.Shape)
		if err != nil {
			return g, err
		}
		ss = sh.sectorSize
		g.Device = roundUp(sh.device, 1<<20)
		gen = func(w *journal.Writer) error { return wl.repeat(w, sh, &g) }
	default:
		return g, fmt.Errorf("%w: kind %q, want one of %s", ErrBadWorkload, wl.Kind, strings.Join(WorkloadKinds, ", "))
	}
	w, err := journal.NewWriter(f, ss)
	if err != nil {
		return g, err
	}
	if err := gen(w); err != nil {
		return g, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return g, fmt.Errorf("writing %s: %w", path, err)
	}
	g.Entries = int64(w.Entries())
	return g, f.Close()
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// synth writes seq or rand4k.
func (wl Workload) synth(w *journal.Writer, g *Generated) error {
	rng := rand.New(rand.NewChaCha8(seedBytes(wl.Seed)))
	size, every := int64(1<<20), 16
	if wl.Kind == "rand4k" {
		size, every = 4096, 64
	}
	buf := make([]byte, size)
	var off int64
	for n := 0; g.Bytes < wl.Size; n++ {
		fill(rng, buf, wl.Compressible)
		if wl.Kind == "rand4k" {
			off = rng.Int64N(g.Device/size) * size
		} else if off+size > g.Device {
			off = 0
		}
		if err := w.Write(uint64(off/sector), buf, 0); err != nil {
			return err
		}
		g.Bytes += size
		off += size
		if (n+1)%every == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(s[8:], "logship bench workload")
	return s
}

// fill makes every 4 KiB block of p random bytes followed by zeros (the
// fraction z of the block).
func fill(rng *rand.Rand, p []byte, z float64) {
	const block = 4096
	zeros := int(z * block)
	for b := 0; b < len(p); b += block {
		blk := p[b:min(b+block, len(p))]
		r := max(len(blk)-zeros, 0)
		for i := 0; i+8 <= r; i += 8 {
			binary.LittleEndian.PutUint64(blk[i:], rng.Uint64())
		}
		for i := r / 8 * 8; i < r; i++ {
			blk[i] = byte(rng.Uint32())
		}
		clear(blk[r:])
	}
}

// shape is a kernel journal's entries with their payloads.
type shape struct {
	sectorSize int
	device     int64
	entries    []journal.Entry
	data       [][]byte
	bytes      int64
}

// loadShape reads a journal (plain, or zstd-compressed if its name ends
// in .zst) into memory.
func loadShape(path string) (*shape, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: the fs workload needs a kernel journal to repeat (Shape)", ErrBadWorkload)
	}
	b, err := ReadJournal(path)
	if err != nil {
		return nil, err
	}
	r, err := journal.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sh := &shape{sectorSize: r.SectorSize()}
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if e.IsMark() && e.Label == "dm-log-writes-end" {
			continue
		}
		var d []byte
		if e.IsWrite() {
			d = make([]byte, e.PayloadLen())
			if err := r.ReadPayload(e, d); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			sh.bytes += int64(len(d))
		}
		sh.entries = append(sh.entries, e)
		sh.data = append(sh.data, d)
		sh.device = max(sh.device, e.End())
	}
	if sh.bytes == 0 {
		return nil, fmt.Errorf("%w: %s has no writes to repeat", ErrBadWorkload, path)
	}
	return sh, nil
}

// repeat writes the shape's entries again and again until wl.Size bytes
// of payload are written. Repetition k > 0 XORs k into the first 8 bytes
// of every sector of every payload.
func (wl Workload) repeat(w *journal.Writer, sh *shape, g *Generated) error {
	var buf []byte
	for k := uint64(0); g.Bytes < wl.Size; k++ {
		for i, e := range sh.entries {
			if g.Bytes >= wl.Size && e.IsWrite() {
				break
			}
			d := sh.data[i]
			if k > 0 && len(d) > 0 {
				buf = append(buf[:0], d...)
				for s := 0; s+8 <= len(buf); s += sh.sectorSize {
					binary.LittleEndian.PutUint64(buf[s:], binary.LittleEndian.Uint64(buf[s:])^k)
				}
				d = buf
			}
			if err := w.Append(journal.Entry{Sector: e.Sector, NrSectors: e.NrSectors, Flags: e.Flags, Label: e.Label}, d); err != nil {
				return fmt.Errorf("entry %d of the shape: %w", e.Index, err)
			}
			g.Bytes += int64(len(d))
		}
	}
	return w.Flush()
}

// ReadJournal reads a journal file into memory, decompressing it when its
// name ends in .zst (as the committed kernel captures are), and checks its
// superblock.
func ReadJournal(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(path, ".zst") {
		zr, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		if b, err = zr.DecodeAll(b, nil); err != nil {
			return nil, fmt.Errorf("decompressing %s: %w", path, err)
		}
	}
	if _, err := journal.NewReader(bytes.NewReader(b), int64(len(b))); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
