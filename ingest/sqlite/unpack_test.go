package sqlite_test

import (
	"database/sql"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/ingest/internal/chunk"
)

type unpacked struct {
	ts      int64
	value   sql.NullFloat64
	quality int64
}

func unpackRows(t *testing.T, db *sql.DB, q string, args ...any) ([]unpacked, error) {
	t.Helper()
	rs, err := db.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []unpacked
	for rs.Next() {
		var u unpacked
		if err := rs.Scan(&u.ts, &u.value, &u.quality); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rs.Err()
}

// outpost_chunk_unpack, on any connection of the process (not only the
// store's), decodes a chunk into its rows as chunk.Decode does, NaN as
// NULL; a NULL chunk has no rows; a damaged one, or a value that is no
// BLOB, is an error.
func TestUnpackFunction(t *testing.T) {
	db := writeDB(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	exec(t, db, `CREATE VIRTUAL TABLE outpost_chunk_unpack USING outpost_chunk_unpack`)
	ts := []int64{-5, 1e9, 2e9, 2e9, math.MaxInt64}
	vs := []float64{1.25, math.NaN(), math.Inf(-1), math.Copysign(0, -1), 1e300}
	for _, q := range [][]byte{nil, {0, 1, 2, 0, 1}} {
		p, err := chunk.Append(nil, ts, vs, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := unpackRows(t, db, `SELECT ts, value, quality FROM outpost_chunk_unpack(?)`, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ts) {
			t.Fatalf("%d rows, want %d", len(got), len(ts))
		}
		for i, u := range got {
			wq := int64(0)
			if q != nil {
				wq = int64(q[i])
			}
			if u.ts != ts[i] || u.quality != wq || u.value.Valid == math.IsNaN(vs[i]) || u.value.Valid && u.value.Float64 != vs[i] {
				t.Errorf("row %d = %+v, want %d %v %d", i, u, ts[i], vs[i], wq)
			}
		}
	}

	// In a join, one chunk per row of the outer table.
	exec(t, db, `CREATE TABLE c (id INTEGER, data BLOB)`)
	p1, _ := chunk.Append(nil, []int64{1, 2}, []float64{10, 20}, nil)
	p2, _ := chunk.Append(nil, []int64{3}, []float64{30}, []byte{2})
	exec(t, db, `INSERT INTO c VALUES (1, ?), (2, ?), (3, NULL)`, p1, p2)
	got, err := unpackRows(t, db, `SELECT u.ts, u.value, u.quality FROM c CROSS JOIN outpost_chunk_unpack(c.data) u ORDER BY c.id, u.ts`)
	if err != nil || len(got) != 3 || got[2].quality != 2 || got[1].value.Float64 != 20 {
		t.Fatalf("join: %+v, %v", got, err)
	}

	for _, tc := range []struct {
		name string
		arg  any
		rows int
		err  string
	}{
		{"null", nil, 0, ""},
		{"empty", []byte{}, 0, "corrupt"},
		{"truncated", p1[:len(p1)-1], 0, "corrupt"},
		{"version 3", append([]byte{3}, p1[1:]...), 0, "corrupt"},
		{"hostile count", []byte{1, 0xff, 0xff, 0x3f, 0}, 0, "corrupt"},
		{"integer", 7, 0, "want a BLOB"},
		{"real", 1.5, 0, "want a BLOB"},
	} {
		got, err := unpackRows(t, db, `SELECT ts, value, quality FROM outpost_chunk_unpack(?)`, tc.arg)
		switch {
		case tc.err == "" && (err != nil || len(got) != tc.rows):
			t.Errorf("%s: %d rows, %v", tc.name, len(got), err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), "outpost_chunk_unpack: ") || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.err)
		}
	}
	// Without an argument it has no rows.
	if got, err := unpackRows(t, db, `SELECT ts, value, quality FROM outpost_chunk_unpack`); err != nil || len(got) != 0 {
		t.Errorf("without an argument: %+v, %v", got, err)
	}
	// Read only.
	if _, err := db.Exec(`INSERT INTO outpost_chunk_unpack (ts, value, quality) VALUES (1, 1, 0)`); err == nil {
		t.Error("insert into outpost_chunk_unpack succeeded")
	}
}
