//! Response-time histograms: what an hourly summary keeps instead of percentiles, which cannot
//! be added up. Buckets are log-spaced, so a percentile read from them is off by a bounded
//! *relative* error whatever the scale: bucket 0 holds times under [`MIN_MS`], bucket `i >= 1`
//! holds `[MIN_MS * RATIO^(i-1), MIN_MS * RATIO^i)`, the last one everything above its start.
//! A time is reported as its bucket's geometric middle, which is within `sqrt(RATIO) - 1`
//! (4.9 %) of every time in the bucket: [`MAX_RELATIVE_ERROR`], from 0.1 ms to 136 s.
//!
//! SQL computes the bucket numbers ([`bucket_sql`]) and the counts (`geoctl_histogram`,
//! migration `20261207100001`), here only their values are read back, so the two sides never
//! disagree about an edge.

/// The start of bucket 1; faster times all land in bucket 0.
pub const MIN_MS: f64 = 0.1;
/// Each bucket's end over its start.
pub const RATIO: f64 = 1.1;
/// Buckets 0..BUCKETS; the last one starts at 0.1 ms * 1.1^148, about 136 s, beyond any timeout.
pub const BUCKETS: usize = 150;
/// The largest relative error of a percentile read from a histogram, for times from [`MIN_MS`]
/// to the start of the last bucket: sqrt(1.1) - 1.
pub const MAX_RELATIVE_ERROR: f64 = 0.0489;

/// The bucket number of the time (ms) `expr`, as an SQL expression.
pub fn bucket_sql(expr: &str) -> String {
    format!(
        "CASE WHEN {expr} < {MIN_MS} THEN 0 ELSE least({last}, 1 + floor(ln({expr} / {MIN_MS}) / ln({RATIO}))::int) END",
        last = BUCKETS - 1
    )
}

/// The counts of an aggregate's successful checks' response times (the results aliased `a`), as
/// the hourly summaries keep them: `geoctl_histogram` of their bucket numbers.
pub fn counts_sql(a: &str) -> String {
    format!(
        "geoctl_histogram(array_agg({}) FILTER (WHERE {a}.is_up AND {a}.total_time IS NOT NULL))",
        bucket_sql(&format!("{a}.total_time"))
    )
}

/// The time a bucket stands for: its geometric middle (half of [`MIN_MS`] for bucket 0, the
/// start of the last one, whose end is open).
pub fn value_of(bucket: usize) -> f64 {
    match bucket {
        0 => MIN_MS / 2.0,
        b if b >= BUCKETS - 1 => MIN_MS * RATIO.powi(BUCKETS as i32 - 2),
        b => MIN_MS * RATIO.powi(b as i32 - 1) * RATIO.sqrt(),
    }
}

/// Adds `more` to `into` element by element.
pub fn add(into: &mut Vec<i64>, more: &[i32]) {
    if into.len() < more.len() {
        into.resize(more.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(more) {
        *a += i64::from(*b);
    }
}

/// The percentile `q` (0..=1) of the times counted in `counts`, as `percentile_cont` computes it
/// over the times themselves (interpolated between the two times around rank `q * (n - 1)`),
/// each time read as its bucket's [`value_of`]; `None` when nothing was counted.
pub fn percentile(counts: &[i64], q: f64) -> Option<f64> {
    percentile_by(counts, q, value_of)
}

/// [`percentile`] with bucket `i` read as `value(i)`: `|i| i as f64` for counts of whole numbers
/// (hop counts), whose percentile is then exactly `percentile_cont`'s.
pub fn percentile_by(counts: &[i64], q: f64, value: impl Fn(usize) -> f64) -> Option<f64> {
    let n: i64 = counts.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = q * (n - 1) as f64;
    let (lo, hi) = (rank.floor() as i64, rank.ceil() as i64);
    let at = |r: i64| {
        let mut seen = 0;
        for (bucket, &c) in counts.iter().enumerate() {
            seen += c;
            if r < seen {
                return value(bucket);
            }
        }
        value(counts.len() - 1)
    };
    let (a, b) = (at(lo), at(hi));
    Some(a + (b - a) * (rank - lo as f64))
}

/// A histogram's counts as read from PostgreSQL (`integer[]`). Decoded straight from the binary
/// array format: a day's report reads tens of thousands of them, and sqlx's element-by-element
/// `Vec<i32>` decoding was a quarter of its CPU time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub Vec<i32>);

impl sqlx::Type<sqlx::Postgres> for Counts {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <Vec<i32> as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <Vec<i32> as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Counts {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        if value.format() == sqlx::postgres::PgValueFormat::Text {
            return <Vec<i32> as sqlx::Decode<sqlx::Postgres>>::decode(value).map(Counts);
        }
        decode_int4_array(value.as_bytes()?).map(Counts)
    }
}

/// PostgreSQL's binary `int4[]`: dimensions, a has-nulls flag, the element type, each
/// dimension's length and lower bound, then each element as its length and big-endian value.
fn decode_int4_array(bytes: &[u8]) -> Result<Vec<i32>, sqlx::error::BoxDynError> {
    let mut at = 0;
    let mut next = || -> Result<i32, sqlx::error::BoxDynError> {
        let word = bytes.get(at..at + 4).ok_or("integer[]: the value ends early")?;
        at += 4;
        Ok(i32::from_be_bytes(word.try_into().expect("four bytes")))
    };
    let dimensions = next()?;
    let _has_nulls = next()?;
    let _element_type = next()?;
    match dimensions {
        0 => return Ok(Vec::new()),
        1 => {}
        n => return Err(format!("integer[]: {n} dimensions, expected one").into()),
    }
    let len = usize::try_from(next()?).map_err(|_| "integer[]: a negative length")?;
    let _lower_bound = next()?;
    let mut counts = Vec::with_capacity(len);
    for _ in 0..len {
        if next()? != 4 {
            return Err("integer[]: an element that is NULL or not four bytes".into());
        }
        counts.push(next()?);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `bucket_sql` computes, for the tests.
    fn bucket(ms: f64) -> usize {
        if ms < MIN_MS {
            0
        } else {
            (1 + ((ms / MIN_MS).ln() / RATIO.ln()).floor() as usize).min(BUCKETS - 1)
        }
    }

    #[test]
    fn a_bucket_stands_for_every_time_in_it_within_the_documented_error() {
        let mut ms = MIN_MS;
        while ms < MIN_MS * RATIO.powi(BUCKETS as i32 - 2) {
            let v = value_of(bucket(ms));
            assert!((v - ms).abs() / ms <= MAX_RELATIVE_ERROR, "{ms} ms read as {v}");
            ms *= 1.013;
        }
        assert!(value_of(BUCKETS - 1) > 130_000.0);
    }

    #[test]
    fn percentiles_follow_percentile_cont_within_the_error() {
        // 10, 20, 30, 40 ms: percentile_cont gives p50 25, p95 38.5, p99 39.7.
        let mut counts = vec![0i64; BUCKETS];
        for ms in [10.0, 20.0, 30.0, 40.0] {
            counts[bucket(ms)] += 1;
        }
        for (q, exact) in [(0.5, 25.0), (0.95, 38.5), (0.99, 39.7)] {
            let got = percentile(&counts, q).unwrap();
            assert!((got - exact).abs() / exact <= MAX_RELATIVE_ERROR, "p{q}: {got} vs {exact}");
        }
        assert_eq!(percentile(&[0, 0], 0.5), None);
        // Whole numbers read as themselves: percentile_cont's median of 3, 4, 4, 7 is 4, of 3, 7 is 5.
        assert_eq!(percentile_by(&[0, 0, 0, 1, 2, 0, 0, 1], 0.5, |i| i as f64), Some(4.0));
        assert_eq!(percentile_by(&[0, 0, 0, 1, 0, 0, 0, 1], 0.5, |i| i as f64), Some(5.0));
        // Counts added from two hours are those of all their times.
        let mut sum = vec![0i64; 3];
        add(&mut sum, &[1, 2]);
        add(&mut sum, &[0, 1, 0, 4]);
        assert_eq!(sum, [1, 3, 0, 4]);
    }

    #[test]
    fn binary_integer_arrays_decode_as_postgresql_sends_them() {
        // '{0,3,70000}'::int4[] in the binary format, and '{}'.
        let mut bytes = Vec::new();
        for word in [1i32, 0, 23, 3, 1, 4, 0, 4, 3, 4, 70_000] {
            bytes.extend(word.to_be_bytes());
        }
        assert_eq!(decode_int4_array(&bytes).unwrap(), vec![0, 3, 70_000]);
        let empty: Vec<u8> = [0i32, 0, 23].iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(decode_int4_array(&empty).unwrap(), Vec::<i32>::new());
        assert!(decode_int4_array(&bytes[..bytes.len() - 2]).is_err(), "a value cut short");
        let mut with_null = bytes.clone();
        with_null[28..32].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode_int4_array(&with_null).is_err(), "a NULL count");
    }
}
