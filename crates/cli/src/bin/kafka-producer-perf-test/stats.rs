//! Kafka's `ProducerPerformance.Stats`: windowed progress lines and the final summary with
//! latency percentiles (sampled, so memory stays bounded for huge runs).

use std::time::{Duration, Instant};

pub struct Stats {
    start: Instant,
    count: u64,
    bytes: u64,
    total_latency_ms: f64,
    max_latency_ms: f64,
    sampling: u64,
    samples: Vec<f64>,
    window: Window,
    report_every: Duration,
}

struct Window {
    start: Instant,
    count: u64,
    bytes: u64,
    total_latency_ms: f64,
    max_latency_ms: f64,
}

impl Window {
    fn new() -> Self {
        Window { start: Instant::now(), count: 0, bytes: 0, total_latency_ms: 0.0, max_latency_ms: 0.0 }
    }
}

const MB: f64 = 1024.0 * 1024.0;

impl Stats {
    pub fn new(num_records: u64, report_every: Duration) -> Self {
        let sampling = (num_records / 500_000).max(1);
        Stats {
            start: Instant::now(),
            count: 0,
            bytes: 0,
            total_latency_ms: 0.0,
            max_latency_ms: 0.0,
            sampling,
            samples: Vec::with_capacity((num_records / sampling).min(500_000) as usize + 1),
            window: Window::new(),
            report_every,
        }
    }

    pub fn record(&mut self, latency: Duration, bytes: usize) {
        let ms = latency.as_secs_f64() * 1000.0;
        self.count += 1;
        self.bytes += bytes as u64;
        self.total_latency_ms += ms;
        self.max_latency_ms = self.max_latency_ms.max(ms);
        if self.count.is_multiple_of(self.sampling) {
            self.samples.push(ms);
        }
        let w = &mut self.window;
        w.count += 1;
        w.bytes += bytes as u64;
        w.total_latency_ms += ms;
        w.max_latency_ms = w.max_latency_ms.max(ms);
        if w.start.elapsed() >= self.report_every {
            let secs = w.start.elapsed().as_secs_f64();
            println!(
                "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
                w.count,
                w.count as f64 / secs,
                w.bytes as f64 / MB / secs,
                w.total_latency_ms / w.count as f64,
                w.max_latency_ms
            );
            self.window = Window::new();
        }
    }

    pub fn print_total(&self) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let mut sorted = self.samples.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| -> u64 {
            if sorted.is_empty() {
                return 0;
            }
            let i = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
            sorted[i] as u64
        };
        println!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.count,
            self.count as f64 / secs,
            self.bytes as f64 / MB / secs,
            if self.count > 0 { self.total_latency_ms / self.count as f64 } else { 0.0 },
            self.max_latency_ms,
            pct(0.5),
            pct(0.95),
            pct(0.99),
            pct(0.999)
        );
    }
}
