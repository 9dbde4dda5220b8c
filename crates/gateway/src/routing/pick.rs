//! Which replica takes a request: pure functions over each replica's load and availability,
//! so every policy can be tested without a network.

use hearth_registry::RoutingPolicy;

/// Virtual nodes per replica on the affinity ring: enough for an even spread over a few
/// replicas, few enough that the ring stays in cache.
const VNODES: u32 = 64;

/// Bounded load: a replica with more than this share of the average in-flight count hands
/// its keys on to the next one on the ring.
const LOAD_BOUND: f64 = 1.25;

/// ... but a replica with fewer requests than this in flight (the new one included) keeps its
/// keys whatever the average. At low load the share alone is strict (one request in flight on
/// three idle-ish replicas already puts a second one over ⌈1.25 × 2/3⌉ = 1), and handing a key on
/// costs the next replica the whole prompt, while a model server takes a second request at once
/// (llama-server's slots, vLLM's batch).
const MIN_BOUND: f64 = 2.0;

/// One replica as the chooser sees it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Candidate {
    /// Healthy and not already tried for this request.
    pub usable: bool,
    /// Requests Hearth has in flight there.
    pub in_flight: u32,
    /// Requests the model server reports waiting in its own queue (0 when unknown).
    pub queued: u32,
    /// How long it takes to answer, in milliseconds (a moving average); 0 when unknown.
    pub latency_ms: f64,
}

impl Candidate {
    fn load(&self) -> u32 {
        self.in_flight.saturating_add(self.queued)
    }
}

/// A consistent-hash ring over replica indexes.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// Placed by URL, so the same replicas give the same ring on every Hearth process and a
    /// replica added or removed moves only its own share of the keys.
    pub(crate) fn new<'a>(urls: impl Iterator<Item = &'a str>) -> Ring {
        let mut points = Vec::new();
        for (index, url) in urls.enumerate() {
            for v in 0..VNODES {
                points.push((stable_hash(&[url.as_bytes(), &v.to_le_bytes()]), index));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// Replica indexes clockwise from `key`, each once.
    fn walk(&self, key: u64, n: usize) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(h, _)| *h < key);
        let mut seen = vec![false; n];
        self.points[start..]
            .iter()
            .chain(&self.points[..start])
            .filter_map(move |&(_, i)| {
                if i < n && !seen[i] {
                    seen[i] = true;
                    Some(i)
                } else {
                    None
                }
            })
    }
}

/// The replica for the next attempt, or `None` when none is usable. `turn` rotates ties and
/// round robin.
pub(crate) fn choose(
    policy: RoutingPolicy,
    candidates: &[Candidate],
    ring: &Ring,
    affinity: Option<u64>,
    turn: usize,
) -> Option<usize> {
    let n = candidates.len();
    if n == 0 {
        return None;
    }
    let rotated = (0..n).map(|k| (turn + k) % n);
    match (policy, affinity) {
        (RoutingPolicy::RoundRobin, _) => rotated.into_iter().find(|&i| candidates[i].usable),
        (RoutingPolicy::PrefixAffinity, Some(key)) => {
            let usable: Vec<&Candidate> = candidates.iter().filter(|c| c.usable).collect();
            if usable.is_empty() {
                return None;
            }
            let total: u32 = usable.iter().map(|c| c.in_flight).sum();
            // The request being placed counts, so an idle deployment never hands off.
            let bound = (LOAD_BOUND * f64::from(total + 1) / usable.len() as f64)
                .ceil()
                .max(MIN_BOUND);
            ring.walk(key, n)
                .find(|&i| candidates[i].usable && f64::from(candidates[i].in_flight + 1) <= bound)
                .or_else(|| least_loaded(candidates, rotated))
        }
        (RoutingPolicy::LeastLoaded | RoutingPolicy::PrefixAffinity, _) => {
            least_loaded(candidates, rotated)
        }
    }
}

/// The usable replica with the lowest expected wait: its load (plus the request being placed)
/// times how long it takes to answer. Counting requests alone sends a slow replica as many as a
/// fast one holds at once, so a share of the traffic pays its latency; weighing them by latency
/// (as Finagle's and Linkerd's peak-EWMA balancers do) gives it work only when the fast ones
/// are that much busier. Replicas not yet timed count as the average of the timed ones; with
/// none timed this is plain least-requests.
fn least_loaded(candidates: &[Candidate], order: impl Iterator<Item = usize>) -> Option<usize> {
    let timed: Vec<f64> = candidates
        .iter()
        .map(|c| c.latency_ms)
        .filter(|l| l.is_finite() && *l > 0.0)
        .collect();
    let unknown = if timed.is_empty() {
        1.0
    } else {
        timed.iter().sum::<f64>() / timed.len() as f64
    };
    let cost = |c: &Candidate| {
        let latency = if c.latency_ms.is_finite() && c.latency_ms > 0.0 {
            c.latency_ms
        } else {
            unknown
        };
        f64::from(c.load().saturating_add(1)) * latency
    };
    // `min_by` keeps the first of equals, so ties go by `order`'s rotation.
    order
        .filter(|&i| candidates[i].usable)
        .min_by(|&a, &b| cost(&candidates[a]).total_cmp(&cost(&candidates[b])))
}

/// FNV-1a, 64 bits: stable across processes and versions, which the affinity ring needs (every
/// Hearth replica must send a file to the same model server) and std's hasher does not promise.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's high bits barely change when only the last bytes differ; the ring sorts by them,
    // so mix them (MurmurHash3's 64-bit finaliser).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(n: usize) -> Vec<Candidate> {
        vec![
            Candidate {
                usable: true,
                ..Default::default()
            };
            n
        ]
    }

    fn ring(n: usize) -> Ring {
        let urls: Vec<String> = (0..n).map(|i| format!("http://gpu{i}:8000/v1")).collect();
        Ring::new(urls.iter().map(String::as_str))
    }

    #[test]
    fn round_robin_takes_turns_and_skips_the_unusable() {
        let mut c = idle(3);
        c[1].usable = false;
        let r = ring(3);
        let picks: Vec<_> = (0..4)
            .map(|t| choose(RoutingPolicy::RoundRobin, &c, &r, None, t))
            .collect();
        assert_eq!(picks, [Some(0), Some(2), Some(2), Some(0)]);
    }

    #[test]
    fn least_loaded_counts_the_servers_queue_too() {
        let mut c = idle(3);
        c[0].in_flight = 2;
        c[1].in_flight = 1;
        c[1].queued = 5;
        c[2].in_flight = 3;
        assert_eq!(
            choose(RoutingPolicy::LeastLoaded, &c, &ring(3), None, 0),
            Some(0)
        );
    }

    #[test]
    fn least_loaded_weighs_load_by_latency() {
        let mut c = idle(3);
        // Replica 2 answers in 800 ms, the others in 20: it takes work only once the fast ones
        // hold enough that waiting there would be longer.
        c[0].latency_ms = 20.0;
        c[1].latency_ms = 20.0;
        c[2].latency_ms = 800.0;
        let r = ring(3);
        for turn in 0..6 {
            assert_ne!(
                choose(RoutingPolicy::LeastLoaded, &c, &r, None, turn),
                Some(2)
            );
        }
        c[0].in_flight = 3;
        c[1].in_flight = 4;
        assert_eq!(choose(RoutingPolicy::LeastLoaded, &c, &r, None, 0), Some(0));
        c[0].in_flight = 40;
        c[1].in_flight = 40;
        assert_eq!(choose(RoutingPolicy::LeastLoaded, &c, &r, None, 0), Some(2));
        // An untimed replica counts as the average of the timed ones (280 ms here).
        let mut c = idle(3);
        c[0].latency_ms = 20.0;
        c[1].latency_ms = 540.0;
        c[0].in_flight = 20;
        assert_eq!(choose(RoutingPolicy::LeastLoaded, &c, &r, None, 0), Some(2));
        // Untimed everywhere: least requests, ties in turn.
        let c = idle(3);
        let picks: Vec<_> = (0..3)
            .map(|t| choose(RoutingPolicy::LeastLoaded, &c, &r, None, t))
            .collect();
        assert_eq!(picks, [Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn the_same_key_goes_to_the_same_replica_and_keys_spread() {
        let c = idle(3);
        let r = ring(3);
        let mut per_replica = [0; 3];
        for file in 0..300u32 {
            let key = stable_hash(&[b"client", &file.to_le_bytes()]);
            let first = choose(RoutingPolicy::PrefixAffinity, &c, &r, Some(key), 0);
            for turn in 1..5 {
                assert_eq!(
                    choose(RoutingPolicy::PrefixAffinity, &c, &r, Some(key), turn),
                    first
                );
            }
            per_replica[first.unwrap_or(0)] += 1;
        }
        assert!(per_replica.iter().all(|&n| n > 50), "{per_replica:?}");
    }

    #[test]
    fn an_overloaded_replica_hands_its_keys_to_the_next() {
        let r = ring(3);
        let key = stable_hash(&[b"k"]);
        let home = choose(RoutingPolicy::PrefixAffinity, &idle(3), &r, Some(key), 0).unwrap_or(9);
        let mut c = idle(3);
        c[home].in_flight = 6;
        let moved = choose(RoutingPolicy::PrefixAffinity, &c, &r, Some(key), 0);
        assert!(moved.is_some() && moved != Some(home));
        // At low load a second request stays home: 1 in flight overall, the bound's floor is 2.
        let mut c = idle(3);
        c[home].in_flight = 1;
        assert_eq!(
            choose(RoutingPolicy::PrefixAffinity, &c, &r, Some(key), 0),
            Some(home)
        );
        c[home].in_flight = 2;
        assert_ne!(
            choose(RoutingPolicy::PrefixAffinity, &c, &r, Some(key), 0),
            Some(home)
        );
        // Within the bound it stays home: 2 in flight of 4 overall, bound ceil(1.25×5/3) = 3.
        let mut c = idle(3);
        c[home].in_flight = 2;
        c[(home + 1) % 3].in_flight = 2;
        assert_eq!(
            choose(RoutingPolicy::PrefixAffinity, &c, &r, Some(key), 0),
            Some(home)
        );
    }

    #[test]
    fn removing_a_replica_moves_only_its_keys() {
        let three = ring(3);
        let urls: Vec<String> = [0, 1]
            .iter()
            .map(|i| format!("http://gpu{i}:8000/v1"))
            .collect();
        let two = Ring::new(urls.iter().map(String::as_str));
        let mut moved = 0;
        for file in 0..300u32 {
            let key = stable_hash(&[&file.to_le_bytes()]);
            let before = choose(
                RoutingPolicy::PrefixAffinity,
                &idle(3),
                &three,
                Some(key),
                0,
            );
            let after = choose(RoutingPolicy::PrefixAffinity, &idle(2), &two, Some(key), 0);
            if before != Some(2) && before != after {
                moved += 1;
            }
        }
        assert_eq!(moved, 0);
    }

    #[test]
    fn nothing_usable_means_no_choice() {
        let mut c = idle(2);
        c[0].usable = false;
        c[1].usable = false;
        for policy in RoutingPolicy::ALL {
            assert_eq!(choose(policy, &c, &ring(2), Some(1), 0), None);
        }
    }
}
