//! L'Ecuyer-CMRG (MRG32k3a) random number streams, as R keeps them in
//! `.Random.seed`: the kind code, then the generator's six state words (R
//! integers, read as unsigned). `next_stream` is R's
//! `parallel::nextRNGStream()`: the state 2^127 steps on, the start of the
//! next non-overlapping stream. The host gives each daemon it welcomes the
//! next stream of its sequence, so that no seed need travel on a command
//! line.

use std::sync::OnceLock;

/// A `.Random.seed` of kind L'Ecuyer-CMRG: 7 integers.
pub type Stream = [i32; 7];

const M1: u64 = 4_294_967_087;
const M2: u64 = 4_294_944_443;

type Matrix = [[u64; 3]; 3];

fn multiply(a: &Matrix, b: &Matrix, m: u64) -> Matrix {
    let mut product = [[0u64; 3]; 3];
    for (i, row) in product.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            let sum: u128 = (0..3)
                .map(|k| u128::from(a[i][k]) * u128::from(b[k][j]))
                .sum();
            *cell = (sum % u128::from(m)) as u64;
        }
    }
    product
}

/// `step` raised to the power 2^127, modulo `m`.
fn jump(step: Matrix, m: u64) -> Matrix {
    (0..127).fold(step, |power, _| multiply(&power, &power, m))
}

/// One step of each component: x(n) = a12 x(n-2) - a13 x(n-3) (mod m1),
/// y(n) = a21 y(n-1) - a23 y(n-3) (mod m2), on the state (oldest first).
fn jumps() -> &'static (Matrix, Matrix) {
    static JUMPS: OnceLock<(Matrix, Matrix)> = OnceLock::new();
    JUMPS.get_or_init(|| {
        let first = [[0, 1, 0], [0, 0, 1], [M1 - 810_728, 1_403_580, 0]];
        let second = [[0, 1, 0], [0, 0, 1], [M2 - 1_370_589, 0, 527_612]];
        (jump(first, M1), jump(second, M2))
    })
}

fn apply(matrix: &Matrix, state: [u64; 3], m: u64) -> [u64; 3] {
    let mut next = [0u64; 3];
    for (i, cell) in next.iter_mut().enumerate() {
        let sum: u128 = (0..3)
            .map(|k| u128::from(matrix[i][k]) * u128::from(state[k]))
            .sum();
        *cell = (sum % u128::from(m)) as u64;
    }
    next
}

/// The start of the stream after `stream` (R's `nextRNGStream()`).
pub fn next_stream(stream: &Stream) -> Stream {
    let (first, second) = jumps();
    let word = |i: usize| u64::from(stream[i] as u32);
    let x = apply(first, [word(1), word(2), word(3)], M1);
    let y = apply(second, [word(4), word(5), word(6)], M2);
    let mut next = [stream[0]; 7];
    for (i, value) in x.iter().chain(y.iter()).enumerate() {
        next[i + 1] = *value as u32 as i32;
    }
    next
}

/// The text of a stream in a greeting message: its 7 integers, comma
/// separated.
pub(crate) fn encode(stream: &Stream) -> String {
    stream
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn decode(text: &str) -> Option<Stream> {
    let mut stream = [0i32; 7];
    let mut parts = text.split(',');
    for slot in stream.iter_mut() {
        *slot = parts.next()?.trim().parse().ok()?;
    }
    parts.next().is_none().then_some(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From R 4.2: `RNGkind("L'Ecuyer-CMRG"); set.seed(123)`, then
    /// `parallel::nextRNGStream()` twice.
    const SEEDED: Stream = [
        10407, 1806547166, -983674937, 643431772, 1162448557, -959247990, -133913213,
    ];
    const NEXT: Stream = [
        10407,
        1801422725,
        -2057975723,
        1156894209,
        1595475487,
        210384600,
        -1655729657,
    ];
    const AFTER: Stream = [
        10407,
        -1618675118,
        902610736,
        -520029923,
        -1096480050,
        1501459956,
        -283668411,
    ];

    #[test]
    fn streams_follow_as_in_r() {
        assert_eq!(next_stream(&SEEDED), NEXT);
        assert_eq!(next_stream(&NEXT), AFTER);
    }

    #[test]
    fn streams_round_trip_as_text() {
        assert_eq!(decode(&encode(&NEXT)), Some(NEXT));
        assert_eq!(decode("1,2,3"), None);
        assert_eq!(decode("1,2,3,4,5,6,7,8"), None);
        assert_eq!(decode("1,2,3,4,5,6,x"), None);
    }
}
