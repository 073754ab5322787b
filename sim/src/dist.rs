//! Duration distributions for churn: exponential, Weibull and Pareto, sampled by
//! inverse CDF from a ChaCha12 stream (no `rand_distr`, so the algorithm is fixed here).

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::seed::unit_open;

/// A distribution of durations, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Distribution {
    /// Always the same duration.
    Fixed {
        /// The duration.
        secs: f64,
    },
    /// Memoryless: `P(X > x) = exp(-x / mean)`.
    Exponential {
        /// The mean.
        mean_secs: f64,
    },
    /// `P(X > x) = exp(-(x / scale)^shape)`; measured P2P sessions fit shape 0.34–0.59.
    Weibull {
        /// `k`: below 1, many short sessions and a few very long ones.
        shape: f64,
        /// `λ`: the scale.
        scale_secs: f64,
    },
    /// `P(X > x) = (scale / x)^shape` for `x ≥ scale`: heavy-tailed.
    Pareto {
        /// `α`: the tail index.
        shape: f64,
        /// `x_m`: the smallest value.
        scale_secs: f64,
    },
}

/// Why a distribution's parameters are unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("distribution parameter `{0}` must be finite and positive")]
pub struct DistributionError(pub &'static str);

impl Distribution {
    /// A Weibull distribution with the given shape whose median is `median_secs`.
    pub fn weibull_with_median(shape: f64, median_secs: f64) -> Self {
        // median = λ (ln 2)^(1/k)
        Distribution::Weibull {
            shape,
            scale_secs: median_secs / core::f64::consts::LN_2.powf(1.0 / shape),
        }
    }

    /// An exponential distribution whose median is `median_secs`.
    pub fn exponential_with_median(median_secs: f64) -> Self {
        Distribution::Exponential {
            mean_secs: median_secs / core::f64::consts::LN_2,
        }
    }

    /// A Pareto distribution with the given tail index whose median is `median_secs`.
    pub fn pareto_with_median(shape: f64, median_secs: f64) -> Self {
        // median = x_m 2^(1/α)
        Distribution::Pareto {
            shape,
            scale_secs: median_secs / 2f64.powf(1.0 / shape),
        }
    }

    /// Checks that every parameter is finite and positive.
    pub fn validate(&self) -> Result<(), DistributionError> {
        let ok = |v: f64, name| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(DistributionError(name))
            }
        };
        match *self {
            Distribution::Fixed { secs } => ok(secs, "secs"),
            Distribution::Exponential { mean_secs } => ok(mean_secs, "mean_secs"),
            Distribution::Weibull { shape, scale_secs }
            | Distribution::Pareto { shape, scale_secs } => {
                ok(shape, "shape")?;
                ok(scale_secs, "scale_secs")
            }
        }
    }

    /// The value below which half the draws fall, in seconds.
    pub fn median_secs(&self) -> f64 {
        self.quantile(0.5)
    }

    /// The inverse CDF at `p` in (0, 1), in seconds.
    pub fn quantile(&self, p: f64) -> f64 {
        let survival = 1.0 - p;
        match *self {
            Distribution::Fixed { secs } => secs,
            Distribution::Exponential { mean_secs } => -mean_secs * survival.ln(),
            Distribution::Weibull { shape, scale_secs } => {
                scale_secs * (-survival.ln()).powf(1.0 / shape)
            }
            Distribution::Pareto { shape, scale_secs } => scale_secs / survival.powf(1.0 / shape),
        }
    }

    /// One draw, at microsecond resolution and capped at ten years so that a heavy
    /// tail cannot overflow the clock.
    pub fn sample(&self, rng: &mut impl rand_core::RngCore) -> Duration {
        let secs = self.quantile(unit_open(rng));
        Duration::from_micros((secs.clamp(0.0, 3.2e8) * 1e6) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{stream_rng, Stream};

    fn empirical_median(d: Distribution) -> f64 {
        let mut rng = stream_rng(9, Stream::Churn);
        let mut v: Vec<f64> = (0..20_001)
            .map(|_| d.sample(&mut rng).as_secs_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn medians_match_their_parameters() {
        for d in [
            Distribution::weibull_with_median(0.5, 84.0),
            Distribution::exponential_with_median(300.0),
            Distribution::pareto_with_median(1.5, 60.0),
        ] {
            assert!(
                (d.median_secs() - empirical_median(d)).abs() / d.median_secs() < 0.05,
                "{d:?}"
            );
        }
        assert!((Distribution::weibull_with_median(0.5, 84.0).median_secs() - 84.0).abs() < 1e-9);
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(
            Distribution::Weibull {
                shape: 0.0,
                scale_secs: 1.0
            }
            .validate(),
            Err(DistributionError("shape"))
        );
        assert!(Distribution::Pareto {
            shape: 2.0,
            scale_secs: f64::NAN
        }
        .validate()
        .is_err());
    }
}
