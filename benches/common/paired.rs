//! Paired measurements shared by the benches that compare three services on one machine in one
//! run (`peer`, `session`): rounds that run each service back to back, the order rotating, so a
//! load change on a shared machine hits all three; the request loop they time (also the loop a
//! profiler is pointed at); and criterion's medians of the run, read back for the tables.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use http::{Request, Response};
use tower::{Service, ServiceExt};

use super::{Body, Template};

/// One scenario's rounds: per round, ns per request of the three services.
pub struct Paired {
    pub scenario: &'static str,
    pub rounds: Vec<[f64; 3]>,
}

impl Paired {
    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }

    /// Median over rounds of `f(round)`.
    pub fn over(&self, f: impl Fn(&[f64; 3]) -> f64) -> f64 {
        Self::median(self.rounds.iter().map(f).collect())
    }

    /// The row of a table: the three medians, the second's and third's overheads over the
    /// first, and the median of each round's own ratio of those overheads.
    pub fn row(&self) -> String {
        format!(
            "| {} | {:.0} | {:.0} | {:.0} | +{:.0} | +{:.0} | {:.2} |",
            self.scenario,
            self.over(|r| r[0]),
            self.over(|r| r[1]),
            self.over(|r| r[2]),
            self.over(|r| r[1] - r[0]),
            self.over(|r| r[2] - r[0]),
            self.over(|r| (r[1] - r[0]) / (r[2] - r[0])),
        )
    }
}

/// `rounds` rounds of `batch` requests per service: `run(which, part)` times service `which`
/// (0, 1, 2) on `part` of `sequence`, the order rotating from round to round.
pub fn rounds(
    rounds: usize,
    batch: usize,
    sequence: &[u32],
    mut run: impl FnMut(usize, &[u32]) -> f64,
) -> Vec<[f64; 3]> {
    let mut all = Vec::with_capacity(rounds);
    let mut offset = 0;
    for round in 0..rounds {
        let mut times = [0.0; 3];
        for turn in 0..3 {
            let which = (round + turn) % 3;
            times[which] = run(which, &sequence[offset..offset + batch]);
        }
        offset = (offset + batch) % (sequence.len() - batch);
        all.push(times);
    }
    all
}

/// Sends `iterations` requests of `sequence` through `svc`, as the criterion loop does;
/// returns the wall-clock time per request in ns.
#[inline(never)]
pub fn profile_loop<S, B>(
    rt: &tokio::runtime::Runtime,
    svc: S,
    templates: &[Template],
    sequence: &[u32],
    iterations: usize,
) -> f64
where
    S: Service<Request<Body>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let start = std::time::Instant::now();
    for i in 0..iterations {
        let request = templates[sequence[i % sequence.len()] as usize].request();
        let response = rt.block_on(svc.clone().oneshot(request)).expect("service");
        assert_eq!(response.status(), 200);
    }
    start.elapsed().as_nanos() as f64 / iterations as f64
}

/// `--profile <path> [iterations]` on the command line: profile that path's request loop alone
/// (`iterations` by default `default_iterations`).
pub fn profile_target(default_iterations: usize) -> Option<(String, usize)> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|arg| arg == "--profile")?;
    let path = args.get(at + 1).cloned().expect("--profile takes a path");
    let iterations = args
        .get(at + 2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_iterations);
    Some((path, iterations))
}

/// The median of a benchmark of this run, in ns, from criterion's `estimates.json`.
pub fn criterion_median(group: &str, id: &str) -> Option<f64> {
    let root = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let path = root
        .join("criterion")
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}
