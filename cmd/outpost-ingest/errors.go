package main

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// dbHint says what an operator can do about a failure to open the
// database, or "".
func dbHint(dsn string, err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "3D000": // invalid_catalog_name
			return "create the database first (createdb), or point --db at one that exists"
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			return "check the user and password in --db, and pg_hba.conf"
		case "42501": // insufficient_privilege
			return "the user in --db needs the right to create tables in the database (the schema is created at start)"
		}
	}
	postgres := strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
	switch {
	case postgres && errors.Is(err, syscall.ECONNREFUSED):
		return "is PostgreSQL running and listening at the address in --db?"
	case !postgres && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOENT)):
		return "the SQLite file's directory must exist"
	case !postgres && errors.Is(err, fs.ErrPermission):
		return "this user must be able to write the SQLite file and its directory"
	}
	return ""
}
