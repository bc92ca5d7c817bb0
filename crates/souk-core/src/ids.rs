//! Identifiers: a prefix naming the kind, then 26 Crockford base-32 characters of which the first
//! 10 encode the creation time in milliseconds (so ids sort by age) and the rest 80 random bits
//! (so they cannot be guessed).

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Builds an id such as `ord_01jd…` from a prefix, a time and 10 random bytes.
pub fn make_id(prefix: &str, unix_millis: i64, random: [u8; 10]) -> String {
    let mut value: u128 = (u128::from(unix_millis.max(0) as u64) & ((1u128 << 48) - 1)) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        let idx = ((value >> (5 * i)) & 31) as usize;
        out.push(ALPHABET[idx] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_carry_their_prefix() {
        let a = make_id("ord", 1_000, [255; 10]);
        let b = make_id("ord", 1_001, [0; 10]);
        assert!(a < b);
        assert!(a.starts_with("ord_"));
        assert_eq!(a.len(), 30);
    }
}
