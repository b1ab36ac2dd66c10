package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/postgres"
	"github.com/outposthq/outpost/ingest/storetest"
	"github.com/outposthq/outpost/internal/testenv"
)

// dsn returns a fresh schema's DSN. There is no embedded PostgreSQL: without
// OUTPOST_TEST_PG these tests skip (CI sets it, so there they always run).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func dsn(t testing.TB) string {
	t.Helper()
	base := os.Getenv(testenv.EnvPG)
	if base == "" {
		t.Skipf("%s is not set: no PostgreSQL to test against", testenv.EnvPG)
	}
	return testenv.PostgresSchema(t, base)
}

func open(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn, zerolog.Nop())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	if os.Getenv(testenv.EnvPG) == "" {
		t.Skipf("%s is not set: no PostgreSQL to test against", testenv.EnvPG)
	}
	storetest.Run(t, func(t *testing.T) ingest.Store {
		d := dsn(t)
		return sqlStore{Store: open(t, d), conn: connect(t, d)}
	})
}

// sqlStore is a Store with a connection of its own to its schema, for the
// suite to read tables back (storetest.Querier).
type sqlStore struct {
	*postgres.Store
	conn *pgx.Conn
}

func (s sqlStore) QueryStrings(ctx context.Context, query string) ([]string, error) {
	return queryStrings(ctx, s.conn, query)
}

func (s sqlStore) Close() error {
	return errors.Join(s.conn.Close(context.Background()), s.Store.Close())
}

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

func queryStrings(ctx context.Context, c *pgx.Conn, query string) ([]string, error) {
	rs, err := c.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rs, pgx.RowTo[string])
}

// A schema from before annotations existed gets the column when opened;
// its alerts read back {} and new ones store theirs.
func TestMigrateAnnotations(t *testing.T) {
	d := dsn(t)
	c := connect(t, d)
	defer c.Close(context.Background())
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE alerts (gateway text NOT NULL, rule text NOT NULL, fingerprint text NOT NULL, state text NOT NULL,
			severity text NOT NULL, value double precision NOT NULL, labels jsonb NOT NULL, message text NOT NULL,
			started_at bigint NOT NULL, ts bigint NOT NULL, seq bigint NOT NULL)`,
		`INSERT INTO alerts VALUES ('gw', 'hot', 'hot{}', 'firing', 'warning', 30, '{}', 'old', 1, 1, 1)`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, d)
	if err := open(t, d).Close(); err != nil { // the second open finds the column
		t.Fatal(err)
	}
	defer s.Close()
	b := storetest.AlertBatch("gw", 1, 1, outpost.Alert{Rule: "hot", Fingerprint: "hot{}", State: outpost.StateResolved,
		ChangedAt: 2, Seq: 2, Annotations: map[string]string{"summary": "cooled"}})
	if _, err := s.Commit(ctx, b, 1); err != nil {
		t.Fatal(err)
	}
	got, err := queryStrings(ctx, c, `SELECT annotations::text FROM alerts ORDER BY ts`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != `{} {"summary": "cooled"}` {
		t.Fatalf("annotations after migration: %q", got)
	}
}

// A database whose latest view lacks unit and which has no
// sensor_labels table (an earlier release) gets both when opened.
func TestMigrateLatestUnit(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	s := open(t, d)
	if _, err := s.Commit(ctx, storetest.Telemetry("gw", 1, 1, storetest.Series("s", "t", storetest.T0, time.Second, 3, 0)...), 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	c := connect(t, d)
	defer c.Close(ctx)
	for _, q := range []string{
		`DROP TABLE sensor_labels`,
		`DROP VIEW latest`,
		`CREATE VIEW latest AS SELECT gateway, sensor, metric, last_ts AS ts, last_value AS value, last_quality AS quality
			FROM series WHERE last_ts IS NOT NULL`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s = open(t, d)
	defer s.Close()
	pts, err := storetest.Collect(s.Latest(ctx, ingest.LatestQuery{Limit: 10}))
	if err != nil || len(pts) != 1 || pts[0].Unit != "Cel" {
		t.Fatalf("latest after reopening: %+v, %v; want one point in Cel", pts, err)
	}
	if err := s.SetGatewayStatus(ctx, "gw", "online", time.Unix(0, storetest.T0), []byte(`{}`), ingest.SensorLabels{"s": {"room": "lab"}}); err != nil {
		t.Fatal(err)
	}
	got, err := queryStrings(ctx, c, `SELECT labels::text FROM series`)
	if err != nil || len(got) != 1 || got[0] != `{"room": "lab"}` {
		t.Fatalf("series labels after a status: %q, %v", got, err)
	}
}

// TestReopen checks that the schema is idempotent and data survives.
func TestReopen(t *testing.T) {
	d := dsn(t)
	s := open(t, d)
	b := storetest.Telemetry("gw", 1, 1, storetest.Series("s", "t", storetest.T0, time.Second, 3, 0)...)
	if _, err := s.Commit(context.Background(), b, 1); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, d) // a second process on the same schema
	defer s2.Close()
	s.Close()
	dup, err := s2.Commit(context.Background(), b, 1)
	if err != nil || !dup {
		t.Fatalf("commit after reopen: dup %v, err %v; want a duplicate", dup, err)
	}
}

// TestInvalidData checks that data PostgreSQL refuses is reported as
// ingest.ErrInvalidData (the service dead-letters it) and nothing is kept.
func TestInvalidData(t *testing.T) {
	s := open(t, dsn(t))
	defer s.Close()
	b := storetest.Telemetry("gw", 1, 1, storetest.Series("bad\x00sensor", "t", storetest.T0, time.Second, 3, 0)...)
	if _, err := s.Commit(context.Background(), b, 1); !errors.Is(err, ingest.ErrInvalidData) {
		t.Fatalf("commit of a NUL sensor id: %v, want ErrInvalidData", err)
	}
	b = storetest.Telemetry("gw", 1, 1, storetest.Series("s", "t", storetest.T0, time.Second, 3, 0)...)
	if dup, err := s.Commit(context.Background(), b, 1); err != nil || dup {
		t.Fatalf("commit after a refused one: dup %v, err %v", dup, err)
	}
	if err := s.SetGatewayStatus(context.Background(), "gw", "online", time.Now(), []byte("not json"), nil); !errors.Is(err, ingest.ErrInvalidData) {
		t.Fatalf("status with a non-JSON payload: %v, want ErrInvalidData", err)
	}
}

// A failed Open returns no Store and an error that says what failed
// without the DSN's password, whichever form the DSN takes.
func TestOpenFails(t *testing.T) {
	const pw = "hunter2-secret"
	for _, tc := range []struct{ name, dsn, want string }{
		// Port 1 on loopback: connection refused at once.
		{"unreachable URL", "postgres://postgres:" + pw + "@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
			"failed to connect to `user=postgres database=test`"},
		{"unreachable key=value", "host=127.0.0.1 port=1 user=postgres password=" + pw + " dbname=test connect_timeout=2",
			"failed to connect to `user=postgres database=test`"},
		{"bad sslmode", "postgres://postgres:" + pw + "@127.0.0.1:1/test?sslmode=bogus", "parse dsn"},
		{"bad port key=value", "host=127.0.0.1 port=99999 user=postgres password='" + pw + "' dbname=test", "invalid port"},
		{"bad escape in password", "postgres://postgres:" + pw + "%zz@127.0.0.1:1/test", "parse dsn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := postgres.Open(ctx, tc.dsn, zerolog.Nop())
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if s != nil {
				t.Errorf("Open returned %p with its error", s)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "postgres: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want \"postgres: …%s…\"", msg, tc.want)
			}
			if strings.Contains(msg, pw) {
				t.Errorf("error shows the password: %q", msg)
			}
		})
	}
}

// A migration that fails after the pool connected closes the pool: no
// Store, no connection or goroutine left (TestMain's goleak check).
func TestOpenMigrationFails(t *testing.T) {
	base := os.Getenv(testenv.EnvPG)
	if base == "" {
		t.Skipf("%s is not set: no PostgreSQL to test against", testenv.EnvPG)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "outpost_no_such_schema") // nowhere to create the tables
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, u.String(), zerolog.Nop())
	if err == nil {
		s.Close()
		t.Fatal("Open with no schema to create tables in succeeded")
	}
	if s != nil {
		t.Errorf("Open returned %p with its error", s)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "postgres: create schema: ") {
		t.Errorf("error %q, want PostgreSQL's refusal to create the tables", err)
	}
}

func TestCloseTwice(t *testing.T) {
	s := open(t, dsn(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func BenchmarkCommit(b *testing.B) {
	s := open(b, dsn(b))
	defer s.Close()
	storetest.BenchCommit(b, s)
}

func BenchmarkCommitParallel(b *testing.B) {
	s := open(b, dsn(b))
	defer s.Close()
	storetest.BenchCommitParallel(b, s)
}
