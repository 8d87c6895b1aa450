package proc

import (
	"fmt"
	"sync"
)

// Tail keeps the last max bytes written to it. It is safe for
// concurrent writers.
type Tail struct {
	mu      sync.Mutex
	max     int
	b       []byte
	dropped int64
}

// NewTail returns a Tail that keeps the last max bytes.
func NewTail(max int) *Tail { return &Tail{max: max} }

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.dropped += int64(over)
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

// Bytes is what was kept, after a line that says how much was dropped
// before it, if anything was.
func (t *Tail) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropped == 0 {
		return append([]byte(nil), t.b...)
	}
	return append([]byte(fmt.Sprintf("[... %d bytes before]\n", t.dropped)), t.b...)
}
