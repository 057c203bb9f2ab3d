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

/// One service of a three-way comparison: its criterion id, the service, the requests it gets.
pub struct Path<'a, S> {
    pub id: &'static str,
    pub svc: S,
    pub templates: &'a [Template],
}

/// Compares `bare`, `candidate` and `reference` in group `name`: criterion (in the order bare,
/// reference, candidate), then paired rounds (columns bare, candidate, reference). With
/// `--profile <id> [iterations]`, runs that path's `profile_loop` alone instead and answers no
/// rounds. Every request must answer 200.
pub fn three_way<A, B, C, RA, RB, RC>(
    c: &mut criterion::Criterion,
    rt: &tokio::runtime::Runtime,
    name: &'static str,
    sequence: &[u32],
    bare: Path<'_, A>,
    candidate: Path<'_, B>,
    reference: Path<'_, C>,
) -> Paired
where
    A: Service<Request<Body>, Response = Response<RA>> + Clone,
    B: Service<Request<Body>, Response = Response<RB>> + Clone,
    C: Service<Request<Body>, Response = Response<RC>> + Clone,
    A::Error: std::fmt::Debug,
    B::Error: std::fmt::Debug,
    C::Error: std::fmt::Debug,
{
    if let Some((path, iterations)) = profile_target(1_000_000) {
        // Profiling mode: one path's request loop alone, no criterion (for callgrind:
        // `--toggle-collect=*profile_loop*` leaves the setup out).
        let per_request = match path.as_str() {
            id if id == bare.id => profile_loop(rt, bare.svc, bare.templates, sequence, iterations),
            id if id == candidate.id => {
                profile_loop(rt, candidate.svc, candidate.templates, sequence, iterations)
            }
            id if id == reference.id => {
                profile_loop(rt, reference.svc, reference.templates, sequence, iterations)
            }
            other => panic!(
                "--profile takes {}, {} or {}, not {other}",
                bare.id, reference.id, candidate.id
            ),
        };
        println!("{name} {path}: {per_request:.0} ns per request (wall clock)");
        return Paired {
            scenario: name,
            rounds: Vec::new(),
        };
    }
    let mut group = c.benchmark_group(name);
    measure(&mut group, rt, &bare, sequence);
    measure(&mut group, rt, &reference, sequence);
    measure(&mut group, rt, &candidate, sequence);
    group.finish();
    let batch = sequence.len().min(PAIRED_BATCH);
    let rounds = rounds(PAIRED_ROUNDS, batch, sequence, |which, part| match which {
        0 => profile_loop(rt, bare.svc.clone(), bare.templates, part, batch),
        1 => profile_loop(rt, candidate.svc.clone(), candidate.templates, part, batch),
        _ => profile_loop(rt, reference.svc.clone(), reference.templates, part, batch),
    });
    Paired {
        scenario: name,
        rounds,
    }
}

/// Rounds of a three-way comparison, and requests per service per round.
pub const PAIRED_ROUNDS: usize = 15;
pub const PAIRED_BATCH: usize = 20_000;

fn measure<S, R>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    path: &Path<'_, S>,
    sequence: &[u32],
) where
    S: Service<Request<Body>, Response = Response<R>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut next = 0usize;
    group.bench_function(path.id, |b| {
        b.iter(|| {
            let request = path.templates[sequence[next] as usize].request();
            next = (next + 1) % sequence.len();
            let response = rt.block_on(path.svc.clone().oneshot(request)).expect("service");
            assert_eq!(response.status(), 200);
        });
    });
}

/// Prints this run's tables: criterion's medians of each group (`bare`, `reference`,
/// `candidate`: the ids of `three_way`), then the paired medians; both with the candidate's
/// overhead over bare ÷ the reference's, and the candidate's total ÷ the reference's.
pub fn print_tables(ids: [&str; 3], paired: &[Paired]) {
    let [bare, candidate, reference] = ids;
    println!("\ncriterion medians of this run (ns per request), overhead = path - {bare}:");
    println!(
        "| scenario | {bare} | {reference} | {candidate} | {reference} overhead | {candidate} overhead | \
         {candidate} ÷ {reference}, overheads | {candidate} ÷ {reference}, totals |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for p in paired {
        let group = p.scenario;
        let (Some(b), Some(r), Some(c)) = (
            criterion_median(group, bare),
            criterion_median(group, reference),
            criterion_median(group, candidate),
        ) else {
            println!("| {group} | (not measured: a criterion filter left it out) |");
            continue;
        };
        println!(
            "| {group} | {b:.0} | {r:.0} | {c:.0} | +{:.0} | +{:.0} | {:.2} | {:.2} |",
            r - b,
            c - b,
            (c - b) / (r - b),
            c / r
        );
    }
    println!(
        "\npaired: {PAIRED_ROUNDS} rounds of {PAIRED_BATCH} requests per path, back to back; medians over rounds:"
    );
    println!(
        "| scenario | {bare} | {candidate} | {reference} | {candidate} overhead | {reference} overhead | \
         {candidate} ÷ {reference}, overheads | {candidate} ÷ {reference}, totals |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for p in paired {
        println!("{} {:.2} |", p.row(), p.over(|r| r[1] / r[2]));
    }
}

/// `--sessions <n>` on the command line (1 by default): the scenario a profiling run measures.
pub fn sessions_arg() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == "--sessions")
        .and_then(|at| args.get(at + 1)?.parse().ok())
        .unwrap_or(1)
}
