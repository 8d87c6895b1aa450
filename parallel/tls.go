package parallel

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ServerTLS returns a server TLS configuration for certificate cert that
// accepts only TLS 1.3 and only clients whose certificate verifies against
// clientCAs.
func ServerTLS(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
	}
}

// ClientTLS returns a client TLS configuration presenting cert and
// verifying the server against rootCAs (the system pool if nil).
// serverName may be empty: Dial then uses the host of the address.
func ClientTLS(cert tls.Certificate, rootCAs *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      rootCAs,
		ServerName:   serverName,
	}
}

// LoadServerTLS reads a PEM certificate and key and a PEM file of client
// CA certificates (logship serve --tls-cert --tls-key --client-ca).
func LoadServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("parallel: %w", err)
	}
	pool, err := loadPool(clientCAFile)
	if err != nil {
		return nil, err
	}
	return ServerTLS(cert, pool), nil
}

// LoadClientTLS reads a PEM certificate and key and, if caFile is not
// empty, a PEM file of CA certificates to verify the server with.
func LoadClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("parallel: %w", err)
	}
	var pool *x509.CertPool
	if caFile != "" {
		if pool, err = loadPool(caFile); err != nil {
			return nil, err
		}
	}
	return ClientTLS(cert, pool, ""), nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("parallel: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("parallel: %s: no PEM certificates", file)
	}
	return pool, nil
}

// serverTLS hardens a caller's server configuration: TLS 1.3 only and a
// verified client certificate required.
func serverTLS(c *tls.Config) (*tls.Config, error) {
	c = c.Clone()
	c.MinVersion = tls.VersionTLS13
	c.ClientAuth = tls.RequireAndVerifyClientCert
	if c.ClientCAs == nil {
		return nil, fmt.Errorf("%w: TLS server configuration has no client CA pool", ErrAuth)
	}
	if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		return nil, fmt.Errorf("%w: TLS server configuration has no certificate", ErrAuth)
	}
	return c, nil
}

// clientTLS hardens a caller's client configuration: TLS 1.3 only, a
// client certificate present, the server name defaulting to host.
func clientTLS(c *tls.Config, host string) (*tls.Config, error) {
	c = c.Clone()
	c.MinVersion = tls.VersionTLS13
	if c.InsecureSkipVerify {
		return nil, fmt.Errorf("%w: TLS client configuration skips server verification", ErrAuth)
	}
	if len(c.Certificates) == 0 && c.GetClientCertificate == nil {
		return nil, fmt.Errorf("%w: TLS client configuration has no client certificate", ErrAuth)
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c, nil
}
