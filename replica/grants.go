package replica

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Grants say which tasks each client identity may use (serve --grants
// FILE). The file has one grant per line:
//
//	IDENTITY TASK-PATTERN...
//
// IDENTITY is what parallel.Session.Identity says of a peer:
// "cert:sha256:<hex>" for a client certificate (the SHA-256 of its public
// key), "psk:<name>" for a pre-shared key, "insecure" in insecure mode, or
// "*" for every identity. Each TASK-PATTERN is a task name or a path.Match
// pattern ("db-*", "web-?", "*" for every task). An identity may appear on
// several lines; its grants add up. Blank lines and lines starting with
// '#' are ignored. An identity that no line names is granted nothing: it
// may connect (status then lists no task) but may not open, read, write,
// hold or report for any task.
type Grants struct {
	rules map[string][]string // identity → patterns
}

// MaxGrantsFile bounds the size of a grants file.
const MaxGrantsFile = 1 << 20

// ParseGrants reads grants from r; name names it in errors.
func ParseGrants(r io.Reader, name string) (*Grants, error) {
	g := &Grants{rules: make(map[string][]string)}
	sc := bufio.NewScanner(io.LimitReader(r, MaxGrantsFile+1))
	sc.Buffer(make([]byte, 0, 4096), MaxGrantsFile+1)
	n, size := 0, 0
	for sc.Scan() {
		n++
		size += len(sc.Bytes()) + 1
		if size > MaxGrantsFile {
			return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxGrantsFile)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("%s line %d: want IDENTITY TASK-PATTERN..., got %q", name, n, line)
		}
		id := fields[0]
		if err := checkIdentity(id); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, n, err)
		}
		for _, p := range fields[1:] {
			if _, err := path.Match(p, ""); err != nil || strings.Contains(p, "/") {
				return nil, fmt.Errorf("%s line %d: task pattern %q is not a valid pattern (path.Match, no '/')", name, n, p)
			}
			g.rules[id] = append(g.rules[id], p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return g, nil
}

// checkIdentity refuses an identity that no peer can have.
func checkIdentity(id string) error {
	switch {
	case id == "*", id == "insecure":
		return nil
	case strings.HasPrefix(id, "cert:sha256:"):
		h := strings.TrimPrefix(id, "cert:sha256:")
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			return fmt.Errorf("identity %q: want cert:sha256: and 64 lower-case hex digits", id)
		}
		return nil
	case strings.HasPrefix(id, "psk:") && len(id) > len("psk:"):
		return nil
	}
	return fmt.Errorf("identity %q: want cert:sha256:<hex>, psk:<name>, insecure or *", id)
}

// LoadGrants reads the grants file at p.
func LoadGrants(p string) (*Grants, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("grants: %w", err)
	}
	defer f.Close()
	return ParseGrants(f, p)
}

// Allows reports whether identity may use task. Nil Grants allow every
// identity every task.
func (g *Grants) Allows(identity, task string) bool {
	if g == nil {
		return true
	}
	for _, id := range []string{identity, "*"} {
		for _, p := range g.rules[id] {
			if ok, _ := path.Match(p, task); ok {
				return true
			}
		}
	}
	return false
}

// Identities returns how many identities the grants name.
func (g *Grants) Identities() int {
	if g == nil {
		return 0
	}
	return len(g.rules)
}

// Authorize is the check to give the transport
// (parallel.ServerConfig.Authorize): a session that names a task is
// refused at its handshake unless its identity is granted the task. A
// session that names no task (status) is let in: it sees only the tasks
// its identity is granted.
func (srv *Server) Authorize(identity, task string) error {
	if task == "" || srv.cfg.Grants.Allows(identity, task) {
		return nil
	}
	return fmt.Errorf("%w: %s is not granted task %q", ErrForbidden, identity, task)
}
