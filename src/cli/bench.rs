//! `incc bench`: time the compiled network, optionally kernel by kernel.

use super::args::{CompileArgs, ReportFormat};
use super::input::load_input;
use super::print::to_json;
use super::progress::Bar;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct Bench {
    /// The .incep file.
    file: PathBuf,
    #[command(flatten)]
    args: CompileArgs,
    /// Timed runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100000))]
    iters: u32,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: u32,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    format: ReportFormat,
    /// Time every kernel of one run.
    #[arg(long)]
    profile: bool,
}

/// Latencies of the timed runs, in milliseconds.
struct Latency {
    median: f64,
    min: f64,
    max: f64,
}

impl Latency {
    /// Of `times` (at least one), which it sorts.
    fn of(times: &mut [f64]) -> Latency {
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 };
        let (min, max) = times.iter().fold((f64::MAX, 0f64), |(a, b), &t| (a.min(t), b.max(t)));
        Latency { median, min, max }
    }
}

impl Bench {
    pub fn run(self) -> anyhow::Result<()> {
        let (iters, warmup) = (self.iters, self.warmup);
        let settings = self.args.profile()?;
        let c = settings.compiler()?.compile_file(&self.file)?;
        let x = load_input(&c.graph, None, settings.seed.unwrap_or(0))?;
        let mut bar = Bar::new(u64::from(warmup) + u64::from(iters));
        for _ in 0..warmup {
            c.model.run(&x)?;
            bar.step("warm-up");
        }
        let mut times: Vec<f64> = Vec::with_capacity(iters as usize);
        for _ in 0..iters {
            let t = Instant::now();
            c.model.run(&x)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            bar.step("timing");
        }
        drop(bar);
        let Latency { median: med, min, max } = Latency::of(&mut times);
        let macs = c.graph.total_macs();
        let gflops = 2.0 * macs as f64 / (med * 1e-3) / 1e9;
        let threads = settings
            .threads
            .map(|t| t as usize)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let layers = if self.profile { c.model.profile(&[&x])? } else { vec![] };
        match self.format {
            ReportFormat::Json => {
                let v = serde_json::json!({
                    "network": c.report.network, "threads": threads, "iters": iters, "tier": c.report.tier,
                    "median_ms": med, "min_ms": min, "max_ms": max, "gflops": gflops, "macs": macs,
                    "compile_ms": c.report.total_ms,
                    "profile": layers.iter().map(|(k, f, t)| serde_json::json!({"kernel": k, "flops": f, "ms": t * 1e3})).collect::<Vec<_>>(),
                });
                println!("{}", to_json(&v)?);
            }
            ReportFormat::Text => {
                println!(
                    "{}: median {med:.2} ms, min {min:.2} ms, max {max:.2} ms over {iters} runs, {threads} thread(s), {} tier; {gflops:.1} GFLOP/s",
                    c.report.network, c.report.tier
                );
                if self.profile {
                    let total: f64 = layers.iter().map(|l| l.2).sum();
                    for (k, f, t) in &layers {
                        let g = if *t > 0.0 { *f as f64 / t / 1e9 } else { 0.0 };
                        println!(
                            "  {:>8.3} ms {:>5.1}% {:>7.1} GFLOP/s  {k}",
                            t * 1e3,
                            100.0 * t / total.max(1e-12),
                            g
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Latency;

    #[test]
    fn median_min_max() {
        let l = Latency::of(&mut [3.0, 1.0, 2.0]);
        assert_eq!((l.median, l.min, l.max), (2.0, 1.0, 3.0));
        let l = Latency::of(&mut [4.0, 1.0, 2.0, 8.0]);
        assert_eq!((l.median, l.min, l.max), (3.0, 1.0, 8.0));
    }
}
