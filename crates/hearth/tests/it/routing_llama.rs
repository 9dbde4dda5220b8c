//! Routing across real model servers: two or three llama-server replicas of the tiny model
//! behind one deployment, reached through Hearth's `/v1/completions` as an editor would.
//!
//! - The prefix cache: a recorded-style trace (clients typing in files, each keystroke a
//!   completion whose prompt grows) replayed under `round_robin` and under `prefix_affinity`
//!   on fresh replicas each time; the prompt tokens each replica really evaluated come from its
//!   own `/metrics` (`llamacpp:prompt_tokens_total`, which leaves out the tokens served from
//!   its prompt cache), the prompt tokens asked for from the answers' `usage`.
//! - A replica killed under traffic: no client request fails, the replica is ejected within the
//!   health-check interval, and is back in rotation once restarted.
//! - A slow replica (requests reach it late, through a delaying relay): `least_loaded` keeps
//!   the deployment's p99 near the healthy replicas'.
//!
//! `HEARTH_LLAMA_SERVER` points at the server (`scripts/test` sets it); without it these tests
//! say so and pass, except in CI (see `llama.rs`). `bench/affinity.sh` runs the trace with more
//! traffic through [`affinity_bench`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hearth_testkit::{DelayProxy, LlamaServer, write_tiny_llama};
use serde_json::{Value, json};

use crate::harness::{Hearth, Options};
use crate::llama::llama_binary;

/// Replicas of the tiny model, and the directory its file lives in.
struct Fleet {
    servers: Vec<LlamaServer>,
    _dir: tempfile::TempDir,
}

async fn fleet(n: usize) -> Option<Fleet> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let binary = llama_binary()?;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama(&model).unwrap();
    let mut servers = Vec::new();
    for _ in 0..n {
        // One compute thread each: three servers share two cores, and ggml's threads wait for
        // each other by spinning, which descheduled threads turn into long stalls.
        servers.push(LlamaServer::start_with(&binary, &model, &["-t", "1", "-tb", "1"]).await);
    }
    Some(Fleet { servers, _dir: dir })
}

/// Hearth checking its replicas every second.
fn hearth() -> Hearth {
    Hearth::start_with(Options {
        args: ["--health-check-interval", "1s"].map(String::from).to_vec(),
        ..Default::default()
    })
}

/// A Codestral (FIM) deployment over `endpoints`, bound to code completions; its id.
async fn deploy(h: &Hearth, endpoints: &[String], routing: &str) -> i64 {
    let id = h
        .create(
            json!({"name": "tiny-fim", "family": "codestral", "endpoints": endpoints,
            "routing": routing, "identifier": "custom_openai/tiny"}),
        )
        .await;
    let (s, b) = h
        .put(
            "/api/v1/feature_settings/code_completions",
            json!({"provider": "self_hosted", "self_hosted_model_id": id}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    id
}

/// Where Hearth sends completions, and how.
#[derive(Clone)]
struct Door {
    http: reqwest::Client,
    url: String,
}

impl Door {
    fn of(h: &Hearth) -> Door {
        Door {
            http: h.http().clone(),
            url: h.url("/v1/completions"),
        }
    }

    /// One non-streamed completion as an editor plugin sends it: the answer's latency and the
    /// prompt tokens its `usage` reports, or what went wrong.
    async fn complete(
        &self,
        user: &str,
        prompt: &str,
        suffix: &str,
    ) -> Result<(Duration, u64), String> {
        let started = Instant::now();
        let resp = self
            .http
            .post(&self.url)
            .json(&json!({"prompt": prompt, "suffix": suffix, "max_tokens": 8,
                "temperature": 0, "user": user}))
            .send()
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            return Err(format!("{status}: {text}"));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        let tokens = v["usage"]["prompt_tokens"]
            .as_u64()
            .ok_or_else(|| format!("no usage: {text}"))?;
        Ok((elapsed, tokens))
    }
}

/// One completion request of the trace.
#[derive(Clone, Debug)]
pub(crate) struct Keystroke {
    prompt: String,
    suffix: String,
}

/// A small deterministic generator (xorshift), so the trace is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// A recorded-style trace: each of `clients` developers works through `files` files in turn,
/// typing `strokes` keystrokes in each below ~600 bytes of existing code; every keystroke asks
/// for a completion whose prompt is the code above the cursor (so the prompts of one file grow
/// by a few characters each time) and whose suffix is the code below it. Each client's
/// keystrokes in order.
pub(crate) fn trace(clients: usize, files: usize, strokes: usize) -> Vec<Vec<Keystroke>> {
    const NAMES: [&str; 10] = [
        "value", "items", "total", "count", "index", "buffer", "result", "config", "path", "name",
    ];
    const CALLS: [&str; 6] = ["len", "sorted", "sum", "str", "list", "max"];
    (0..clients)
        .map(|c| {
            let mut out = Vec::new();
            for f in 0..files {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (((c as u64) << 32) | (f as u64 + 1)));
                let mut above = format!(
                    "# project {c}: src/module_{f}.py\n\"\"\"Helpers for part {f} of project {c}.\"\"\"\nimport os\nimport sys\n\n"
                );
                while above.len() < 600 {
                    let (a, b, call) = (rng.pick(&NAMES), rng.pick(&NAMES), rng.pick(&CALLS));
                    let n = rng.next() % 100;
                    above.push_str(&format!(
                        "\ndef {a}_{b}_{n}({a}, {b}):\n    {a} = {call}({b}) + {n}\n    return {a}\n"
                    ));
                }
                above.push_str("\n\ndef handle(request):\n    ");
                let below = format!("\n\n\nif __name__ == \"__main__\":\n    handle(sys.argv[{f}])\n");
                let typed = format!(
                    "{} = request.get(\"{}\")\n    return {}({}) + {}\n",
                    rng.pick(&NAMES),
                    rng.pick(&NAMES),
                    rng.pick(&CALLS),
                    rng.pick(&NAMES),
                    rng.next() % 100
                );
                for k in 1..=strokes {
                    // A few characters per keystroke, wrapping round the typed line.
                    let upto = (k * 5) % typed.len();
                    let mut end = upto;
                    while !typed.is_char_boundary(end) {
                        end -= 1;
                    }
                    out.push(Keystroke {
                        prompt: format!("{above}{}", &typed[..end]),
                        suffix: below.clone(),
                    });
                }
            }
            out
        })
        .collect()
}

/// What one replay of the trace measured.
#[derive(Debug)]
struct Figures {
    policy: &'static str,
    requests: usize,
    /// Prompt tokens the answers report (what was asked for).
    prompt_tokens: u64,
    /// Prompt tokens each replica evaluated (the rest came from its cache).
    evaluated: Vec<u64>,
    mean: Duration,
    p50: Duration,
    p99: Duration,
    failures: Vec<String>,
}

impl Figures {
    fn evaluated_total(&self) -> u64 {
        self.evaluated.iter().sum()
    }
    fn cached_share(&self) -> f64 {
        1.0 - self.evaluated_total() as f64 / self.prompt_tokens.max(1) as f64
    }
    fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} ({}) | {:.1} % | {:.1} | {:.1} | {:.1} |",
            self.policy,
            self.requests,
            self.prompt_tokens,
            self.evaluated_total(),
            self.evaluated
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            100.0 * self.cached_share(),
            ms(self.mean),
            ms(self.p50),
            ms(self.p99),
        )
    }
}

const HEADER: &str = "| routing | requests | prompt tokens asked | evaluated (per replica) | served from cache | mean ms | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile of `sorted` (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Between one answer and a client's next keystroke. Editors debounce keystrokes by 100 ms or
/// more; this is shorter, so the clients' requests still overlap often.
const THINK: Duration = Duration::from_millis(25);

/// Replays `trace` through Hearth, each client's keystrokes one after the other (`THINK` apart)
/// and the clients side by side, on replicas restarted just before (empty caches, zeroed
/// counters).
async fn replay(
    h: &Hearth,
    id: i64,
    policy: &'static str,
    servers: &mut [LlamaServer],
    trace: &[Vec<Keystroke>],
) -> Figures {
    for s in servers.iter_mut() {
        s.restart().await;
    }
    let (status, body) = h
        .patch(
            &format!("/api/v1/self_hosted_models/{id}"),
            json!({"routing": policy}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let mut before = Vec::new();
    for s in servers.iter() {
        before.push(s.prompt_tokens_evaluated().await);
    }
    let door = Door::of(h);
    let clients: Vec<_> = trace
        .iter()
        .enumerate()
        .map(|(c, strokes)| {
            let door = door.clone();
            let strokes = strokes.clone();
            tokio::spawn(async move {
                let user = format!("dev-{c}");
                let mut out = Vec::new();
                for k in &strokes {
                    out.push(door.complete(&user, &k.prompt, &k.suffix).await);
                    tokio::time::sleep(THINK).await;
                }
                out
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut prompt_tokens = 0;
    let mut failures = Vec::new();
    for c in clients {
        for r in c.await.unwrap() {
            match r {
                Ok((d, t)) => {
                    latencies.push(d);
                    prompt_tokens += t;
                }
                Err(e) => failures.push(e),
            }
        }
    }
    let mut evaluated = Vec::new();
    for (s, b) in servers.iter().zip(before) {
        evaluated.push(s.prompt_tokens_evaluated().await - b);
    }
    latencies.sort();
    let mean = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;
    Figures {
        policy,
        requests: latencies.len() + failures.len(),
        prompt_tokens,
        evaluated,
        mean,
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        failures,
    }
}

/// Runs the trace under both policies on `replicas` fresh replicas; round robin first.
async fn compare(
    replicas: usize,
    clients: usize,
    files: usize,
    strokes: usize,
) -> Option<(Figures, Figures)> {
    let mut fleet = fleet(replicas).await?;
    let h = hearth();
    let endpoints: Vec<String> = fleet.servers.iter().map(LlamaServer::endpoint).collect();
    let id = deploy(&h, &endpoints, "round_robin").await;
    let t = trace(clients, files, strokes);
    let rr = replay(&h, id, "round_robin", &mut fleet.servers, &t).await;
    let pa = replay(&h, id, "prefix_affinity", &mut fleet.servers, &t).await;
    eprintln!(
        "{replicas} replicas, {clients} clients x {files} files x {strokes} keystrokes\n{HEADER}\n{}\n{}",
        rr.row(),
        pa.row()
    );
    Some((rr, pa))
}

/// Prefix affinity keeps each file's prompts on one replica, whose cache then holds all but
/// the last keystroke's characters; round robin spreads them, so every replica evaluates every
/// file's code once for itself. The counts come from the replicas' own metrics.
#[tokio::test]
async fn prefix_affinity_evaluates_fewer_prompt_tokens_than_round_robin() {
    let Some((rr, pa)) = compare(3, 4, 3, 8).await else {
        return;
    };
    for f in [&rr, &pa] {
        assert!(f.failures.is_empty(), "{}: {:?}", f.policy, f.failures);
        assert_eq!(f.requests, 4 * 3 * 8);
        // Both replays asked for the same prompts.
        assert!(f.prompt_tokens > 96 * 600 / 2, "{f:?}");
    }
    assert_eq!(
        rr.prompt_tokens, pa.prompt_tokens,
        "the same trace both times"
    );
    // Round robin has each file's ~600 tokens evaluated on every replica, affinity on one: about
    // a third of the work. Asked for: at most two thirds.
    assert!(
        pa.evaluated_total() * 3 < rr.evaluated_total() * 2,
        "affinity evaluated {} prompt tokens, round robin {}",
        pa.evaluated_total(),
        rr.evaluated_total()
    );
    // Round robin used every replica.
    assert!(rr.evaluated.iter().all(|&n| n > 0), "{rr:?}");
}

/// The (a) comparison with more traffic, for `bench/affinity.sh`: `HEARTH_BENCH_REPLICAS`,
/// `_CLIENTS`, `_FILES`, `_STROKES` (3, 8, 4, 16).
#[tokio::test]
#[ignore = "a benchmark: bench/affinity.sh runs it"]
async fn affinity_bench() {
    let var = |name: &str, default: usize| {
        std::env::var(format!("HEARTH_BENCH_{name}"))
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let Some((rr, pa)) = compare(
        var("REPLICAS", 3),
        var("CLIENTS", 8),
        var("FILES", 4),
        var("STROKES", 16),
    )
    .await
    else {
        return;
    };
    assert!(rr.failures.is_empty() && pa.failures.is_empty());
    eprintln!(
        "prompt tokens evaluated, affinity / round robin: {:.2}",
        pa.evaluated_total() as f64 / rr.evaluated_total().max(1) as f64
    );
}

/// The replica's state in the admin API.
async fn replica_state(h: &Hearth, id: i64, index: usize) -> String {
    let (_, v) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    v["endpoints"][index]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls until the replica is in `state`; how long that took.
async fn wait_for_state(
    h: &Hearth,
    id: i64,
    index: usize,
    state: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let now = replica_state(h, id, index).await;
        if now == state {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "replica {index} still {now:?}, not {state:?}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Clients that send completions in a loop until told to stop.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Traffic {
    /// `clients` editors, each cycling through five files.
    fn start(door: &Door, clients: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let tasks = (0..clients)
            .map(|c| {
                let (door, stop, ok) = (door.clone(), stop.clone(), ok.clone());
                tokio::spawn(async move {
                    let user = format!("dev-{c}");
                    let mut failures = Vec::new();
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let prompt = format!(
                            "# file {c}-{}\nimport os\n\ndef f():\n    return {i}",
                            i % 5
                        );
                        match door.complete(&user, &prompt, "\n").await {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failures.push(e),
                        }
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    failures
                })
            })
            .collect();
        Traffic { stop, ok, tasks }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients; every failure they saw.
    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.unwrap());
        }
        all
    }
}

/// A replica killed under traffic: requests it held or was about to get go to another replica
/// before any byte reached the client, so none fails; the health check ejects it within its
/// interval; restarted, it is re-admitted and serves again.
#[tokio::test]
async fn a_killed_replica_fails_no_request_and_comes_back() {
    let Some(mut fleet) = fleet(3).await else {
        return;
    };
    let h = hearth();
    let endpoints: Vec<String> = fleet.servers.iter().map(LlamaServer::endpoint).collect();
    let id = deploy(&h, &endpoints, "prefix_affinity").await;
    let traffic = Traffic::start(&Door::of(&h), 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(traffic.ok() > 10, "traffic flows: {}", traffic.ok());

    // The victim is a replica that has served: which replicas own the clients' files on the
    // affinity ring depends on the ports the servers got, and one that owned none before the kill
    // would own none after the restart either.
    let mut served = Vec::new();
    for s in &fleet.servers {
        served.push(s.prompt_tokens_evaluated().await);
    }
    let victim = (0..served.len()).max_by_key(|&i| served[i]).unwrap();
    assert!(served[victim] > 0, "some replica serves: {served:?}");
    fleet.servers[victim].kill();
    let ejected_after = wait_for_state(&h, id, victim, "ejected", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let served_while_down = traffic.ok();

    fleet.servers[victim].restart().await;
    let readmitted_after = wait_for_state(&h, id, victim, "healthy", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let failures = traffic.stop().await;
    let evaluated_since_restart = fleet.servers[victim].prompt_tokens_evaluated().await;
    eprintln!(
        "ejected {ejected_after:?} after the kill, re-admitted {readmitted_after:?} after the restart; {} requests answered, {} failed; the restarted replica evaluated {evaluated_since_restart} prompt tokens",
        served_while_down,
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}\n{}", h.logs());
    // Ejected within the 1 s check interval, with room for a busy machine.
    assert!(
        ejected_after < Duration::from_millis(2000),
        "{ejected_after:?}"
    );
    assert!(
        readmitted_after < Duration::from_millis(2000),
        "{readmitted_after:?}"
    );
    assert!(
        evaluated_since_restart > 0,
        "the restarted replica receives traffic again\n{}",
        h.logs()
    );
    let metrics = h.open_get("/metrics").await.text().await.unwrap();
    let retries: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("hearth_upstream_retries_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    eprintln!("retried on another replica: {retries}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hearth_replica_ejections_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// One replica much slower than the others (every request reaches it `DELAY` late): with
/// `least_loaded` the deployment's p99 stays near the healthy replicas', well under the slow
/// one's typical latency. Hearth learns a replica's latency from its answers, so the first
/// request or two may go to the slow one; 400 requests leave room for 4 above the p99.
#[tokio::test]
async fn least_loaded_keeps_p99_away_from_a_slow_replica() {
    const DELAY: Duration = Duration::from_millis(800);
    let Some(fleet) = fleet(3).await else {
        return;
    };
    let slow = DelayProxy::start(fleet.servers[2].port, DELAY).await;
    let h = hearth();
    let endpoints = vec![
        fleet.servers[0].endpoint(),
        fleet.servers[1].endpoint(),
        slow.endpoint(),
    ];
    deploy(&h, &endpoints, "least_loaded").await;

    // The slow replica's typical latency, asked directly.
    let direct = |base: String| {
        let http = reqwest::Client::new();
        async move {
            let started = Instant::now();
            let r = http
                .post(format!("{base}/completions"))
                .json(&json!({"model": "tiny", "prompt": "def f():\n    ", "max_tokens": 8}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
            started.elapsed()
        }
    };
    let mut slow_direct = Vec::new();
    for _ in 0..3 {
        slow_direct.push(direct(slow.endpoint()).await);
    }
    slow_direct.sort();
    let slow_typical = slow_direct[1];

    let door = Door::of(&h);
    let tasks: Vec<_> = (0..4)
        .map(|c| {
            let door = door.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..100 {
                    let prompt = format!("# file {c}\nimport os\n\ndef f():\n    return {i}");
                    out.push(door.complete(&format!("dev-{c}"), &prompt, "\n").await);
                }
                out
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        for r in t.await.unwrap() {
            latencies.push(r.unwrap().0);
        }
    }
    latencies.sort();
    let (p50, p99) = (quantile(&latencies, 0.5), quantile(&latencies, 0.99));
    let over = latencies.iter().filter(|d| **d >= DELAY).count();
    eprintln!(
        "slow replica direct: {:.0} ms; deployment over {} requests: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {over} requests took longer than the delay",
        ms(slow_typical),
        latencies.len(),
        ms(p50),
        ms(p99),
        ms(*latencies.last().unwrap()),
    );
    assert!(slow_typical >= DELAY);
    assert!(
        p99 < slow_typical / 2,
        "p99 {p99:?} against the slow replica's {slow_typical:?}"
    );
}
