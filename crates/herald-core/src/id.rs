//! Fresh identifiers.

/// A fresh, time-ordered identifier: `prefix` followed by a UUIDv7 as 32 lowercase hex
/// digits, so ids made later sort after ids made earlier.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_hex_and_unique() {
        let (a, b) = (new_id("x_"), new_id("x_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 32);
        assert!(a
            .strip_prefix("x_")
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_hexdigit()));
    }
}
