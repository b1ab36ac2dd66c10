package chunk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outposthq/outpost/internal/testenv"
)

// pgConn connects to a fresh schema of the PostgreSQL named by
// OUTPOST_TEST_PG, with outpost_chunk_unpack created in it. Without the
// variable the test skips: there is no embedded PostgreSQL.
func pgConn(t testing.TB) *pgx.Conn {
	t.Helper()
	base := os.Getenv(testenv.EnvPG)
	if base == "" {
		t.Skipf("%s is not set: no PostgreSQL to test against", testenv.EnvPG)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, testenv.PostgresSchema(t, base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	if _, err := c.Exec(ctx, UnpackSQL); err != nil {
		t.Fatalf("create function: %v", err)
	}
	return c
}

// unpack decodes p in PostgreSQL, each value as its float8send bits.
func unpack(ctx context.Context, c *pgx.Conn, p []byte) (ts []int64, bits []uint64, q []byte, err error) {
	return query(ctx, c, `SELECT u.ts, float8send(u.value), u.quality
		FROM outpost_chunk_unpack($1) WITH ORDINALITY AS u(ts, value, quality, i) ORDER BY u.i`, p)
}

// query runs a query for rows of (ts, float8send(value), quality).
func query(ctx context.Context, c *pgx.Conn, sql string, args ...any) (ts []int64, bits []uint64, q []byte, err error) {
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, nil, err
	}
	for rows.Next() {
		var t int64
		var b []byte
		var qq int16
		if err := rows.Scan(&t, &b, &qq); err != nil {
			return nil, nil, nil, err
		}
		if len(b) != 8 {
			return nil, nil, nil, errors.New("float8send: not 8 bytes")
		}
		var u uint64
		for _, c := range b { // big-endian
			u = u<<8 | uint64(c)
		}
		ts, bits, q = append(ts, t), append(bits, u), append(q, byte(qq))
	}
	return ts, bits, q, rows.Err()
}

// sameSQL compares what SQL decoded with what Decode did: timestamps and
// quality equal, values equal bit for bit, NaN for NaN.
func sameSQL(t *testing.T, p []byte, ts []int64, bits []uint64, q []byte) {
	t.Helper()
	wts, wvs, wq, err := Decode(p, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != len(wts) {
		t.Fatalf("%d rows, want %d", len(ts), len(wts))
	}
	bad := 0
	for i := range wts {
		w := math.Float64bits(wvs[i])
		wantQ := byte(0)
		if wq != nil {
			wantQ = wq[i]
		}
		okV := bits[i] == w || math.IsNaN(wvs[i]) && math.IsNaN(math.Float64frombits(bits[i]))
		if ts[i] != wts[i] || !okV || q[i] != wantQ {
			if bad++; bad <= 5 {
				t.Errorf("row %d: ts %d value %#016x (%v) quality %d, want %d %#016x (%v) %d",
					i, ts[i], bits[i], math.Float64frombits(bits[i]), q[i], wts[i], w, wvs[i], wantQ)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%d rows differ", bad)
	}
}

func TestUnpackSQL(t *testing.T) {
	c := pgConn(t)
	for _, f := range formats {
		for _, rt := range roundTrips() {
			t.Run(f.name+"/"+rt.name, func(t *testing.T) {
				p, err := f.append(nil, rt.ts, rt.values, rt.quality)
				if err != nil {
					t.Fatal(err)
				}
				ts, bits, q, err := unpack(context.Background(), c, p)
				if err != nil {
					t.Fatal(err)
				}
				sameSQL(t, p, ts, bits, q)
			})
		}
	}
}

// Random series of mixed values (decimals of every exponent, float32s,
// float64s, NaN, ±0, ±Inf), times and quality, in both formats: SQL
// reads them as Decode does.
func TestUnpackSQLRandom(t *testing.T) {
	c := pgConn(t)
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range 300 {
		n := 1 + rng.IntN(60)
		ts := make([]int64, n)
		vs := make([]float64, n)
		var q []byte
		if rng.IntN(4) == 0 {
			q = make([]byte, n)
		}
		step, t0 := []int64{1, 1e3, 1e9, 60e9}[rng.IntN(4)], rng.Int64N(1<<62)-1<<61
		for j := range n {
			ts[j] = t0 + int64(j)*step + rng.Int64N(3)*step/2
			switch rng.IntN(7) {
			case 0, 1:
				e := rng.IntN(maxExp-minExp+1) + minExp
				vs[j] = unscale(rng.Int64N(1<<rng.IntN(54)), e)
			case 2:
				vs[j] = float64(float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))))
			case 3:
				vs[j] = rng.NormFloat64()
			case 4:
				vs[j] = []float64{math.NaN(), 0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1)}[rng.IntN(5)]
			default:
				if j > 0 {
					vs[j] = vs[j-1]
				}
			}
			if q != nil {
				q[j] = byte(rng.IntN(3))
			}
		}
		for _, f := range formats {
			p, err := f.append(nil, ts, vs, q)
			if err != nil {
				t.Fatalf("%d: %v", i, err)
			}
			gts, bits, gq, err := unpack(context.Background(), c, p)
			if err != nil {
				t.Fatalf("%d %s: % x: %v", i, f.name, p, err)
			}
			sameSQL(t, p, gts, bits, gq)
		}
	}
}

// Damaged chunks of both formats: SQL refuses what Decode refuses and
// reads what it reads, the same. The damage is random but seeded: one
// byte changed, inserted or removed, or the chunk cut short.
func TestUnpackSQLMutations(t *testing.T) {
	c := pgConn(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	var accepted, refused int
	var origs [][]byte
	for _, f := range formats {
		for _, rt := range roundTrips() {
			if len(rt.ts) > 100 {
				continue
			}
			orig, err := f.append(nil, rt.ts, rt.values, rt.quality)
			if err != nil {
				t.Fatal(err)
			}
			origs = append(origs, orig)
		}
	}
	for _, m := range malformedV2() {
		if len(m.p) > 0 {
			origs = append(origs, m.p)
		}
	}
	// Every raw kind, short enough to be damaged often.
	for _, rt := range roundTrips() {
		if rt.name == "float32" || rt.name == "raw floats" {
			for _, kind := range []int{kindRaw64, kindRaw32, kindXOR64, kindXOR32} {
				if _, ok := toFloat32(rt.values[0]); ok || kind == kindRaw64 || kind == kindXOR64 {
					origs = append(origs, rawChunk(kind, rt.values[:7]))
				}
			}
		}
	}
	for _, orig := range origs {
		for range 60 {
			p := slices.Clone(orig)
			i := rng.IntN(len(p))
			switch rng.IntN(4) {
			case 0:
				p[i] = byte(rng.IntN(256))
			case 1:
				p = slices.Insert(p, i, byte(rng.IntN(256)))
			case 2:
				p = slices.Delete(p, i, i+1)
			case 3:
				p = p[:i]
			}
			_, _, _, derr := Decode(p, nil, nil, nil)
			ts, bits, q, err := unpack(ctx, c, p)
			switch {
			case derr == nil && err == nil:
				accepted++
				sameSQL(t, p, ts, bits, q)
			case derr != nil && err != nil:
				refused++
			default:
				t.Errorf("% x: Decode: %v, SQL: %v", p, derr, err)
			}
		}
	}
	t.Logf("%d damaged chunks read the same, %d refused by both", accepted, refused)
}

// The function over a table of chunks, behind a view: stored chunks
// over 2 kB are compressed and moved out of line (TOAST), and must read
// the same.
func TestUnpackSQLView(t *testing.T) {
	c := pgConn(t)
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE chunks (name text PRIMARY KEY, data bytea NOT NULL)`,
		`CREATE VIEW readings AS SELECT c.name, r.ts, r.value, r.quality, r.i
			FROM chunks c CROSS JOIN LATERAL outpost_chunk_unpack(c.data) WITH ORDINALITY AS r(ts, value, quality, i)`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	chunks := map[string][]byte{}
	for _, f := range formats {
		for _, rt := range roundTrips() {
			p, err := f.append(nil, rt.ts, rt.values, rt.quality)
			if err != nil {
				t.Fatal(err)
			}
			name := f.name + "/" + rt.name
			chunks[name] = p
			if _, err := c.Exec(ctx, `INSERT INTO chunks VALUES ($1, $2)`, name, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	var toasted int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM chunks WHERE pg_column_size(data) < octet_length(data)`).Scan(&toasted); err != nil {
		t.Fatal(err)
	}
	if toasted == 0 {
		t.Error("no chunk is stored compressed: the test does not test that")
	}
	for name, p := range chunks {
		ts, bits, q, err := query(ctx, c, `SELECT ts, float8send(value), quality FROM readings WHERE name = $1 ORDER BY i`, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameSQL(t, p, ts, bits, q)
	}
}

// Every exponent field, with fractions at both ends and between, and
// both signs: the raw floats SQL rebuilds by arithmetic, as format 1
// and every raw kind of format 2 store them, float64 and float32.
func TestUnpackSQLEveryExponent(t *testing.T) {
	c := pgConn(t)
	var vs []float64
	for ex := range uint64(2048) {
		for _, frac := range []uint64{0, 1, 0x8_0000_0000_0000, 0xf_ffff_ffff_ffff, 0x5_5555_5555_5555} {
			for _, sign := range []uint64{0, 1 << 63} {
				vs = append(vs, math.Float64frombits(sign|ex<<52|frac))
			}
		}
	}
	var vs32 []float64
	for ex := range uint32(256) {
		for _, frac := range []uint32{0, 1, 0x40_0000, 0x7f_ffff, 0x55_5555, 0x00_0f00} {
			for _, sign := range []uint32{0, 1 << 31} {
				vs32 = append(vs32, math.Float64frombits(fromFloat32(sign|ex<<23|frac)))
			}
		}
	}
	p, err := appendV1(nil, regular(len(vs), t0, 1e9), vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, e := sectionsV1(t, p); e != 127 {
		t.Fatalf("e = %d, want raw", e)
	}
	chunks := map[string][]byte{"v1": p}
	for _, kind := range []int{kindRaw64, kindXOR64} {
		chunks[fmt.Sprint("kind ", kind)] = rawChunk(kind, vs)
	}
	for _, kind := range []int{kindRaw64, kindRaw32, kindXOR64, kindXOR32} {
		chunks[fmt.Sprint("float32 kind ", kind)] = rawChunk(kind, vs32)
	}
	for name, p := range chunks {
		t.Run(name, func(t *testing.T) {
			ts, bits, q, err := unpack(context.Background(), c, p)
			if err != nil {
				t.Fatal(err)
			}
			sameSQL(t, p, ts, bits, q)
		})
	}
}

// rawChunk is a format 2 chunk of the values, a second apart, in one raw
// run of the kind.
func rawChunk(kind int, vs []float64) []byte {
	p := appendHeader(nil, len(vs), 9)
	p = appendTimes(p, nsTimes{regular(len(vs), t0, 1e9), 9}, len(vs), 9, options{})
	p = appendRunHeader(p, len(vs), kind)
	if kind == kindXOR32 {
		return append(appendXOR32(p, vs), qualityGood)
	}
	var prev uint64
	for _, v := range vs {
		b := math.Float64bits(v)
		switch kind {
		case kindRaw64:
			p = binary.LittleEndian.AppendUint64(p, b)
		case kindRaw32:
			b32, _ := toFloat32(v)
			p = binary.LittleEndian.AppendUint32(p, b32)
		case kindXOR64:
			p = appendXOR(p, b^prev)
		}
		prev = b
	}
	return append(p, qualityGood)
}

// Every exponent of the scaled values, with integers up to 2^53: format
// 1's, and format 2's wider range.
func TestUnpackSQLEveryScale(t *testing.T) {
	c := pgConn(t)
	ns := []int64{0, 1, -1, 7, 123456789, 1<<53 - 1, -(1<<53 - 1), 4503599627370497, 999999999999999}
	for e := minExp; e <= maxExp; e++ {
		var ps [][]byte
		if e >= narrowMinExp && e <= narrowMaxExp {
			ps = append(ps, chunkOf(uint64(len(ns)), 9, varints(regularUnits(len(ns))...), []byte{byte(int8(e))}, varints(deltasOf(ns)...), []byte{0}))
		}
		ps = append(ps, chunkOf2(uint64(len(ns)), 9, varints(0, 1), []byte{0}, run(4, e+expBias), varints(deltasOf(ns[:4])...),
			run(len(ns)-4, e+expBias), varints(deltasOf(ns[4:])...), []byte{0}))
		for _, p := range ps {
			ts, bits, q, err := unpack(context.Background(), c, p)
			if err != nil {
				t.Fatalf("e %d: %v", e, err)
			}
			sameSQL(t, p, ts, bits, q)
		}
	}
}

// regularUnits is the timestamps section of n readings a unit apart.
func regularUnits(n int) []int64 {
	xs := make([]int64, n)
	if n > 1 {
		xs[1] = 1
	}
	return xs
}

func deltasOf(ns []int64) []int64 {
	d := make([]int64, len(ns))
	for i := range ns {
		if i == 0 {
			d[i] = ns[0]
		} else {
			d[i] = ns[i] - ns[i-1]
		}
	}
	return d
}

func TestUnpackSQLRejects(t *testing.T) {
	c := pgConn(t)
	ctx := context.Background()
	for _, m := range append(malformedChunks(), malformedV2()...) {
		t.Run(m.name, func(t *testing.T) {
			if m.p == nil {
				m.p = []byte{} // NULL would be no rows (STRICT), not an error
			}
			_, _, _, err := unpack(ctx, c, m.p)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a PostgreSQL error", err)
			}
			t.Log(pe.Code, pe.Message)
			switch pe.Code {
			case "22P03": // ours: the same byte and words as Decode
				_, _, _, derr := Decode(m.p, nil, nil, nil)
				if want := strings.TrimPrefix(derr.Error(), "chunk: "); !strings.HasSuffix(pe.Message, want) {
					t.Errorf("SQL says %q, Decode %q", pe.Message, want)
				}
			case "22003": // a sum out of bigint's range
				if !strings.Contains(m.want, "overflows int64") {
					t.Errorf("SQL: %v, Decode: %s", pe, m.want)
				}
			default:
				t.Errorf("SQL: %v (%s)", pe, pe.Code)
			}
		})
	}
}

// BenchmarkUnpackSQL times outpost_chunk_unpack on 3600-reading chunks
// of both formats: passed as a parameter, and read from a table where
// PostgreSQL stores them compressed (TOAST), as a view over chunks
// would.
func BenchmarkUnpackSQL(b *testing.B) {
	c := pgConn(b)
	ctx := context.Background()
	if _, err := c.Exec(ctx, `CREATE TABLE chunks (name text PRIMARY KEY, data bytea)`); err != nil {
		b.Fatal(err)
	}
	for _, f := range formats {
		for _, s := range benchSets(b) {
			switch s.name {
			case "occupancy-temperature", "occupancy-co2", "occupancy-humidity_ratio", "sine-2dec-1Hz", "float32-1Hz", "raw-jitter-1kHz":
			default:
				continue
			}
			const n = 3600
			p, err := f.append(nil, s.ts[:n], s.values[:n], nil)
			if err != nil {
				b.Fatal(err)
			}
			name := f.name + "/" + s.name
			if _, err := c.Exec(ctx, `INSERT INTO chunks VALUES ($1, $2)`, name, p); err != nil {
				b.Fatal(err)
			}
			for _, q := range []struct{ how, sql, arg string }{
				{"param", `SELECT count(*) FROM outpost_chunk_unpack($1)`, ""},
				{"table", `SELECT count(*) FROM chunks c, outpost_chunk_unpack(c.data) WHERE c.name = $1`, name},
			} {
				b.Run(name+"/"+q.how, func(b *testing.B) {
					var arg any = p
					if q.arg != "" {
						arg = q.arg
					}
					for b.Loop() {
						var got int
						if err := c.QueryRow(ctx, q.sql, arg).Scan(&got); err != nil {
							b.Fatal(err)
						}
						if got != n {
							b.Fatalf("%d rows, want %d", got, n)
						}
					}
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "readings/s")
				})
			}
		}
	}
}
