// Package stores opens an ingest store by DSN, so that binaries and tests
// choose a database with one string.
package stores

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/postgres"
	"github.com/outposthq/outpost/ingest/sqlite"
)

// Open opens the store that dsn names:
//
//	postgres://… or postgresql://…   PostgreSQL (ingest/postgres)
//	sqlite:PATH                       SQLite file at PATH (ingest/sqlite)
//	PATH (no scheme)                  SQLite file at PATH
//
// Anything else with a scheme is an error.
func Open(ctx context.Context, dsn string, logger zerolog.Logger) (ingest.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn, logger)
	case strings.HasPrefix(dsn, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite:"), logger)
	case dsn == "":
		return nil, fmt.Errorf("stores: empty DSN (want postgres://…, sqlite:PATH or a file path)")
	}
	if scheme, _, ok := strings.Cut(dsn, ":"); ok && isScheme(scheme) && len(scheme) > 1 {
		// len > 1 keeps Windows drive letters (C:\…) as paths.
		return nil, fmt.Errorf("stores: unknown database scheme %q (want postgres://…, sqlite:PATH or a file path)", scheme)
	}
	return sqlite.Open(ctx, dsn, logger)
}

// isScheme reports whether s looks like a URL scheme (RFC 3986).
func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}
