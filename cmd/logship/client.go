package main

import (
	"github.com/spf13/pflag"

	"github.com/logship/logship/parallel"
)

// authFlags choose how a client authenticates to the server: TLS, a
// pre-shared key, or nothing (--insecure, loopback only). Every client
// command has them: ship, sync, verify, recover, status, task, rotate.
type authFlags struct {
	tlsCert, tlsKey, ca, pskFile *string
	insecure                     *bool
}

func addAuthFlags(fs *pflag.FlagSet) authFlags {
	return authFlags{
		tlsCert:  fs.String("tls-cert", "", "client certificate (PEM)"),
		tlsKey:   fs.String("tls-key", "", "client key (PEM)"),
		ca:       fs.String("ca", "", "CA certificates to verify the server with (PEM; default: the system's)"),
		pskFile:  fs.String("psk-file", "", "file holding this client's pre-shared key (bare, or one NAME:KEY line; mode 0600)"),
		insecure: fs.Bool("insecure", false, "no authentication, plaintext (loopback addresses only)"),
	}
}

// apply checks that exactly one way was chosen and sets it in c: TLS, PSK
// or Insecure.
func (f authFlags) apply(c *parallel.ClientConfig) error {
	tlsOn := *f.tlsCert != "" || *f.tlsKey != "" || *f.ca != ""
	n := 0
	for _, on := range []bool{tlsOn, *f.pskFile != "", *f.insecure} {
		if on {
			n++
		}
	}
	if n != 1 {
		return usagef("choose one authentication: --tls-cert/--tls-key [--ca], --psk-file or --insecure (%d given)", n)
	}
	var err error
	switch {
	case tlsOn:
		if *f.tlsCert == "" || *f.tlsKey == "" {
			return usagef("TLS needs --tls-cert and --tls-key (and --ca unless the system's CAs sign the server)")
		}
		c.TLS, err = parallel.LoadClientTLS(*f.tlsCert, *f.tlsKey, *f.ca)
	case *f.pskFile != "":
		var k parallel.Key
		k, err = parallel.LoadClientKey(*f.pskFile)
		c.PSK, c.PSKName = k.Secret, k.Name
	default:
		c.Insecure = true
	}
	return err
}

// clientFlags are the connection flags of the commands that open a session
// on a task: ship, sync, verify and recover.
type clientFlags struct {
	addr, from, task *string
	streams          *int
	compress         *string
	auth             authFlags
}

// The server is --to for every command; recover also takes --from, its
// old name.
func addClientFlags(fs *pflag.FlagSet) clientFlags {
	return clientFlags{
		addr:     fs.String("to", "", "server address, host:port"),
		task:     fs.String("task", "", "task name on the server"),
		streams:  fs.Int("streams", parallel.DefaultStreams, "parallel TCP streams"),
		compress: fs.String("compress", "none", "compress frames: zstd or none"),
		auth:     addAuthFlags(fs),
	}
}

// addFromAlias adds --from, the old name of --to (recover).
func (f *clientFlags) addFromAlias(fs *pflag.FlagSet) {
	f.from = fs.String("from", "", "the same as --to")
	fs.MarkHidden("from")
}

// config checks the flags and returns the server's address and the client
// configuration.
func (f clientFlags) config() (string, parallel.ClientConfig, error) {
	var c parallel.ClientConfig
	if f.from != nil && *f.from != "" {
		if *f.addr != "" && *f.addr != *f.from {
			return "", c, usagef("--to %q and --from %q: give the server once", *f.addr, *f.from)
		}
		*f.addr = *f.from
	}
	if err := checkServer("to", *f.addr, *f.task); err != nil {
		return "", c, err
	}
	if *f.streams < 1 || *f.streams > parallel.MaxStreams {
		return "", c, usagef("--streams %d: want 1 to %d", *f.streams, parallel.MaxStreams)
	}
	c.Task, c.Streams = *f.task, *f.streams
	var err error
	if c.Compress, err = parseCompress(*f.compress); err != nil {
		return "", c, err
	}
	if err := f.auth.apply(&c); err != nil {
		return "", c, err
	}
	return *f.addr, c, nil
}

// parseCompress reads --compress: zstd or none.
func parseCompress(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return choose("compress", s, []named[bool]{{"zstd", true}, {"none", false}})
}
