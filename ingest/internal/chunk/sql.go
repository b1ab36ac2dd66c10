package chunk

// UnpackSQL creates the PostgreSQL function outpost_chunk_unpack(bytea),
// which decodes a chunk of format 1 or 2 into its readings as rows (ts,
// value, quality), in order, exactly as Decode does, so that a view can
// show a table of chunks as a table of readings:
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
// an exact power of ten, one IEEE operation as in unscale; raw values
// rebuilt from their sign, exponent and fraction with exact float8
// operations only (a significand in [1, 2) times a power of two made by
// doubling, subnormals as a fraction times 2^-1022), since SQL has no
// cast from the bits of a float8. Float32 bits are widened to float64
// bits first, by integer operations, XORed bits undone with #.
//
// The function is a PL/pgSQL loop over get_byte: it decodes 0.4 to 0.9
// million readings a second (BenchmarkUnpackSQL; long varints and
// XORs are the slow end), some hundred times slower than Decode: fine
// for queries over a few series and windows, slow for scans over many.
const UnpackSQL = `CREATE OR REPLACE FUNCTION outpost_chunk_unpack(data bytea)
RETURNS TABLE (ts bigint, value double precision, quality smallint)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
	-- A copy, detoasted once: get_byte on a compressed or out-of-line
	-- argument would detoast it at every call.
	buf bytea := data || '\x'::bytea;
	len int := length(buf);
	ver int;        -- the format, 1 or 2
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
	base bigint;    -- format 2: the base delta of the timestamps
	w int;          -- format 2: the width of their codes, 255 for varints
	pk int;         -- format 2: where the codes begin
	esc int;        -- format 2: the escape code, 2^w - 1
	sz int;
	kind int;       -- the kind of a run of values: 0 to 44 scaled at
	                -- 10^(kind-22), 45 and 46 raw float64 and float32,
	                -- 47 and 48 the same XORed with the value before
	rl int;         -- the length of the run
	e int;
	p10 float8;
	acc bigint;
	bits bigint;
	xb bigint;      -- the bits the XOR of a run has reached
	m int;
	tz int;
	cb int;         -- the control byte of a pair of float32 XORs
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
	ver := get_byte(buf, 0);
	IF ver <> 1 AND ver <> 2 THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte 0: version %, want 1 or 2', ver USING ERRCODE = '22P03';
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
	-- Format 1 takes two bytes a reading at least, format 2 half a byte.
	IF ver = 1 AND n > (len - pos - 2) / 2 OR ver = 2 AND n > 2 * (len - pos - 3) THEN
		RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: % readings in % bytes', pos, n, len - pos USING ERRCODE = '22P03';
	END IF;
	FOR j IN 1..k LOOP
		u := u * 10;
	END LOOP;

	-- timestamps, in units; bigint arithmetic raises 22003 where a sum
	-- or t * u leaves int64
	IF ver = 1 THEN
		-- t0, t1 - t0, deltas of deltas
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
	ELSE
		-- t0, then the base delta, the width and the residuals
		at := pos; x := 0; sh := 0;
		LOOP
			IF pos >= len THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: timestamp 0: truncated', at USING ERRCODE = '22P03';
			END IF;
			b := get_byte(buf, pos); pos := pos + 1;
			IF sh = 63 AND b > 1 THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: timestamp 0: varint overflows 64 bits', at USING ERRCODE = '22P03';
			END IF;
			x := x | ((b & 127)::bigint << sh);
			EXIT WHEN b < 128;
			sh := sh + 7;
		END LOOP;
		t := ((x >> 1) & 9223372036854775807) # -(x & 1);
		tss[1] := t * u;
		IF n >= 2 THEN
			at := pos; x := 0; sh := 0;
			LOOP
				IF pos >= len THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: base delta of the timestamps: truncated', at USING ERRCODE = '22P03';
				END IF;
				b := get_byte(buf, pos); pos := pos + 1;
				IF sh = 63 AND b > 1 THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: base delta of the timestamps: varint overflows 64 bits', at USING ERRCODE = '22P03';
				END IF;
				x := x | ((b & 127)::bigint << sh);
				EXIT WHEN b < 128;
				sh := sh + 7;
			END LOOP;
			base := ((x >> 1) & 9223372036854775807) # -(x & 1);
			IF pos >= len THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: truncated before the width of the timestamps', pos USING ERRCODE = '22P03';
			END IF;
			w := get_byte(buf, pos);
			IF w NOT IN (0, 1, 2, 4, 8, 255) THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: timestamps of width %, want 0, 1, 2, 4, 8 or 255', pos, w USING ERRCODE = '22P03';
			END IF;
			pos := pos + 1;
			IF w <> 255 THEN
				sz := ((n - 1) * w + 7) / 8;
				IF sz > len - pos THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: % bytes of timestamps in %', pos, sz, len - pos USING ERRCODE = '22P03';
				END IF;
				pk := pos; pos := pos + sz;
				esc := (1 << w) - 1;
			END IF;
			FOR i IN 1..n - 1 LOOP
				IF w = 0 THEN
					x := 0;
				ELSE
					IF w = 255 THEN
						b := esc;
					ELSE
						b := (get_byte(buf, pk + ((i - 1) * w >> 3)) >> ((i - 1) * w & 7)) & esc;
					END IF;
					IF b < esc THEN
						x := (b >> 1) # -(b & 1);
					ELSE
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
						x := ((x >> 1) & 9223372036854775807) # -(x & 1);
					END IF;
				END IF;
				t := t + (base + x);
				tss[i + 1] := t * u;
			END LOOP;
		END IF;
	END IF;

	-- values: in format 1 one run, its kind from the exponent byte; in
	-- format 2 runs, each after its header
	i := 0; -- the values decoded
	WHILE i < n LOOP
		IF ver = 1 THEN
			IF pos >= len THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: truncated before the exponent of the values', pos USING ERRCODE = '22P03';
			END IF;
			e := get_byte(buf, pos); pos := pos + 1;
			IF e = 127 THEN
				kind := 45;
			ELSE
				IF e >= 128 THEN
					e := e - 256;
				END IF;
				IF e < -15 OR e > 15 THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value exponent %, want -15 to 15 or 127', pos - 1, e USING ERRCODE = '22P03';
				END IF;
				kind := e + 22;
			END IF;
			rl := n;
		ELSE
			at := pos; x := 0; sh := 0;
			LOOP
				IF pos >= len THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value run at value %: truncated', at, i USING ERRCODE = '22P03';
				END IF;
				b := get_byte(buf, pos); pos := pos + 1;
				IF sh = 63 AND b > 1 THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value run at value %: varint overflows 64 bits', at, i USING ERRCODE = '22P03';
				END IF;
				x := x | ((b & 127)::bigint << sh);
				EXIT WHEN b < 128;
				sh := sh + 7;
			END LOOP;
			IF x < 0 OR x >> 6 >= n - i THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value run at value % longer than the % values left', at, i, n - i USING ERRCODE = '22P03';
			END IF;
			rl := (x >> 6) + 1;
			kind := x & 63;
			IF kind > 48 THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value run kind %, want 0 to 48', at, kind USING ERRCODE = '22P03';
			END IF;
		END IF;

		IF kind <= 44 THEN
			-- scaled: N[0] - 0, then N[j] - N[j-1]; value = N × 10^e
			e := kind - 22;
			p10 := ('1e' || abs(e))::float8;
			acc := 0;
			FOR j IN i + 1..i + rl LOOP
				at := pos;
				IF pos >= len THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: truncated', at, j - 1 USING ERRCODE = '22P03';
				END IF;
				b := get_byte(buf, pos); pos := pos + 1;
				IF b < 128 THEN
					x := b;
				ELSE
					x := b & 127; sh := 7;
					LOOP
						IF pos >= len THEN
							RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: truncated', at, j - 1 USING ERRCODE = '22P03';
						END IF;
						b := get_byte(buf, pos); pos := pos + 1;
						IF sh = 63 AND b > 1 THEN
							RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: varint overflows 64 bits', at, j - 1 USING ERRCODE = '22P03';
						END IF;
						x := x | ((b & 127)::bigint << sh);
						EXIT WHEN b < 128;
						sh := sh + 7;
					END LOOP;
				END IF;
				x := ((x >> 1) & 9223372036854775807) # -(x & 1);
				IF x <= -18014398509481984 OR x >= 18014398509481984 THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: scaled integer out of range', at, j - 1 USING ERRCODE = '22P03';
				END IF;
				acc := acc + x;
				IF acc <= -9007199254740992 OR acc >= 9007199254740992 THEN
					RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: scaled integer out of range', at, j - 1 USING ERRCODE = '22P03';
				END IF;
				IF e < 0 THEN
					vs[j] := acc::float8 / p10;
				ELSE
					vs[j] := acc::float8 * p10;
				END IF;
			END LOOP;
		ELSE
			-- raw: the bits of each value, then the value from them
			IF kind = 45 AND len - pos < 8 * rl OR kind = 46 AND len - pos < 4 * rl THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: % raw values in % bytes', pos, rl, len - pos USING ERRCODE = '22P03';
			END IF;
			xb := 0;
			FOR j IN i + 1..i + rl LOOP
				IF kind = 45 THEN
					bits := get_byte(buf, pos)::bigint
						| (get_byte(buf, pos + 1)::bigint << 8)
						| (get_byte(buf, pos + 2)::bigint << 16)
						| (get_byte(buf, pos + 3)::bigint << 24)
						| (get_byte(buf, pos + 4)::bigint << 32)
						| (get_byte(buf, pos + 5)::bigint << 40)
						| (get_byte(buf, pos + 6)::bigint << 48)
						| (get_byte(buf, pos + 7)::bigint << 56);
					pos := pos + 8;
				ELSIF kind = 46 THEN
					bits := get_byte(buf, pos)::bigint
						| (get_byte(buf, pos + 1)::bigint << 8)
						| (get_byte(buf, pos + 2)::bigint << 16)
						| (get_byte(buf, pos + 3)::bigint << 24);
					pos := pos + 4;
				ELSIF kind = 47 THEN
					-- a control byte tz << 4 | m, then m bytes of the
					-- XOR, little-endian, from its byte tz
					IF pos >= len THEN
						RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: truncated', pos, j - 1 USING ERRCODE = '22P03';
					END IF;
					b := get_byte(buf, pos);
					m := b & 15; tz := b >> 4;
					IF m + tz > 8 THEN
						RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: % bytes from byte % of 8', pos, j - 1, m, tz USING ERRCODE = '22P03';
					END IF;
					IF len - pos - 1 < m THEN
						RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: truncated', pos, j - 1 USING ERRCODE = '22P03';
					END IF;
					x := 0;
					FOR q IN REVERSE m..1 LOOP
						x := (x << 8) | get_byte(buf, pos + q);
					END LOOP;
					IF m > 0 THEN
						xb := xb # (x << (8 * tz));
					END IF;
					pos := pos + 1 + m;
					bits := xb;
				ELSE
					-- a control byte a pair of values, the low nibble
					-- the first's: 15 for a XOR of 0, else tz << 2 |
					-- (m - 1); then m bytes of each XOR, from byte tz
					IF (j - i) % 2 = 1 THEN
						IF pos >= len THEN
							RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: truncated', pos, j - 1 USING ERRCODE = '22P03';
						END IF;
						at := pos; cb := get_byte(buf, pos); pos := pos + 1;
						b := cb & 15;
					ELSE
						b := cb >> 4;
					END IF;
					IF b = 15 THEN
						m := 0; tz := 0;
					ELSE
						m := (b & 3) + 1; tz := b >> 2;
						IF m + tz > 4 THEN
							RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: % bytes from byte % of 4', at, j - 1, m, tz USING ERRCODE = '22P03';
						END IF;
					END IF;
					IF len - pos < m THEN
						RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: truncated', pos, j - 1 USING ERRCODE = '22P03';
					END IF;
					x := 0;
					FOR q IN REVERSE m - 1..0 LOOP
						x := (x << 8) | get_byte(buf, pos + q);
					END LOOP;
					xb := xb # (x << (8 * tz));
					pos := pos + m;
					bits := xb;
				END IF;
				IF kind = 46 OR kind = 48 THEN
					-- float32 bits to float64 bits, exactly
					neg := bits >> 31 = 1;
					ex := (bits >> 23) & 255;
					bits := bits & 8388607;
					IF ex = 255 THEN
						bits := (2047::bigint << 52) | (bits << 29);
					ELSIF ex > 0 THEN
						bits := ((ex + 896)::bigint << 52) | (bits << 29);
					ELSIF bits > 0 THEN
						-- a subnormal float32, normal as a float64
						ex := 897;
						WHILE bits < 8388608 LOOP
							bits := bits << 1; ex := ex - 1;
						END LOOP;
						bits := (ex::bigint << 52) | ((bits - 8388608) << 29);
					END IF;
					IF neg THEN
						bits := bits | (1::bigint << 63);
					END IF;
				END IF;
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
						FOR q IN 1..abs(ex - 1023) / 62 LOOP
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
				vs[j] := v;
			END LOOP;
			IF kind = 48 AND rl % 2 = 1 AND cb >> 4 <> 0 THEN
				RAISE EXCEPTION 'outpost_chunk_unpack: corrupt: byte %: value %: control nibble % after the last value', at, i + rl - 1, cb >> 4 USING ERRCODE = '22P03';
			END IF;
		END IF;
		i := i + rl;
	END LOOP;

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
