//! `bantime_increment`: how long the n-th ban of an address lasts.
//!
//! This follows fail2ban's `bantime.increment` (its `Jail.setBanTimeExtra`
//! and `ObserverThread.incrBanTime`), with `prev = n - 1` the number of
//! earlier bans (fail2ban's `ban.Count`):
//! - the first ban (`prev == 0`) lasts exactly `bantime`: fail2ban applies
//!   no formula, cap or jitter until an address has been banned before;
//! - with `multipliers`: `bantime * factor * multipliers[prev]`, the last
//!   multiplier repeating (so `multipliers[0]` is never used, as in
//!   fail2ban, whose documented lists start with 1);
//! - without: `max(bantime, bantime * 2^min(prev, 20) * factor)`, fail2ban's
//!   default `bantime.formula`;
//! - then capped at `maxtime`, then plus `rng() * rndtime` of jitter (so the
//!   result may exceed `maxtime` by up to `rndtime`, as in fail2ban), which
//!   keeps botnets from predicting the release.
//!
//! Permanent bans stay permanent, and a disabled policy returns `bantime`.
//! As in fail2ban, a `maxtime` below `bantime` makes repeat bans shorter than
//! the first; the config should reject such a setting.
//! Randomness is injected (`rng` returns a value in `[0, 1)`), so tests are
//! deterministic; [`SplitMix64`] is a small seedable source for the daemon.

use std::time::Duration;

use crate::core::{BanTime, IncrementPolicy};

/// fail2ban caps the exponent of its default formula at 20.
const MAX_DOUBLINGS: u32 = 20;

/// The length of ban number `count` (1 for an address's first ban) given the
/// jail's base `bantime` and its increment `policy`.
pub fn ban_duration(
    bantime: BanTime,
    policy: &IncrementPolicy,
    count: u32,
    rng: &mut dyn FnMut() -> f64,
) -> BanTime {
    let base = match bantime {
        BanTime::Permanent => return BanTime::Permanent,
        BanTime::Finite(d) => d,
    };
    let prev = count.saturating_sub(1);
    if !policy.enabled || prev == 0 || base.is_zero() {
        return bantime;
    }
    let base_secs = base.as_secs_f64();
    let mut secs = if policy.multipliers.is_empty() {
        let doublings = f64::from(1u32 << prev.min(MAX_DOUBLINGS));
        (base_secs * doublings * policy.factor).max(base_secs)
    } else {
        let last = policy.multipliers.len() - 1;
        base_secs * policy.factor * f64::from(policy.multipliers[(prev as usize).min(last)])
    };
    if let Some(maxtime) = policy.maxtime {
        secs = secs.min(maxtime.as_secs_f64());
    }
    if let Some(rndtime) = policy.rndtime {
        secs += rng().clamp(0.0, 1.0) * rndtime.as_secs_f64();
    }
    BanTime::Finite(secs_to_duration(secs, base))
}

/// Converts computed seconds back to a duration: a result too large saturates,
/// and a nonsensical one (NaN or negative, from a bad factor) falls back to
/// the base bantime rather than unbanning at once.
fn secs_to_duration(secs: f64, base: Duration) -> Duration {
    if secs.is_nan() || secs < 0.0 {
        return base;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// A tiny seedable pseudo-random source (SplitMix64) for `rndtime` jitter.
/// Not for cryptography: jitter only has to be unpredictable to a botnet
/// that cannot see the seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> BanTime {
        BanTime::Finite(Duration::from_secs(s))
    }
    fn policy() -> IncrementPolicy {
        IncrementPolicy { enabled: true, ..IncrementPolicy::default() }
    }
    fn no_jitter() -> f64 {
        0.0
    }
    fn seq(bantime: BanTime, p: &IncrementPolicy, n: u32) -> Vec<BanTime> {
        (1..=n).map(|count| ban_duration(bantime, p, count, &mut no_jitter)).collect()
    }

    #[test]
    fn disabled_or_permanent_is_unchanged() {
        let off = IncrementPolicy::default();
        assert_eq!(seq(secs(600), &off, 4), vec![secs(600); 4]);
        assert_eq!(seq(BanTime::Permanent, &policy(), 3), vec![BanTime::Permanent; 3]);
    }

    #[test]
    fn default_formula_doubles_from_the_second_ban() {
        assert_eq!(
            seq(secs(600), &policy(), 5),
            vec![secs(600), secs(1200), secs(2400), secs(4800), secs(9600)]
        );
        // Count 0 (no history) is treated as a first ban.
        assert_eq!(ban_duration(secs(600), &policy(), 0, &mut no_jitter), secs(600));
    }

    #[test]
    fn default_formula_stops_doubling_after_twenty() {
        let p = policy();
        let at = |count| ban_duration(secs(1), &p, count, &mut no_jitter);
        assert_eq!(at(21), secs(1 << 20));
        assert_eq!(at(22), secs(1 << 20));
        assert_eq!(at(u32::MAX), secs(1 << 20));
    }

    #[test]
    fn factor_scales_the_formula_but_never_below_bantime() {
        let p = IncrementPolicy { factor: 3.0, ..policy() };
        assert_eq!(seq(secs(100), &p, 3), vec![secs(100), secs(600), secs(1200)]);
        let small = IncrementPolicy { factor: 0.25, ..policy() };
        assert_eq!(seq(secs(100), &small, 4), vec![secs(100), secs(100), secs(100), secs(200)]);
    }

    #[test]
    fn multipliers_are_indexed_by_previous_bans_and_the_last_repeats() {
        let p = IncrementPolicy { multipliers: vec![1, 5, 30, 60], ..policy() };
        assert_eq!(
            seq(secs(60), &p, 6),
            vec![secs(60), secs(300), secs(1800), secs(3600), secs(3600), secs(3600)]
        );
        let with_factor = IncrementPolicy { factor: 2.0, ..p };
        assert_eq!(seq(secs(60), &with_factor, 3), vec![secs(60), secs(600), secs(3600)]);
    }

    #[test]
    fn maxtime_caps_growth_and_jitter_is_added_after() {
        let p = IncrementPolicy { maxtime: Some(Duration::from_secs(3000)), ..policy() };
        assert_eq!(seq(secs(1000), &p, 4), vec![secs(1000), secs(2000), secs(3000), secs(3000)]);
        let jittery = IncrementPolicy { rndtime: Some(Duration::from_secs(100)), ..p };
        let mut half = || 0.5;
        assert_eq!(ban_duration(secs(1000), &jittery, 4, &mut half), secs(3050));
        // The first ban is never jittered, as in fail2ban.
        assert_eq!(ban_duration(secs(1000), &jittery, 1, &mut half), secs(1000));
        // A misbehaving rng cannot add more than rndtime.
        let mut wild = || 7.0;
        assert_eq!(ban_duration(secs(1000), &jittery, 2, &mut wild), secs(2100));
    }

    #[test]
    fn absurd_inputs_saturate_or_fall_back() {
        let huge = IncrementPolicy { factor: f64::MAX, ..policy() };
        assert_eq!(ban_duration(secs(600), &huge, 2, &mut no_jitter), BanTime::Finite(Duration::MAX));
        let nan = IncrementPolicy { factor: f64::NAN, multipliers: vec![1, 2], ..policy() };
        assert_eq!(ban_duration(secs(600), &nan, 2, &mut no_jitter), secs(600));
        assert_eq!(ban_duration(secs(0), &policy(), 3, &mut no_jitter), secs(0));
    }

    #[test]
    fn splitmix_is_seeded_and_in_range() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let xs: Vec<f64> = (0..1000).map(|_| a.next_f64()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert_eq!(xs[..10], (0..10).map(|_| b.next_f64()).collect::<Vec<_>>()[..]);
        let distinct: std::collections::HashSet<u64> = xs.iter().map(|x| x.to_bits()).collect();
        assert!(distinct.len() > 990);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }
}
