package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/sqlite"
	"github.com/outposthq/outpost/ingest/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlite.Open(ctx, path, zerolog.Nop())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ingest.Store {
		path := filepath.Join(t.TempDir(), "ingest.db")
		return sqlStore{Store: open(t, path), db: readDB(t, path)}
	})
}

// sqlStore is a Store with a connection of its own to its file, for the
// suite to read tables back (storetest.Querier).
type sqlStore struct {
	*sqlite.Store
	db *sql.DB
}

func (s sqlStore) QueryStrings(ctx context.Context, query string) ([]string, error) {
	return queryStrings(ctx, s.db, query)
}

func (s sqlStore) Close() error { return errors.Join(s.db.Close(), s.Store.Close()) }

// readDB opens a read-only connection to the database at path, closed
// by the caller.
func readDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// writeDB opens a writable connection of the test's own to the database
// at path, closed by the caller.
func writeDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func exec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func queryStrings(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rs, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var v string
		if err := rs.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rs.Err()
}

// A file from before annotations existed gets the column when opened,
// once; its alerts read back {} and new ones store theirs.
func TestMigrateAnnotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE alerts (gateway TEXT NOT NULL, rule TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
			severity TEXT NOT NULL, value REAL, labels TEXT NOT NULL, message TEXT NOT NULL, started_at INTEGER NOT NULL,
			ts INTEGER NOT NULL, seq INTEGER NOT NULL) STRICT`,
		`INSERT INTO alerts VALUES ('gw', 'hot', 'hot{}', 'firing', 'warning', 30, '{}', 'old', 1, 1, 1)`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second open finds the column
		s := open(t, path)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, path)
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	b := storetest.AlertBatch("gw", 1, 1, outpost.Alert{Rule: "hot", Fingerprint: "hot{}", State: outpost.StateResolved,
		ChangedAt: 2, Seq: 2, Annotations: map[string]string{"summary": "cooled"}})
	if _, err := s.Commit(context.Background(), b, 1); err != nil {
		t.Fatal(err)
	}
	db := readDB(t, path)
	defer db.Close()
	got, err := queryStrings(context.Background(), db, `SELECT annotations FROM alerts ORDER BY ts`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != `{} {"summary":"cooled"}` {
		t.Fatalf("annotations after migration: %q", got)
	}
}

// A file whose latest view is the one without unit and which has no
// sensor_labels table (an earlier release) gets both when opened.
func TestMigrateLatestUnit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s := open(t, path)
	commit(t, s, storetest.Telemetry("gw", 1, 1, storetest.Series("s", "t", storetest.T0, time.Second, 3, 0)...))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := writeDB(t, path)
	exec(t, db, `DROP TABLE sensor_labels`)
	exec(t, db, `DROP VIEW latest`)
	exec(t, db, `CREATE VIEW latest AS SELECT gateway, sensor, metric, last_ts AS ts, last_value AS value, last_quality AS quality
		FROM series WHERE last_ts IS NOT NULL`)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	pts, err := storetest.Collect(s.Latest(context.Background(), ingest.LatestQuery{Limit: 10}))
	if err != nil || len(pts) != 1 || pts[0].Unit != "Cel" {
		t.Fatalf("latest after reopening: %+v, %v; want one point in Cel", pts, err)
	}
	if err := s.SetGatewayStatus(context.Background(), "gw", "online", time.Unix(0, storetest.T0), []byte(`{}`),
		ingest.SensorLabels{"s": {"room": "lab"}}); err != nil {
		t.Fatal(err)
	}
	si, err := storetest.Collect(s.Series(context.Background(), ingest.SeriesQuery{Labels: map[string]string{"room": "lab"}, Limit: 10}))
	if err != nil || len(si) != 1 {
		t.Fatalf("series of room lab after a status: %+v, %v", si, err)
	}
}

// TestReopen checks that the schema is idempotent and data survives.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s := open(t, path)
	b := storetest.Telemetry("gw", 1, 1, storetest.Series("s", "t", storetest.T0, time.Second, 3, 0)...)
	if _, err := s.Commit(context.Background(), b, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	dup, err := s.Commit(context.Background(), b, 1)
	if err != nil || !dup {
		t.Fatalf("commit after reopen: dup %v, err %v; want a duplicate", dup, err)
	}
}

func TestOpenRejects(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := sqlite.Open(context.Background(), p, zerolog.Nop()); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		} else if !strings.HasPrefix(err.Error(), "sqlite: ") {
			t.Errorf("Open(%q) error %q lacks the package prefix", p, err)
		}
	}
}

// A failed Open returns no Store and an error naming the file once and
// wrapping the OS's reason; what it opened is closed (TestMain's goleak
// check) and an existing file is left as it was.
func TestOpenFails(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "not-a-database")
	garbage := bytes.Repeat([]byte("not sqlite "), 1000)
	if err := os.WriteFile(notDB, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
		is               error
	}{
		{"missing dir", filepath.Join(dir, "no", "such", "dir", "x.db"), "open database", fs.ErrNotExist},
		{"under a file", filepath.Join(notDB, "x.db"), "open database", syscall.ENOTDIR},
		{"a directory", dir, "open database", syscall.EISDIR},
		{"not a database", notDB, "create schema in", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlite.Open(context.Background(), tc.path, zerolog.Nop())
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if s != nil {
				t.Errorf("Open returned %p with its error", s)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "sqlite: "+tc.want+" ") || strings.Count(msg, tc.path) != 1 {
				t.Errorf("error %q: want \"sqlite: %s\" naming %s once", msg, tc.want, tc.path)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", msg, tc.is)
			}
		})
	}
	if b, err := os.ReadFile(notDB); err != nil || !bytes.Equal(b, garbage) {
		t.Errorf("the file that is not a database changed (err %v)", err)
	}
}

func TestOpenReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root, which ignores directory permissions; TestOpenFails covers the errors root gets too")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	p := filepath.Join(dir, "x.db")
	s, err := sqlite.Open(context.Background(), p, zerolog.Nop())
	if err == nil {
		s.Close()
		t.Fatal("Open in a read-only directory succeeded")
	}
	if !errors.Is(err, fs.ErrPermission) || strings.Count(err.Error(), p) != 1 {
		t.Errorf("error %q: want fs.ErrPermission, naming %s once", err, p)
	}
}

func TestCloseTwice(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "x.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func BenchmarkCommit(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	defer s.Close()
	storetest.BenchCommit(b, s)
}

func BenchmarkCommitParallel(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	defer s.Close()
	storetest.BenchCommitParallel(b, s)
}

func BenchmarkCommitGroup(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	defer s.Close()
	storetest.BenchCommitGroup(b, s, 16)
}
