//! Set names: ipset allows at most 31 bytes, jail names are unbounded, and
//! two jails must never share a set.
//!
//! [`set_name`] uses `{prefix}-{jail}-v4` (or `-v6`) when that fits and the
//! prefix and jail use only `A-Z a-z 0-9 _ -`. Otherwise it uses a readable
//! head of the name, a dot, and 48 bits of a stable hash of the full prefix
//! and jail: `warden-a-very-lo.3f09c1d2a4b7-v4`. Plain names never contain a
//! dot and hashed names always do, so the two forms cannot meet; two plain
//! names differ whenever their jails differ; two hashed names collide only if
//! 48-bit hashes of different names agree (about one chance in 10^14 per pair).
//! The hash is FNV-1a, fixed here, so names stay the same across releases and
//! restarts: warden finds the sets it made before.

use super::Family;
use super::proto::MAX_NAME_LEN;

/// Hex digits of hash in a shortened name (48 bits).
const HASH_DIGITS: usize = 12;

/// The ipset name for `jail`'s set of `family` addresses, at most 31 bytes.
/// See the module documentation for the scheme and why names never collide.
pub fn set_name(prefix: &str, jail: &str, family: Family) -> String {
    let suffix = match family {
        Family::V4 => "-v4",
        Family::V6 => "-v6",
    };
    set_name_with_suffix(prefix, jail, suffix)
}

/// [`set_name`] with another suffix (at most 4 bytes, like `-n4` for a
/// jail's network set).
pub fn set_name_with_suffix(prefix: &str, jail: &str, suffix: &str) -> String {
    let plain = format!("{prefix}-{jail}{suffix}");
    let is_plain = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !jail.is_empty() && is_plain(prefix) && is_plain(jail) && plain.len() <= MAX_NAME_LEN {
        return plain;
    }
    let head_len = MAX_NAME_LEN - suffix.len() - 1 - HASH_DIGITS;
    let head: String = format!("{prefix}-{jail}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(head_len)
        .collect();
    let hash = fnv1a64(prefix.as_bytes(), jail.as_bytes()) >> (64 - 4 * HASH_DIGITS);
    format!("{head}.{hash:0width$x}{suffix}", width = HASH_DIGITS)
}

/// FNV-1a over `prefix`, a NUL separator and `jail` (so `("ab", "c")` and
/// `("a", "bc")` hash differently).
fn fnv1a64(prefix: &[u8], jail: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    prefix.iter().chain(&[0]).chain(jail).fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Checks a set name against the kernel's rules before it is sent.
pub(crate) fn check_set_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Err("it is longer than 31 bytes")
    } else if name.contains('\0') {
        Err("it contains a NUL byte")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn short_names_are_readable() {
        assert_eq!(set_name("warden", "sshd", Family::V4), "warden-sshd-v4");
        assert_eq!(set_name("warden", "bad-auth_bots", Family::V6), "warden-bad-auth_bots-v6");
        // Exactly 31 bytes stays plain.
        let jail = "a".repeat(MAX_NAME_LEN - "warden-".len() - "-v4".len());
        assert_eq!(set_name("warden", &jail, Family::V4).len(), MAX_NAME_LEN);
        assert!(!set_name("warden", &jail, Family::V4).contains('.'));
    }

    #[test]
    fn long_or_unusual_names_are_shortened_with_a_hash() {
        let long = "a-very-long-jail-name-for-the-mail-frontend-bots";
        let name = set_name("warden", long, Family::V4);
        assert_eq!(name.len(), MAX_NAME_LEN, "{name}");
        assert!(name.starts_with("warden-a-very-l"), "{name}");
        assert!(name.ends_with("-v4") && name.contains('.'), "{name}");
        // Stable: the same input gives the same name (no per-process seed).
        assert_eq!(name, set_name("warden", long, Family::V4));
        // Pinned (checked against an independent FNV-1a): changing the scheme
        // would orphan the sets an older warden created.
        assert_eq!(name, "warden-a-very-l.b536b70b56d3-v4");
        let odd = set_name("warden", "mail front/ü", Family::V6);
        assert!(odd.is_ascii() && odd.len() <= MAX_NAME_LEN && odd.contains('.'), "{odd}");
        assert!(set_name("warden", "", Family::V4).contains('.'));
    }

    #[test]
    fn jails_sharing_a_long_prefix_get_distinct_names() {
        let a = set_name("warden", "mailu-front-authentication-smtp", Family::V4);
        let b = set_name("warden", "mailu-front-authentication-imap", Family::V4);
        assert_ne!(a, b);
        // A plain jail name that looks like a hashed one cannot match it: it has no dot.
        let hashed = set_name("warden", "x".repeat(40).as_str(), Family::V4);
        let mimic = hashed.trim_start_matches("warden-").trim_end_matches("-v4").replace('.', "-");
        assert_ne!(set_name("warden", &mimic, Family::V4), hashed);
        assert_ne!(set_name("warden", "sshd", Family::V4), set_name("warden", "sshd", Family::V6));
    }

    #[test]
    fn many_similar_names_never_collide() {
        let names: HashSet<String> = (0..20_000)
            .map(|i| set_name("warden", &format!("a-long-common-jail-name-prefix-{i}"), Family::V4))
            .collect();
        assert_eq!(names.len(), 20_000);
    }

    #[test]
    fn checks_names_like_the_kernel() {
        assert!(check_set_name("warden-sshd-v4").is_ok());
        assert!(check_set_name("").is_err());
        assert!(check_set_name(&"a".repeat(32)).is_err());
        assert!(check_set_name("a\0b").is_err());
    }

    proptest! {
        #[test]
        fn any_jail_gives_a_valid_name(prefix in "[a-z]{1,12}", jail in "\\PC{0,80}") {
            for family in [Family::V4, Family::V6] {
                let name = set_name(&prefix, &jail, family);
                prop_assert!(check_set_name(&name).is_ok(), "{name}");
                prop_assert!(name.is_ascii());
            }
        }

        #[test]
        fn distinct_jails_give_distinct_names(a in "\\PC{0,60}", b in "\\PC{0,60}") {
            prop_assume!(a != b);
            prop_assert_ne!(set_name("warden", &a, Family::V4), set_name("warden", &b, Family::V4));
        }
    }
}
