package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/internal/testenv"
)

// The commit retries the series upsert's race by the name of the unique
// constraint it fails on: that name must be the one the schema makes, and
// nothing else may pass for the race.
func TestSeriesRaceConstraint(t *testing.T) {
	base := os.Getenv(testenv.EnvPG)
	if base == "" {
		t.Skipf("%s is not set: no PostgreSQL to test against", testenv.EnvPG)
	}
	dsn := testenv.PostgresSchema(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var name string
	if err := s.pool.QueryRow(ctx, `SELECT conname::text FROM pg_constraint
		WHERE conrelid = 'series'::regclass AND contype = 'u'`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if name != seriesKeyConstraint {
		t.Fatalf("series' unique key is %q, the retry looks for %q", name, seriesKeyConstraint)
	}
	// A real violation of it reads as the race; another one does not.
	_, err = s.pool.Exec(ctx, `INSERT INTO series (gateway, sensor, metric) VALUES ('g', 's', 'm'), ('g', 's', 'm')`)
	if !seriesRace(err) {
		t.Fatalf("a duplicate series key: %v, not taken for the race", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO batches (gateway, epoch, seq, received_at, n, kind, bytes)
		VALUES ('g', 1, 1, 0, 0, 'telemetry', 0), ('g', 1, 1, 0, 0, 'telemetry', 0)`)
	if err == nil || seriesRace(err) {
		t.Fatalf("a duplicate batch: %v, taken for the race", err)
	}
	if seriesRace(fmt.Errorf("wrapped: %w", pgx.ErrNoRows)) {
		t.Fatal("another error taken for the race")
	}
}
