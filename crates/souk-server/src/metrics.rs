//! `/metrics` in Prometheus' text format: request counts and latency, seller-call outcomes,
//! refused signed requests, the job queue's depth and age, instances by state, and how far the
//! lifecycle scheduler lags.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the request-latency histogram's buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Counters kept in memory by this node since it started.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    seller_calls: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Refused signed requests written to the audit, and those past their address's limit.
    refusals_audited: AtomicU64,
    refusals_shed: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, method: &str, status: u16, took: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((label(method).to_owned(), status))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts one call to a seller by its activity and outcome (`done`, `retry`, `final`, …).
    pub fn seller_call(&self, activity: &'static str, outcome: &'static str) {
        *self
            .seller_calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((activity, outcome))
            .or_default() += 1;
    }

    /// Counts one refused signed request: `audited`, or shed past its address's limit (a rising
    /// shed count is someone sending bad signatures in bulk).
    pub fn signature_refused(&self, audited: bool) {
        let counter = if audited {
            &self.refusals_audited
        } else {
            &self.refusals_shed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters, followed by the gauges read from the database.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP souk_http_requests_total Requests answered, by method and status.\n# TYPE souk_http_requests_total counter\n");
        for ((method, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "souk_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP souk_http_request_duration_seconds Time to answer a request.\n# TYPE souk_http_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "souk_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "souk_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "souk_http_request_duration_seconds_sum {}",
            self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "souk_http_request_duration_seconds_count {count}");
        out.push_str("# HELP souk_seller_calls_total Calls to sellers, by activity and outcome.\n# TYPE souk_seller_calls_total counter\n");
        for ((activity, outcome), n) in self
            .seller_calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "souk_seller_calls_total{{activity=\"{activity}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP souk_signed_refusals_total Refused signed requests: audited, or shed past their address's limit.\n# TYPE souk_signed_refusals_total counter\n");
        for (outcome, counter) in [
            ("audited", &self.refusals_audited),
            ("shed", &self.refusals_shed),
        ] {
            let _ = writeln!(
                out,
                "souk_signed_refusals_total{{outcome=\"{outcome}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP souk_jobs Jobs in the queue, by state.\n# TYPE souk_jobs gauge\n");
        for (state, n) in &gauges.jobs {
            let _ = writeln!(out, "souk_jobs{{state=\"{state}\"}} {n}");
        }
        out.push_str("# HELP souk_jobs_oldest_due_seconds How long the oldest due job has waited.\n# TYPE souk_jobs_oldest_due_seconds gauge\n");
        let _ = writeln!(
            out,
            "souk_jobs_oldest_due_seconds {}",
            gauges.oldest_due_job_secs
        );
        out.push_str("# HELP souk_instances Instances, by state.\n# TYPE souk_instances gauge\n");
        for (state, n) in &gauges.instances {
            let _ = writeln!(out, "souk_instances{{state=\"{state}\"}} {n}");
        }
        out.push_str("# HELP souk_scheduler_lag_seconds How long the most overdue lifecycle transition has waited.\n# TYPE souk_scheduler_lag_seconds gauge\n");
        let _ = writeln!(
            out,
            "souk_scheduler_lag_seconds {}",
            gauges.scheduler_lag_secs
        );
        out
    }
}

/// The method as a label: the known ones, else `other`, so made-up methods cannot grow the
/// series without bound.
fn label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// What the database says at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    pub jobs: Vec<(String, i64)>,
    pub oldest_due_job_secs: f64,
    pub instances: Vec<(String, i64)>,
    pub scheduler_lag_secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.request("GET", 200, Duration::from_millis(3));
        m.request("GET", 200, Duration::from_millis(30));
        m.request("POST", 402, Duration::from_micros(500));
        m.seller_call("newInstance", "done");
        let text = m.render(&Gauges {
            jobs: vec![("pending".into(), 2)],
            instances: vec![("active".into(), 5)],
            ..Default::default()
        });
        assert!(text.contains("souk_http_requests_total{method=\"GET\",status=\"200\"} 2"));
        assert!(text.contains("souk_http_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("souk_http_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(
            text.contains("souk_seller_calls_total{activity=\"newInstance\",outcome=\"done\"} 1")
        );
        assert!(text.contains("souk_jobs{state=\"pending\"} 2"));
        assert!(text.contains("souk_instances{state=\"active\"} 5"));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let m = Metrics::default();
        m.request("FOOBAR", 405, Duration::from_micros(5));
        m.request("BAZ", 405, Duration::from_micros(5));
        let text = m.render(&Gauges::default());
        assert!(text.contains("souk_http_requests_total{method=\"other\",status=\"405\"} 2"));
        assert!(!text.contains("FOOBAR"));
    }
}
