//! The retry budget: retries may add at most a fixed share to a deployment's traffic, so a
//! failing model server is not hit harder because it fails.

use std::sync::Mutex;

/// A token bucket fed by requests: each first attempt adds `ratio` of a retry, each retry
/// spends one. It starts (and may never grow past) `reserve + ratio × cap_requests` so a quiet
/// deployment can still retry its first few failures.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    ratio: f64,
    ceiling: f64,
    tokens: Mutex<f64>,
}

impl RetryBudget {
    /// `ratio` 0.2 allows 20 % extra attempts; `reserve` retries are allowed before any
    /// traffic has paid for them.
    pub(crate) fn new(ratio: f64, reserve: u32) -> RetryBudget {
        let reserve = f64::from(reserve);
        RetryBudget {
            ratio: ratio.max(0.0),
            ceiling: reserve.max(1.0),
            tokens: Mutex::new(reserve),
        }
    }

    pub(crate) fn deposit(&self) {
        if let Ok(mut t) = self.tokens.lock() {
            *t = (*t + self.ratio).min(self.ceiling);
        }
    }

    /// Takes one retry from the budget; false when it is spent.
    pub(crate) fn withdraw(&self) -> bool {
        match self.tokens.lock() {
            Ok(mut t) if *t >= 1.0 => {
                *t -= 1.0;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_share_of_traffic() {
        let budget = RetryBudget::new(0.2, 5);
        let mut retries = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.withdraw() {
                retries += 1;
            }
        }
        // 5 in reserve, then one in five requests.
        assert!((200..=205).contains(&retries), "{retries}");
    }

    #[test]
    fn a_quiet_deployment_keeps_its_reserve_only() {
        let budget = RetryBudget::new(0.2, 3);
        for _ in 0..100 {
            budget.deposit();
        }
        let allowed = (0..10).filter(|_| budget.withdraw()).count();
        assert_eq!(allowed, 3);
    }
}
