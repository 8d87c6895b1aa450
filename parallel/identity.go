package parallel

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
)

// Identities of authenticated peers (Session.Identity, ServerConfig.Authorize).
const (
	// IdentityInsecure is the identity of every peer in insecure mode.
	IdentityInsecure = "insecure"
	// identityCertPrefix prefixes the hex SHA-256 of a certificate's
	// SubjectPublicKeyInfo.
	identityCertPrefix = "cert:sha256:"
	// identityPSKPrefix prefixes the name of a pre-shared key.
	identityPSKPrefix = "psk:"
)

// CertIdentity is the identity of a peer that presented cert in TLS mode:
// "cert:sha256:" and the lower-case hex SHA-256 of the certificate's
// DER-encoded SubjectPublicKeyInfo. It names the key, not the certificate,
// so it survives a renewal that keeps the key. `openssl x509 -pubkey
// -noout -in cert.pem | openssl pkey -pubin -outform der | sha256sum`
// prints the same hex.
func CertIdentity(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return identityCertPrefix + hex.EncodeToString(sum[:])
}

// PSKIdentity is the identity of a peer that proved it holds the
// pre-shared key named name: "psk:" and the name.
func PSKIdentity(name string) string { return identityPSKPrefix + name }

// Identity returns the authenticated identity of the peer: CertIdentity of
// its certificate in TLS mode, PSKIdentity of the key it proved in PSK
// mode, IdentityInsecure in insecure mode. It is printable ASCII.
func (s *Session) Identity() string { return s.streams[0].c.identity }

// authorize asks cfg.Authorize whether identity may use task. The error
// wraps ErrForbidden and the reason; only the identity and the task are
// sent to the peer.
func authorize(cfg *ServerConfig, identity, task string) error {
	if cfg.Authorize == nil {
		return nil
	}
	if err := cfg.Authorize(identity, task); err != nil {
		return fmt.Errorf("%w: %s may not use task %q: %w", ErrForbidden, identity, task, err)
	}
	return nil
}

// forbiddenMessage is what the client is told of a refusal by Authorize.
func forbiddenMessage(identity, task string) string {
	return fmt.Sprintf("%s is not granted task %q", identity, task)
}

// DefaultKeyName is the name of a pre-shared key given without a name (a
// key file holding one bare key): its identity is "psk:default".
const DefaultKeyName = "default"
