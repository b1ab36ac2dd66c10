package sqlite

import (
	"fmt"
	"math"

	"modernc.org/sqlite/vtab"

	"github.com/outposthq/outpost/ingest/internal/chunk"
)

// unpackName is the name of the virtual table module that decodes a
// series chunk in SQL, and of the virtual table the schema creates with
// it (see the package doc): outpost_chunk_unpack(data) is a table-valued
// function yielding one row (ts, value, quality) per reading of the
// chunk, as chunk.Decode does, a NaN value as NULL.
const unpackName = "outpost_chunk_unpack"

func init() {
	// Registered before any connection is opened: modernc reads its
	// module list, without a lock, whenever it opens a connection.
	if err := vtab.RegisterModule(nil, unpackName, unpackModule{}); err != nil {
		panic(fmt.Sprintf("sqlite: register %s: %v", unpackName, err))
	}
}

// unpackModule implements the outpost_chunk_unpack virtual table: read
// only, with a hidden column data that the table-valued function's
// argument sets.
type unpackModule struct{}

// The columns of the virtual table, in the order Declare gives them.
const (
	colTS = iota
	colValue
	colQuality
	colData
)

func (unpackModule) Create(ctx vtab.Context, _ []string) (vtab.Table, error) {
	return declareUnpack(ctx)
}

func (unpackModule) Connect(ctx vtab.Context, _ []string) (vtab.Table, error) {
	return declareUnpack(ctx)
}

// VolatileArgs lets Filter read the chunk in SQLite's memory, without a
// copy: Filter decodes it at once and keeps nothing of it.
func (unpackModule) VolatileArgs() bool { return true }

func declareUnpack(ctx vtab.Context) (vtab.Table, error) {
	if err := ctx.Declare(`CREATE TABLE x(ts INTEGER, value REAL, quality INTEGER, data BLOB HIDDEN)`); err != nil {
		return nil, err
	}
	return unpackTable{}, nil
}

type unpackTable struct{}

// Plans: unpackChunk when data = ? is given (the function's argument),
// else unpackNothing, which yields no rows and costs so much that SQLite
// picks it only when there is no other way.
const (
	unpackNothing = 0
	unpackChunk   = 1
)

func (unpackTable) BestIndex(info *vtab.IndexInfo) error {
	for i, c := range info.Constraints {
		if c.Column == colData && c.Op == vtab.OpEQ && c.Usable {
			info.Constraints[i].ArgIndex = 0
			info.Constraints[i].Omit = true
			info.IdxNum = unpackChunk
			info.EstimatedCost = 1000
			info.EstimatedRows = 1000
			return nil
		}
	}
	info.IdxNum = unpackNothing
	info.EstimatedCost = math.MaxFloat64 / 4
	info.EstimatedRows = math.MaxInt64 / 4
	return nil
}

func (unpackTable) Open() (vtab.Cursor, error) { return &unpackCursor{}, nil }
func (unpackTable) Disconnect() error          { return nil }
func (unpackTable) Destroy() error             { return nil }

// unpackCursor holds the decoded readings of one chunk; its slices are
// reused by the next Filter.
type unpackCursor struct {
	ts      []int64
	values  []float64
	quality []byte // empty: all good
	i       int
}

func (c *unpackCursor) Filter(idxNum int, _ string, vals []vtab.Value) error {
	c.ts, c.values, c.quality, c.i = c.ts[:0], c.values[:0], c.quality[:0], 0
	if idxNum != unpackChunk || len(vals) != 1 || vals[0] == nil {
		return nil // no chunk (NULL): no readings
	}
	var p []byte
	switch v := vals[0].(type) {
	case []byte:
		p = v
	case string:
		p = []byte(v)
	default:
		return fmt.Errorf("%s: data is %T, want a BLOB", unpackName, v)
	}
	var err error
	if c.ts, c.values, c.quality, err = chunk.Decode(p, c.ts, c.values, c.quality); err != nil {
		c.ts, c.values, c.quality = c.ts[:0], c.values[:0], c.quality[:0]
		return fmt.Errorf("%s: %w", unpackName, err)
	}
	return nil
}

func (c *unpackCursor) Next() error {
	c.i++
	return nil
}

func (c *unpackCursor) Eof() bool { return c.i >= len(c.ts) }

func (c *unpackCursor) Column(col int) (vtab.Value, error) {
	if c.i >= len(c.ts) {
		return nil, fmt.Errorf("%s: no current row", unpackName)
	}
	switch col {
	case colTS:
		return c.ts[c.i], nil
	case colValue:
		return value(c.values[c.i]), nil
	case colQuality:
		if len(c.quality) == 0 {
			return int64(0), nil
		}
		return int64(c.quality[c.i]), nil
	}
	return nil, nil // data: not kept
}

func (c *unpackCursor) Rowid() (int64, error) { return int64(c.i), nil }

func (c *unpackCursor) Close() error { return nil }
