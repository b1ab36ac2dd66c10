package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// MaxFileBytes bounds the files the config names and config reads: the
// TLS PEM files and the password file. A larger one is an error, found
// before it is read.
const MaxFileBytes = 1 << 20

// checkFiles reads the TLS files as the uplink will, so that a check
// finds what would fail at connection time: a CA file with no
// certificate, a client certificate and key that do not load or do not
// match, a client certificate that has expired.
func (t *TLSConfig) checkFiles(k *checker) {
	const (
		caPath   = "$.uplink.tls.ca_file"
		certPath = "$.uplink.tls.cert_file"
		keyPath  = "$.uplink.tls.key_file"
	)
	if t.CAFile != "" {
		if b, ok := k.read(caPath, t.CAFile); ok && !x509.NewCertPool().AppendCertsFromPEM(b) {
			k.errorf(caPath, "%s: no PEM certificate found", t.CAFile)
		}
	}
	var certPEM, keyPEM []byte
	certOK, keyOK := false, false
	if t.CertFile != "" {
		certPEM, certOK = k.read(certPath, t.CertFile)
	}
	if t.KeyFile != "" {
		keyPEM, keyOK = k.read(keyPath, t.KeyFile)
	}
	if !certOK {
		return
	}
	leaf, err := firstCertificate(certPEM)
	if err != nil {
		k.errorf(certPath, "%s: %v", t.CertFile, err)
		return
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		// Not before NotBefore: a device without a real-time clock may
		// boot in the past, and its clock is set once it is online.
		k.errorf(certPath, "%s: the certificate expired on %s; a broker will refuse it",
			t.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if keyOK {
		// Its errors say what is wrong, never what the key holds.
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			k.errorf(keyPath, "%s: %v", t.KeyFile, err)
		}
	}
}

// firstCertificate parses the first certificate of a PEM file: the
// client's own, the one its key must match.
func firstCertificate(b []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM certificate found")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// read reads the file name, reporting at path why it cannot.
func (k *checker) read(path, name string) ([]byte, bool) {
	b, err := readFile(name)
	if err != nil {
		k.errorf(path, "%v", err)
		return nil, false
	}
	return b, true
}

// readFile reads the regular file name, of at most MaxFileBytes. Its
// errors never hold the file's content.
func readFile(name string) ([]byte, error) {
	// Stat first: opening a FIFO would wait for a writer.
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		return nil, err
	case fi.IsDir():
		return nil, fmt.Errorf("%q is a directory", name)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%q is not a regular file", name)
	case fi.Size() > MaxFileBytes:
		return nil, fmt.Errorf("%q is larger than %v", name, ByteSize(MaxFileBytes))
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close() // read-only: nothing to flush
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	switch {
	case err != nil:
		return nil, err
	case len(b) > MaxFileBytes:
		return nil, fmt.Errorf("%q is larger than %v", name, ByteSize(MaxFileBytes))
	}
	return b, nil
}
