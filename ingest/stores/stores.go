// Package stores opens an ingest store by DSN, so that binaries and tests
// choose a database with one string.
package stores

import (
	"context"
	"errors"
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
// Anything else with a scheme is an error, and so is libpq's key=value
// form ("host=… dbname=…"), which would otherwise name a SQLite file.
//
// On error the Store is nil (a nil interface, nothing to close): the store
// that failed has closed what it opened. Errors name the database (a
// PostgreSQL DSN's password never appears in them) and wrap the cause:
// *pgconn.PgError and *pgconn.ConnectError from PostgreSQL, fs.ErrNotExist
// or fs.ErrPermission for a SQLite file that cannot be created or opened.
func Open(ctx context.Context, dsn string, logger zerolog.Logger) (ingest.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		// Not "return postgres.Open(…)": a failed Open's (*Store)(nil)
		// would become a non-nil ingest.Store, and a caller's Close of
		// it would panic.
		s, err := postgres.Open(ctx, dsn, logger)
		if err != nil {
			return nil, err
		}
		return s, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"), logger)
	case dsn == "":
		return nil, fmt.Errorf("stores: empty DSN (want postgres://…, sqlite:PATH or a file path)")
	}
	if looksKeyValue(dsn) {
		// Not a file name: it would create one, named after the DSN and
		// its password. The DSN itself is not echoed, for that password.
		return nil, errors.New("stores: the DSN looks like PostgreSQL key=value settings; give a postgres:// URL (or sqlite:PATH for a file of that name)")
	}
	if scheme, _, ok := strings.Cut(dsn, ":"); ok && isScheme(scheme) && len(scheme) > 1 {
		// len > 1 keeps Windows drive letters (C:\…) as paths.
		return nil, fmt.Errorf("stores: unknown database scheme %q (want postgres://…, sqlite:PATH or a file path)", scheme)
	}
	return openSQLite(ctx, dsn, logger)
}

// openSQLite opens the SQLite store at path, returning a nil interface on
// error (see Open).
func openSQLite(ctx context.Context, path string, logger zerolog.Logger) (ingest.Store, error) {
	s, err := sqlite.Open(ctx, path, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// looksKeyValue reports whether dsn starts like libpq's key=value form
// ("host=… dbname=…"): a key of letters and underscores, then '='.
func looksKeyValue(dsn string) bool {
	key, _, ok := strings.Cut(dsn, "=")
	if !ok || key == "" {
		return false
	}
	for _, c := range key {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
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
