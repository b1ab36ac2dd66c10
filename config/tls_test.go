package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTLSFiles writes into dir a CA (ca.pem), a client certificate it
// signed with its key (client.pem, client.key), an expired one
// (expired.pem, expired.key), a key of no certificate (other.key) and a
// file with no PEM in it (junk.pem).
func writeTLSFiles(t *testing.T, dir string) {
	t.Helper()
	now := time.Now()
	key := func() *ecdsa.PrivateKey {
		t.Helper()
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) {
		t.Helper()
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(name, "PRIVATE KEY", der)
	}
	caKey := key()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", "CERTIFICATE", caDER)
	client := func(name string, serial int64, notAfter time.Time) {
		t.Helper()
		k := key()
		c := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "gw-01"},
			NotBefore: now.Add(-2 * time.Hour), NotAfter: notAfter,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, c, ca, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		writeKey(name+".key", k)
	}
	client("client", 2, now.Add(time.Hour))
	client("expired", 3, now.Add(-time.Hour))
	writeKey("other.key", key())
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tls string
		want      string // "" for none; else the error, with <dir>
	}{
		{"ca and client", "{ca_file: ca.pem, cert_file: client.pem, key_file: client.key}", ""},
		{"ca only", "{ca_file: ca.pem}", ""},
		{"ca without certificate", "{ca_file: junk.pem}",
			"gw.yaml:10:18: uplink.tls.ca_file: <dir>/junk.pem: no PEM certificate found"},
		{"ca holding a key", "{ca_file: client.key}",
			"gw.yaml:10:18: uplink.tls.ca_file: <dir>/client.key: no PEM certificate found"},
		{"missing ca", "{ca_file: nope.pem}",
			"gw.yaml:10:18: uplink.tls.ca_file: stat <dir>/nope.pem: no such file or directory"},
		{"ca a directory", "{ca_file: adir}",
			`gw.yaml:10:18: uplink.tls.ca_file: "<dir>/adir" is a directory`},
		{"cert without certificate", "{cert_file: junk.pem, key_file: client.key}",
			"gw.yaml:10:20: uplink.tls.cert_file: <dir>/junk.pem: no PEM certificate found"},
		{"key of another certificate", "{cert_file: client.pem, key_file: other.key}",
			"gw.yaml:10:42: uplink.tls.key_file: <dir>/other.key: tls: private key does not match public key"},
		{"certificate for a key", "{cert_file: client.pem, key_file: client.pem}",
			"gw.yaml:10:42: uplink.tls.key_file: <dir>/client.pem: tls: found a certificate rather than a key in the PEM for the private key"},
		{"expired", "{cert_file: expired.pem, key_file: expired.key}",
			"gw.yaml:10:20: uplink.tls.cert_file: <dir>/expired.pem: the certificate expired on "},
		{"missing key", "{cert_file: client.pem, key_file: nope.key}",
			"gw.yaml:10:42: uplink.tls.key_file: stat <dir>/nope.key: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(minimal, "tcp://", "ssl://", 1) + "  tls: " + tc.tls + "\n"
			_, err := parse(filepath.Join(dir, "gw.yaml"), []byte(src), nil)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			got := err.Error()
			if want := dir + string(filepath.Separator) + strings.ReplaceAll(tc.want, "<dir>", dir); !strings.HasPrefix(got, want) || strings.Contains(got, "\n") {
				t.Errorf("got\n%s\nwant one error starting\n%s", got, want)
			}
			if strings.Contains(got, "BEGIN") {
				t.Errorf("the error shows a file's content: %s", got)
			}
		})
	}
}

func TestPasswordFile(t *testing.T) {
	const secret = "s3cret-do-not-show"
	dir := writeFiles(t, map[string]string{"pw": secret + "\n", "big": strings.Repeat(secret, MaxFileBytes/len(secret)+1)})
	locked := filepath.Join(dir, "locked")
	if err := os.WriteFile(locked, []byte(secret), 0o000); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, want string
		unreadable       bool // a 0-permission file: meaningless as root
	}{
		{"readable", "pw", "", false},
		{"missing", "nope", "gw.yaml:10:18: uplink.password_file: stat <dir>/nope: no such file or directory", false},
		{"directory", ".", `gw.yaml:10:18: uplink.password_file: "<dir>" is a directory`, false},
		{"too large", "big", `gw.yaml:10:18: uplink.password_file: "<dir>/big" is larger than 1MiB`, false},
		{"no permission", "locked", "gw.yaml:10:18: uplink.password_file: open <dir>/locked: permission denied", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.unreadable && os.Geteuid() == 0 {
				t.Skip("running as root, which may read any file: a 0-permission file tells nothing")
			}
			src := minimal + "  password_file: " + tc.file + "\n"
			c, err := parse(filepath.Join(dir, "gw.yaml"), []byte(src), nil)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p, err := c.Uplink.Password(); err != nil || p != secret {
					t.Fatalf("Password() = %q, %v", p, err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			got := err.Error()
			if want := dir + string(filepath.Separator) + strings.ReplaceAll(tc.want, "<dir>", dir); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			if strings.Contains(got, secret) {
				t.Errorf("the error shows the password: %s", got)
			}
			u := UplinkConfig{PasswordFile: filepath.Join(dir, tc.file)}
			if _, err := u.Password(); err == nil || strings.Contains(err.Error(), secret) {
				t.Errorf("Password() error %v", err)
			}
		})
	}
}
