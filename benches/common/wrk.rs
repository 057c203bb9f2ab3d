//! wrk's report, read the same way by every bench that runs wrk, and the median those benches
//! report.

/// What one wrk run reports.
pub struct Report {
    /// Requests completed.
    pub requests: u64,
    /// Their rate.
    pub per_second: f64,
}

/// Reads wrk's standard output: an error when wrk saw failures (non-2xx answers, socket
/// errors) or printed no figures.
pub fn report(text: &str) -> Result<Report, String> {
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk saw failures:\n{text}"));
    }
    let requests = text
        .lines()
        .find_map(|line| {
            line.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().to_owned())
        })
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no request count in:\n{text}"))?;
    let per_second = text
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Requests/sec:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no Requests/sec in:\n{text}"))?;
    Ok(Report { requests, per_second })
}

/// The median of `values` (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
