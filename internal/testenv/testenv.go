// Package testenv gives tests the real services they run against: the MQTT
// broker and PostgreSQL named by OUTPOST_TEST_MQTT and OUTPOST_TEST_PG, or
// the embedded defaults (an in-process broker, SQLite) when those are unset.
// Tests never skip for a missing service: CI sets both variables.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost/internal/embedbroker"
)

// Environment variables naming external services.
const (
	EnvMQTT = "OUTPOST_TEST_MQTT" // e.g. tcp://127.0.0.1:1883
	EnvPG   = "OUTPOST_TEST_PG"   // e.g. postgres://postgres@127.0.0.1:5432/test
)

// MQTT returns a broker URL: OUTPOST_TEST_MQTT if set, else an embedded
// broker started for this test and stopped at its end.
func MQTT(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvMQTT); u != "" {
		return u
	}
	b, err := embedbroker.Start()
	if err != nil {
		t.Fatalf("testenv: start embedded broker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("testenv: close embedded broker: %v", err)
		}
	})
	return b.URL()
}

// ExternalMQTT reports whether tests run against an external broker.
func ExternalMQTT() bool { return os.Getenv(EnvMQTT) != "" }

// DB returns a database DSN for an ingest store: a fresh PostgreSQL schema
// (dropped at the end of the test) when OUTPOST_TEST_PG is set, else a
// SQLite file in the test's temp dir.
func DB(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPG)
	if base == "" {
		return "sqlite:" + filepath.Join(t.TempDir(), "ingest.db")
	}
	return PostgresSchema(t, base)
}

// PostgresSchema creates a schema with a random name in the database at
// base and returns a DSN whose search_path selects it.
func PostgresSchema(t testing.TB, base string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testenv: connect %s: %v", EnvPG, err)
	}
	defer conn.Close(context.Background())
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	schema := "t_" + hex.EncodeToString(rnd[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testenv: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("testenv: drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testenv: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: parse %s: %v", EnvPG, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
