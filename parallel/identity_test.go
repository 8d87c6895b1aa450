package parallel

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// grants is an Authorize policy for the tests: identity -> task -> ok.
type grants struct {
	mu   sync.Mutex
	m    map[string]map[string]bool
	seen []string // "identity task" of every call
}

func (g *grants) authorize(identity, task string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, identity+" "+task)
	if g.m[identity][task] {
		return nil
	}
	return errors.New("not in /etc/logship/secret-policy.conf")
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "logship test CA")
	serverCert, _, _ := ca.issue(t, "server", true)
	clientCert, _, _ := ca.issue(t, "client", false)
	leaf := clientCert.Leaf
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	certID := "cert:sha256:" + hex.EncodeToString(sum[:])

	cases := []struct {
		name string
		scfg ServerConfig
		ccfg ClientConfig
		id   string
	}{
		{"tls", ServerConfig{TLS: ServerTLS(serverCert, ca.pool)}, ClientConfig{TLS: ClientTLS(clientCert, ca.pool, "")}, certID},
		{"psk", ServerConfig{PSK: psk}, ClientConfig{PSK: psk}, "psk:default"},
		{"insecure", ServerConfig{Insecure: true}, ClientConfig{Insecure: true}, "insecure"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &grants{m: map[string]map[string]bool{tc.id: {"granted": true}}}
			ref := make(refusals, 8)
			scfg := tc.scfg
			scfg.Authorize, scfg.OnRefuse = g.authorize, ref.hook
			l := listen(t, scfg)

			ccfg := tc.ccfg
			ccfg.Streams, ccfg.Task = 2, "granted"
			c := dial(t, l, ccfg)
			s := accept(t, l)
			if s.Identity() != tc.id {
				t.Fatalf("server session identity %q, want %q", s.Identity(), tc.id)
			}
			roundTrip(t, c, s)

			ccfg.Task = "other"
			_, err := Dial(testCtx(t), l.Addr().String(), ccfg)
			var re *RemoteError
			if !errors.Is(err, ErrForbidden) || !errors.As(err, &re) || re.Code != CodeForbidden {
				t.Fatalf("Dial for an ungranted task: %v, want FORBIDDEN", err)
			}
			if strings.Contains(re.Msg, "/etc/") || !strings.Contains(re.Msg, tc.id) {
				t.Fatalf("FORBIDDEN message %q: want the identity and no server detail", re.Msg)
			}
			if err := ref.wait(t); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "secret-policy") {
				t.Fatalf("server refused with %v, want ErrForbidden with the policy's reason", err)
			}
			noSession(t, l)
			g.mu.Lock()
			defer g.mu.Unlock()
			want := fmt.Sprintf("%s other", tc.id)
			found := false
			for _, s := range g.seen {
				found = found || s == want
			}
			if !found {
				t.Fatalf("Authorize calls %q, want one for %q", g.seen, want)
			}
		})
	}
}
