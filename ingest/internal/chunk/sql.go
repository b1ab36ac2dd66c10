package chunk

// UnpackSQL creates the PostgreSQL function outpost_chunk_unpack(bytea),
// which decodes a version 1 chunk into its readings as rows (ts, value,
// quality), in order, exactly as Decode does, so that a view can show a
// table of chunks as a table of readings:
//
//	SELECT c.sensor, c.metric, r.ts, r.value, r.quality
//	FROM chunks c CROSS JOIN LATERAL outpost_chunk_unpack(c.data) r
//
// It refuses what Decode refuses, with an exception (SQLSTATE 22P03,
// invalid_binary_representation, naming the byte; 22003 where a sum
// leaves bigint, from PostgreSQL's own checks). Every loop is bounded
// by the bytes of the chunk, checked before they are read.
//
// Values come back bit for bit as Decode's, NaN payloads aside (a NaN is
// PostgreSQL's NaN): scaled values as float8(n) divided or multiplied by
// an exact power of ten, one IEEE operation as in decimal.Unscale; raw
// values rebuilt from their sign, exponent and fraction with exact
// float8 operations only (a significand in [1, 2) times a power of two
// made by doubling, subnormals as a fraction times 2^-1022), since SQL
// has no cast from the bits of a float8.
//
// The function is a PL/pgSQL loop over get_byte: it decodes about half
// a million readings a second (BenchmarkUnpackSQL), some hundred times
// slower than Decode: fine for queries over a few series and windows,
// slow for scans over many.
const UnpackSQL = `CREATE OR REPLACE FUNCTION outpost_chunk_unpack(data bytea)
RETURNS TABLE (ts bigint, value double precision, quality smallint)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
	-- A copy, detoasted once: get_byte on a compressed or out-of-line
	-- argument would detoast it at every call.
	buf bytea := data || '\x'::bytea;
	len int := length(buf);
	pos int := 0;   -- the next byte
	at int;         -- where the item being read begins
	b int;
	x bigint;       -- a varint's 64 bits
	sh int;
	n int;
	k int;
	u bigint := 1;
	i int;
	t bigint;
	d bigint;
	e int;
	p10 float8;
	acc bigint;
	bits bigint;
	ex int;
	neg boolean;
	v float8;
	pw float8;
	p2 float8[];    -- 2^(ex-1023) by exponent field, filled as met
	r bigint;
	l bigint;
	q int;
	j int;
	tss bigint[];
	vs float8[];
	qs smallint[];
BEGIN
	IF len = 0 THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte 0: empty' USING ERRCODE = '22P03';
	END IF;
	IF get_byte(buf, 0) <> 1 THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte 0: version %, want 1', get_byte(buf, 0) USING ERRCODE = '22P03';
	END IF;
	pos := 1;

	-- uvarint n
	at := pos; x := 0; sh := 0;
	LOOP
		IF pos >= len THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: number of readings: truncated', at USING ERRCODE = '22P03';
		END IF;
		b := get_byte(buf, pos); pos := pos + 1;
		IF sh = 63 AND b > 1 THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: number of readings: varint overflows 64 bits', at USING ERRCODE = '22P03';
		END IF;
		x := x | ((b & 127)::bigint << sh);
		EXIT WHEN b < 128;
		sh := sh + 7;
	END LOOP;
	IF x < 1 OR x > 1048576 THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: % readings, want 1 to 1048576', at, x USING ERRCODE = '22P03';
	END IF;
	n := x;
	IF pos >= len THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: truncated before the unit of the timestamps', pos USING ERRCODE = '22P03';
	END IF;
	k := get_byte(buf, pos); pos := pos + 1;
	IF k > 9 THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: timestamps in units of 10^% ns, want at most 10^9', pos - 1, k USING ERRCODE = '22P03';
	END IF;
	IF n > (len - pos - 2) / 2 THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: % readings in % bytes', pos, n, len - pos USING ERRCODE = '22P03';
	END IF;
	FOR j IN 1..k LOOP
		u := u * 10;
	END LOOP;

	-- timestamps: t0, t1 - t0, deltas of deltas, in units; bigint
	-- arithmetic raises 22003 where a sum or t * u leaves int64
	t := 0; d := 0;
	FOR i IN 0..n - 1 LOOP
		at := pos;
		IF pos >= len THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: timestamp %: truncated', at, i USING ERRCODE = '22P03';
		END IF;
		b := get_byte(buf, pos); pos := pos + 1;
		IF b < 128 THEN
			x := b;
		ELSE
			x := b & 127; sh := 7;
			LOOP
				IF pos >= len THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: timestamp %: truncated', at, i USING ERRCODE = '22P03';
				END IF;
				b := get_byte(buf, pos); pos := pos + 1;
				IF sh = 63 AND b > 1 THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: timestamp %: varint overflows 64 bits', at, i USING ERRCODE = '22P03';
				END IF;
				x := x | ((b & 127)::bigint << sh);
				EXIT WHEN b < 128;
				sh := sh + 7;
			END LOOP;
		END IF;
		x := ((x >> 1) & 9223372036854775807) # -(x & 1); -- zigzag
		IF i = 0 THEN
			t := x;
		ELSIF i = 1 THEN
			d := x; t := t + d;
		ELSE
			d := d + x; t := t + d;
		END IF;
		tss[i + 1] := t * u;
	END LOOP;

	-- values
	IF pos >= len THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: truncated before the exponent of the values', pos USING ERRCODE = '22P03';
	END IF;
	e := get_byte(buf, pos); pos := pos + 1;
	IF e = 127 THEN
		IF len - pos < 8 * n THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: % raw values in % bytes', pos, n, len - pos USING ERRCODE = '22P03';
		END IF;
		FOR i IN 1..n LOOP
			bits := get_byte(buf, pos)::bigint
				| (get_byte(buf, pos + 1)::bigint << 8)
				| (get_byte(buf, pos + 2)::bigint << 16)
				| (get_byte(buf, pos + 3)::bigint << 24)
				| (get_byte(buf, pos + 4)::bigint << 32)
				| (get_byte(buf, pos + 5)::bigint << 40)
				| (get_byte(buf, pos + 6)::bigint << 48)
				| (get_byte(buf, pos + 7)::bigint << 56);
			pos := pos + 8;
			neg := bits < 0;
			ex := (bits >> 52) & 2047;
			bits := bits & 4503599627370495; -- the fraction, 52 bits
			IF ex = 2047 THEN
				IF bits = 0 THEN v := 'Infinity'; ELSE v := 'NaN'; END IF;
			ELSIF ex = 0 THEN
				v := (bits::float8 / 4503599627370496::float8) * '2.2250738585072014e-308'::float8;
			ELSE
				pw := p2[ex];
				IF pw IS NULL THEN
					-- 2^|ex-1023| = 2^(m % 62) * (2^62)^(m / 62), exactly;
					-- 1 / 2^m is exact too, down to 2^-1022
					pw := (1::bigint << (abs(ex - 1023) % 62))::float8;
					FOR j IN 1..abs(ex - 1023) / 62 LOOP
						pw := pw * 4611686018427387904::float8;
					END LOOP;
					IF ex < 1023 THEN
						pw := 1::float8 / pw;
					END IF;
					p2[ex] := pw;
				END IF;
				v := ((bits + 4503599627370496)::float8 / 4503599627370496::float8) * pw;
			END IF;
			IF neg THEN
				v := -v;
			END IF;
			vs[i] := v;
		END LOOP;
	ELSE
		IF e >= 128 THEN
			e := e - 256;
		END IF;
		IF e < -15 OR e > 15 THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value exponent %, want -15 to 15 or 127', pos - 1, e USING ERRCODE = '22P03';
		END IF;
		p10 := ('1e' || abs(e))::float8;
		acc := 0;
		FOR i IN 1..n LOOP
			at := pos;
			IF pos >= len THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: truncated', at, i - 1 USING ERRCODE = '22P03';
			END IF;
			b := get_byte(buf, pos); pos := pos + 1;
			IF b < 128 THEN
				x := b;
			ELSE
				x := b & 127; sh := 7;
				LOOP
					IF pos >= len THEN
						RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: truncated', at, i - 1 USING ERRCODE = '22P03';
					END IF;
					b := get_byte(buf, pos); pos := pos + 1;
					IF sh = 63 AND b > 1 THEN
						RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: varint overflows 64 bits', at, i - 1 USING ERRCODE = '22P03';
					END IF;
					x := x | ((b & 127)::bigint << sh);
					EXIT WHEN b < 128;
					sh := sh + 7;
				END LOOP;
			END IF;
			x := ((x >> 1) & 9223372036854775807) # -(x & 1);
			IF x <= -18014398509481984 OR x >= 18014398509481984 THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: scaled integer out of range', at, i - 1 USING ERRCODE = '22P03';
			END IF;
			acc := acc + x;
			IF acc <= -9007199254740992 OR acc >= 9007199254740992 THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: scaled integer out of range', at, i - 1 USING ERRCODE = '22P03';
			END IF;
			IF e < 0 THEN
				vs[i] := acc::float8 / p10;
			ELSE
				vs[i] := acc::float8 * p10;
			END IF;
		END LOOP;
	END IF;

	-- quality
	IF pos >= len THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: truncated before the quality', pos USING ERRCODE = '22P03';
	END IF;
	b := get_byte(buf, pos); pos := pos + 1;
	IF b = 0 THEN
		IF pos <> len THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: % trailing bytes', pos, len - pos USING ERRCODE = '22P03';
		END IF;
		RETURN QUERY SELECT c.t, c.v, 0::smallint FROM unnest(tss, vs) AS c(t, v);
		RETURN;
	END IF;
	IF b <> 1 THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: quality mode %, want 0 or 1', pos - 1, b USING ERRCODE = '22P03';
	END IF;
	at := pos; x := 0; sh := 0;
	LOOP
		IF pos >= len THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: number of quality runs: truncated', at USING ERRCODE = '22P03';
		END IF;
		b := get_byte(buf, pos); pos := pos + 1;
		IF sh = 63 AND b > 1 THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: number of quality runs: varint overflows 64 bits', at USING ERRCODE = '22P03';
		END IF;
		x := x | ((b & 127)::bigint << sh);
		EXIT WHEN b < 128;
		sh := sh + 7;
	END LOOP;
	r := x;
	IF r < 1 OR r > n OR r > (len - pos) / 2 THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: % quality runs for % readings in % bytes', at, r, n, len - pos USING ERRCODE = '22P03';
	END IF;
	i := 0; -- readings covered
	FOR j IN 1..r LOOP
		at := pos; x := 0; sh := 0;
		LOOP
			IF pos >= len THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: quality run %: truncated', at, j - 1 USING ERRCODE = '22P03';
			END IF;
			b := get_byte(buf, pos); pos := pos + 1;
			IF sh = 63 AND b > 1 THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: quality run %: varint overflows 64 bits', at, j - 1 USING ERRCODE = '22P03';
			END IF;
			x := x | ((b & 127)::bigint << sh);
			EXIT WHEN b < 128;
			sh := sh + 7;
		END LOOP;
		l := x;
		IF l < 1 OR l > n - i THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: quality run % of % readings, % left', at, j - 1, l, n - i USING ERRCODE = '22P03';
		END IF;
		IF pos >= len THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: truncated in quality run %', pos, j - 1 USING ERRCODE = '22P03';
		END IF;
		q := get_byte(buf, pos);
		IF q > 2 THEN
			RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: quality %, want 0, 1 or 2', pos, q USING ERRCODE = '22P03';
		END IF;
		pos := pos + 1;
		FOR b IN i + 1..i + l LOOP
			qs[b] := q;
		END LOOP;
		i := i + l;
	END LOOP;
	IF i <> n THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: quality runs cover % of % readings', pos, i, n USING ERRCODE = '22P03';
	END IF;
	IF pos <> len THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: % trailing bytes', pos, len - pos USING ERRCODE = '22P03';
	END IF;
	RETURN QUERY SELECT c.t, c.v, c.q FROM unnest(tss, vs, qs) AS c(t, v, q);
END
$$;
`
