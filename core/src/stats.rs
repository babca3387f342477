//! Running statistics over a stream, per key: count, mean and variance updated one value at a time with
//! Welford's algorithm (numerically stable, no history kept), in exact decimals, so the state is small enough
//! to keep per card, sensor or account in a local store.

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

impl RunningStats {
    /// Fold in one value.
    pub fn add(&mut self, x: Decimal) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / Decimal::from(self.count);
        self.m2 += delta * (x - self.mean);
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
            s.add(x);
        }
        let n = Decimal::from(xs.len() as u64);
        let mean = xs.iter().sum::<Decimal>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<Decimal>() / (n - Decimal::ONE);
        assert_eq!((s.count, s.mean), (8, Decimal::from(5)));
        assert_eq!(s.variance().round_dp(20), var.round_dp(20));
        assert_eq!(s.std_dev().round_dp(6), var.sqrt().expect("sqrt").round_dp(6));
        assert_eq!(RunningStats::default().std_dev(), Decimal::ZERO);
    }
}
