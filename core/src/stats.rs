//! Running statistics over a stream, per key: count, mean and variance updated one value at a time with
//! Welford's algorithm (numerically stable, no history kept), in exact decimals, so the state is small enough
//! to keep per card, sensor or account in a local store. Every step is checked: a value whose squared deviation no
//! decimal can hold is refused with [`StatsOverflow`] and leaves the statistics as they were, never a panic.

use rust_decimal::{Decimal, MathematicalOps};

/// Count, mean and the sum of squared deviations (M2) of the values seen so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunningStats {
    /// Values seen.
    pub count: u64,
    /// Their mean.
    pub mean: Decimal,
    /// Sum of squared deviations from the mean.
    pub m2: Decimal,
}

/// A value the statistics cannot take in: its deviation from the mean, squared, is beyond any decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value} is too far from the mean {mean} of {count} values for exact statistics")]
pub struct StatsOverflow {
    /// The refused value.
    pub value: Decimal,
    /// The mean it was compared with.
    pub mean: Decimal,
    /// Values seen before it.
    pub count: u64,
}

impl RunningStats {
    /// Fold in one value; on overflow nothing changes.
    pub fn add(&mut self, x: Decimal) -> Result<(), StatsOverflow> {
        let overflow = || StatsOverflow { value: x, mean: self.mean, count: self.count };
        let count = self.count + 1;
        let delta = x.checked_sub(self.mean).ok_or_else(overflow)?;
        let mean = delta.checked_div(Decimal::from(count)).and_then(|step| self.mean.checked_add(step)).ok_or_else(overflow)?;
        let m2 = x
            .checked_sub(mean)
            .and_then(|after| delta.checked_mul(after))
            .and_then(|square| self.m2.checked_add(square))
            .ok_or_else(overflow)?;
        *self = RunningStats { count, mean, m2 };
        Ok(())
    }

    /// Sample variance (0 with fewer than two values).
    pub fn variance(&self) -> Decimal {
        if self.count < 2 {
            Decimal::ZERO
        } else {
            self.m2 / Decimal::from(self.count - 1)
        }
    }

    /// Sample standard deviation.
    pub fn std_dev(&self) -> Decimal {
        self.variance().sqrt().unwrap_or(Decimal::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_the_two_pass_formulas() {
        let xs: Vec<Decimal> = [2, 4, 4, 4, 5, 5, 7, 9].iter().map(|&x| Decimal::from(x)).collect();
        let mut s = RunningStats::default();
        for &x in &xs {
            s.add(x).expect("in range");
        }
        let n = Decimal::from(xs.len() as u64);
        let mean = xs.iter().sum::<Decimal>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<Decimal>() / (n - Decimal::ONE);
        assert_eq!((s.count, s.mean), (8, Decimal::from(5)));
        assert_eq!(s.variance().round_dp(20), var.round_dp(20));
        assert_eq!(s.std_dev().round_dp(6), var.sqrt().expect("sqrt").round_dp(6));
        assert_eq!(RunningStats::default().std_dev(), Decimal::ZERO);
    }

    #[test]
    fn a_value_that_overflows_is_refused_and_changes_nothing() {
        let mut s = RunningStats::default();
        s.add(Decimal::ONE).expect("in range");
        let before = s.clone();
        let refused = s.add(Decimal::from(1_000_000_000_000_000u64)).expect_err("overflows the variance term");
        assert_eq!((refused.count, s), (1, before));
    }
}
