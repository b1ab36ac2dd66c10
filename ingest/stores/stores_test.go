package stores_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{"sqlite:" + filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")} {
		s, err := stores.Open(context.Background(), dsn, zerolog.Nop())
		if err != nil {
			t.Fatalf("Open(%q): %v", dsn, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, dsn := range []string{"", "mysql://u@h/db", "redis:6379", "file:x.db",
		"host=localhost user=u password=hunter2 dbname=d"} {
		s, err := stores.Open(context.Background(), dsn, zerolog.Nop())
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if s != nil {
			t.Errorf("Open(%q) returned a non-nil store %#v with its error", dsn, s)
		}
		if !strings.Contains(err.Error(), "postgres://") && !strings.HasPrefix(err.Error(), "sqlite: ") {
			t.Errorf("Open(%q): unclear error %q", dsn, err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q): error shows the password: %q", dsn, err)
		}
	}
}

// A store that fails to open is a nil ingest.Store (not a typed nil a
// caller would Close), its error says what failed, and nothing it
// started is left running (TestMain's goleak check).
func TestOpenFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")
	pgDSN, pgCheck := missingPostgres(t)
	for _, tc := range []struct {
		name  string
		dsn   string
		check func(t *testing.T, err error)
	}{
		{"postgres", pgDSN, pgCheck},
		{"sqlite missing dir", "sqlite:" + missing, func(t *testing.T, err error) {
			wantPathErr(t, err, missing, fs.ErrNotExist)
		}},
		{"sqlite under a file", "sqlite:" + filepath.Join(file, "x.db"), func(t *testing.T, err error) {
			wantPathErr(t, err, filepath.Join(file, "x.db"), nil)
		}},
		{"sqlite path is a directory", filepath.Dir(file), func(t *testing.T, err error) {
			wantPathErr(t, err, filepath.Dir(file), nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := stores.Open(ctx, tc.dsn, zerolog.Nop())
			if s != nil {
				t.Errorf("store is %#v, want a nil interface", s)
			}
			if err == nil {
				t.Fatal("Open succeeded")
			}
			tc.check(t, err)
		})
	}
}

// missingPostgres returns the DSN of a PostgreSQL database that does not
// exist, with a password in it, and the check of Open's error. With
// OUTPOST_TEST_PG set, it is a random database name on that server: the
// error must be the server's "does not exist" (an unreachable server fails
// the test). Without, it is a closed port on the loopback interface.
func missingPostgres(t *testing.T) (string, func(*testing.T, error)) {
	t.Helper()
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	db := "outpost_nosuch_" + hex.EncodeToString(rnd[:])
	base := os.Getenv(testenv.EnvPG)
	if base == "" {
		return "postgres://outpost:pw-" + db + "@" + closedPort(t) + "/" + db + "?connect_timeout=1&sslmode=disable",
			func(t *testing.T, err error) {
				t.Helper()
				noPassword(t, err, "pw-"+db)
				var ce *pgconn.ConnectError
				if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "postgres: ") ||
					!strings.Contains(err.Error(), "database="+db) {
					t.Errorf("error %q: want a postgres connect error naming the database", err)
				}
			}
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", testenv.EnvPG, err)
	}
	u.Path = "/" + db
	password, ok := u.User.Password()
	if !ok {
		// A server that trusts the login ignores it; it must not show.
		password = "pw-" + db
		u.User = url.UserPassword(u.User.Username(), password)
	}
	return u.String(), func(t *testing.T, err error) {
		t.Helper()
		noPassword(t, err, password)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "3D000" {
			t.Fatalf("error %q: want PostgreSQL's invalid_catalog_name (3D000); is %s reachable?", err, testenv.EnvPG)
		}
		if !strings.HasPrefix(err.Error(), "postgres: ") || !strings.Contains(err.Error(), db) {
			t.Errorf("error %q does not name the database", err)
		}
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port))
}

func noPassword(t *testing.T, err error, password string) {
	t.Helper()
	if password != "" && strings.Contains(err.Error(), password) {
		t.Errorf("error shows the DSN's password: %q", err)
	}
}

// wantPathErr checks a SQLite open error: prefixed, naming path once,
// wrapping target (when not nil).
func wantPathErr(t *testing.T, err error, path string, target error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "sqlite: open database ") || strings.Count(msg, path) != 1 {
		t.Errorf("error %q: want \"sqlite: open database\" naming %s once", msg, path)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q does not wrap %v", msg, target)
	}
}
