package exectest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/internal/testenv"
)

// gatewayConfig is a gateway with one sim sensor; its broker is never
// reached before the failures these tests make.
const gatewayConfig = `gateway:
  id: gw-exectest
sensors:
  - id: s1
    driver: sim
    metrics:
      - {name: temperature, unit: Cel, signal: {kind: constant, value: 20}}
uplink:
  broker: tcp://127.0.0.1:1
`

// sharedDir is a directory that every user can read: a gateway run as
// another user must read its config there. It is removed at the end of t.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "outpost-exectest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func write(t *testing.T, path, body string, perm os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return path
}

// unprivileged returns the credentials of an ordinary user to run a
// binary as, when the tests run as root (as on CI), so that permissions
// are enforced; nil when they run as an ordinary user already.
func unprivileged(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("running as root, and no user nobody to drop to: %v", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("user nobody: uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Every failure before the gateway's pipeline runs is one line on stderr
// that names what failed and what to do, exit status 1 (2 for an invalid
// config), and no crash.
func TestGatewayStartFailures(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) (args []string, cred *syscall.Credential)
		code  int
		want  []string // each must appear in the last line of stderr
	}{
		{
			// The README's own example, --data-dir /var/lib/outpost, as a
			// user who may not create it.
			name: "data dir cannot be created",
			setup: func(t *testing.T, dir string) ([]string, *syscall.Credential) {
				parent := filepath.Join(dir, "varlib")
				if err := os.Mkdir(parent, 0o755); err != nil {
					t.Fatal(err)
				}
				cred := unprivileged(t)
				if cred == nil {
					if err := os.Chmod(parent, 0o555); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { os.Chmod(parent, 0o755) })
				}
				return []string{"--data-dir", filepath.Join(parent, "outpost")}, cred
			},
			code: 1,
			want: []string{"outpost: cannot open data dir " + "DIR/varlib/outpost: permission denied", "run as a user that owns the data dir, or pass --data-dir"},
		},
		{
			name: "data dir not writable",
			setup: func(t *testing.T, dir string) ([]string, *syscall.Credential) {
				data := filepath.Join(dir, "data")
				if err := os.Mkdir(data, 0o755); err != nil {
					t.Fatal(err)
				}
				cred := unprivileged(t)
				if cred == nil {
					if err := os.Chmod(data, 0o555); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { os.Chmod(data, 0o755) })
				}
				return []string{"--data-dir", data}, cred
			},
			code: 1,
			want: []string{"outpost: cannot open outbox DIR/data/outbox.db: permission denied", "run as a user that owns the data dir, or pass --data-dir"},
		},
		{
			name: "data dir is a file",
			setup: func(t *testing.T, dir string) ([]string, *syscall.Credential) {
				f := write(t, filepath.Join(dir, "file"), "", 0o644)
				return []string{"--data-dir", filepath.Join(f, "data")}, nil
			},
			code: 1,
			want: []string{"outpost: cannot open data dir DIR/file/data: mkdir DIR/file: not a directory", "--data-dir must name a directory"},
		},
		{
			name: "outbox held by another gateway",
			setup: func(t *testing.T, dir string) ([]string, *syscall.Credential) {
				data := filepath.Join(dir, "data")
				if err := os.Mkdir(data, 0o755); err != nil {
					t.Fatal(err)
				}
				ob, err := buffer.Open(filepath.Join(data, "outbox.db"), &buffer.Options{NoSync: true})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ob.Close() })
				return []string{"--data-dir", data}, nil
			},
			code: 1,
			want: []string{"outpost: cannot open outbox DIR/data/outbox.db", "in use by another process", fmt.Sprintf("pid %d", os.Getpid()),
				"another gateway runs on this data dir"},
		},
		{
			name: "metrics port taken",
			setup: func(t *testing.T, dir string) ([]string, *syscall.Credential) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				write(t, filepath.Join(dir, "gw.yaml"), gatewayConfig+"metrics: {listen: \""+ln.Addr().String()+"\"}\n", 0o644)
				return []string{"--data-dir", filepath.Join(dir, "data")}, nil
			},
			code: 1,
			want: []string{"outpost: cannot open metrics listener 127.0.0.1:", ": bind: address already in use", "choose another metrics.listen port"},
		},
		{
			name: "metrics listen without a host",
			setup: func(t *testing.T, dir string) ([]string, *syscall.Credential) {
				write(t, filepath.Join(dir, "gw.yaml"), gatewayConfig+"metrics: {listen: \":9464\"}\n", 0o644)
				return []string{"--data-dir", filepath.Join(dir, "data")}, nil
			},
			code: 2,
			want: []string{"gw.yaml:10:19: metrics.listen: needs a host"},
		},
		{
			name: "ca_file is not PEM",
			setup: func(t *testing.T, dir string) ([]string, *syscall.Credential) {
				write(t, filepath.Join(dir, "ca.pem"), "this is not a certificate\n", 0o644)
				cfg := strings.Replace(gatewayConfig, "tcp://127.0.0.1:1\n", "ssl://127.0.0.1:1\n  tls: {ca_file: ca.pem}\n", 1)
				write(t, filepath.Join(dir, "gw.yaml"), cfg, 0o644)
				return []string{"--data-dir", filepath.Join(dir, "data")}, nil
			},
			code: 2,
			want: []string{"gw.yaml:10:", "uplink.tls.ca_file", "no PEM certificate"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := sharedDir(t)
			cfgPath := filepath.Join(dir, "gw.yaml")
			write(t, cfgPath, gatewayConfig, 0o644)
			args, cred := c.setup(t, dir)
			cmd := command(t, "outpost", append([]string{"run", "--config", cfgPath}, args...)...)
			if cred != nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			}
			r := runCmd(t, cmd)
			if r.code != c.code {
				t.Fatalf("want exit %d\n%s", c.code, r)
			}
			line := lastLine(r.stderr)
			for _, w := range c.want {
				w = strings.ReplaceAll(w, "DIR", dir)
				if !strings.Contains(line, w) {
					t.Errorf("last line of stderr lacks %q\n%s", w, r)
				}
			}
			if c.code == 2 {
				// outpost check finds it too, without running anything.
				chk := runBin(t, "outpost", append([]string{"check", "--config", cfgPath}, args...)...)
				if chk.code != 2 || !strings.Contains(chk.stderr, c.want[len(c.want)-1]) {
					t.Errorf("outpost check does not catch it\n%s", chk)
				}
			}
		})
	}
}

// outpost check catches, without running, the files the uplink would fail
// on: an unreadable password file.
func TestCheckUnreadablePasswordFile(t *testing.T) {
	dir := sharedDir(t)
	write(t, filepath.Join(dir, "mqtt.pw"), "s3cret-pw\n", 0o600)
	cfg := strings.Replace(gatewayConfig, "tcp://127.0.0.1:1\n", "tcp://127.0.0.1:1\n  username: gw\n  password_file: mqtt.pw\n", 1)
	cfgPath := write(t, filepath.Join(dir, "gw.yaml"), cfg, 0o644)
	cred := unprivileged(t)
	if cred == nil {
		if err := os.Chmod(filepath.Join(dir, "mqtt.pw"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"check", "run"} {
		cmd := command(t, "outpost", sub, "--config", cfgPath, "--data-dir", filepath.Join(dir, "data"))
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		r := runCmd(t, cmd)
		if r.code != 2 || !strings.Contains(r.stderr, "gw.yaml:11:") || !strings.Contains(r.stderr, "password_file") ||
			!strings.Contains(r.stderr, "permission denied") {
			t.Errorf("%s: want exit 2 and a positioned password_file error\n%s", sub, r)
		}
		if strings.Contains(r.stdout+r.stderr, "s3cret") {
			t.Errorf("%s: the password appears in the output\n%s", sub, r)
		}
	}
}

// outpost-ingest names the database (without its password) and says what
// to do when it cannot open it; it exits 1 and does not crash.
func TestIngestStartFailures(t *testing.T) {
	type tc struct {
		name string
		args []string
		want []string
	}
	dir := t.TempDir()
	cases := []tc{
		{"sqlite dir missing", []string{"--db", "sqlite:" + filepath.Join(dir, "missing", "x.db")},
			[]string{"outpost-ingest: cannot start: open database sqlite:" + filepath.Join(dir, "missing", "x.db")}},
		{"unknown scheme", []string{"--db", "mysql://root@localhost/x"}, []string{"outpost-ingest: cannot start: open database", `unknown database scheme "mysql"`}},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cases = append(cases, tc{"http port taken",
		[]string{"--db", "sqlite:" + filepath.Join(dir, "ok.db"), "--http", ln.Addr().String()},
		[]string{"outpost-ingest: cannot start: http api: listen tcp " + ln.Addr().String(), "address already in use", "pass another --http address"}})
	if base := os.Getenv(testenv.EnvPG); base != "" {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/outpost_exectest_no_such_db"
		u.User = url.UserPassword(u.User.Username(), "hunter2")
		cases = append(cases, tc{"postgres database missing", []string{"--db", u.String()},
			[]string{`database "outpost_exectest_no_such_db" does not exist`, "create the database first", ":xxxxx@"}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--broker", "tcp://127.0.0.1:1", "--http", "", "--log-level", "warn"}, c.args...)
			r := runBin(t, "outpost-ingest", args...)
			if r.code != 1 {
				t.Fatalf("want exit 1\n%s", r)
			}
			line := lastLine(r.stderr)
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("last line of stderr lacks %q\n%s", w, r)
				}
			}
			if strings.Contains(r.stderr, "hunter2") {
				t.Errorf("the database password appears on stderr\n%s", r)
			}
		})
	}
}
