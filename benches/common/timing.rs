//! Timing shared by the report benches: cases run in calibrated batches
//! until a time budget is spent; the result is the median time per call over
//! the batches with half the inter-quartile range as its spread. Pairs are
//! timed in alternating batches, so background load affects both alike.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

/// How hard to time.
#[derive(Debug, Clone, Copy)]
pub struct Timer {
    /// One run per case, no timing loop (test mode).
    pub quick: bool,
    /// Minimum timed duration per case.
    pub budget: Duration,
    /// Target duration of one batch.
    pub batch: Duration,
    /// Minimum number of batches.
    pub min_batches: usize,
}

impl Timer {
    /// The timer of a report bench run with this process's arguments: test
    /// mode (one run per case) unless `cargo bench` passed `--bench` (`cargo
    /// test --benches` passes nothing) and neither `--test` nor `--quick` was
    /// given; batches of 2 ms, at least `budget` per case and `min_batches`
    /// batches.
    pub fn from_args(budget: Duration, min_batches: usize) -> Timer {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let bench = args.iter().any(|a| a == "--bench");
        let quick = !bench || args.iter().any(|a| a == "--test" || a == "--quick");
        Timer {
            quick,
            budget,
            batch: Duration::from_millis(2),
            min_batches,
        }
    }
}

/// Time per solve of one case.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Median over batches of the time per solve, in seconds.
    pub median: f64,
    /// Half the inter-quartile range of the batches, relative to the median.
    pub spread: f64,
    /// Number of timed solves.
    pub runs: usize,
}

fn quartiles(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let x = p * (v.len() - 1) as f64;
        let (i, f) = (x.floor() as usize, x - x.floor());
        if i + 1 < v.len() {
            v[i] * (1.0 - f) + v[i + 1] * f
        } else {
            v[i]
        }
    };
    (q(0.25), q(0.5), q(0.75))
}

fn timing_of(per_run: &mut [f64], runs: usize) -> Timing {
    let (q1, med, q3) = quartiles(per_run);
    Timing {
        median: med,
        spread: 0.5 * (q3 - q1) / med,
        runs,
    }
}

/// Warms `f` up and returns the batch size that makes a batch last about
/// `cfg.batch`.
fn calibrate<R>(f: &mut impl FnMut() -> R, cfg: &Timer) -> usize {
    let start = Instant::now();
    let mut n = 0usize;
    while n < 3 || start.elapsed() < Duration::from_millis(20) {
        black_box(f());
        n += 1;
    }
    let est = start.elapsed().as_secs_f64() / n as f64;
    ((cfg.batch.as_secs_f64() / est).round() as usize).clamp(1, 1_000_000)
}

fn run_batch<R>(f: &mut impl FnMut() -> R, k: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..k {
        black_box(f());
    }
    start.elapsed().as_secs_f64() / k as f64
}

/// Whether to take another batch, after `batches` batches in `elapsed`.
fn more(cfg: &Timer, batches: usize, elapsed: Duration) -> bool {
    // Slow cases (over ~0.1 s per solve) stop after 3 batches at 4× budget.
    if elapsed >= 4 * cfg.budget {
        return batches < 3;
    }
    elapsed < cfg.budget || batches < cfg.min_batches
}

/// Median time per call of `f`.
pub fn measure<R>(mut f: impl FnMut() -> R, cfg: &Timer) -> Timing {
    if cfg.quick {
        let start = Instant::now();
        black_box(f());
        return Timing {
            median: start.elapsed().as_secs_f64(),
            spread: f64::NAN,
            runs: 1,
        };
    }
    let k = calibrate(&mut f, cfg);
    let start = Instant::now();
    let mut per_run = Vec::new();
    while more(cfg, per_run.len(), start.elapsed()) {
        per_run.push(run_batch(&mut f, k));
    }
    let runs = k * per_run.len();
    timing_of(&mut per_run, runs)
}

/// Times `a` and `b` in alternating batches; returns both timings and the
/// median of the per-pair ratios time(a)/time(b).
pub fn measure_pair<R1, R2>(
    mut a: impl FnMut() -> R1,
    mut b: impl FnMut() -> R2,
    cfg: &Timer,
) -> (Timing, Timing, f64) {
    if cfg.quick {
        let ta = measure(&mut a, cfg);
        let tb = measure(&mut b, cfg);
        return (ta, tb, ta.median / tb.median);
    }
    let ka = calibrate(&mut a, cfg);
    let kb = calibrate(&mut b, cfg);
    let start = Instant::now();
    let (mut va, mut vb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    // the pair's budget is twice that of a single case
    let cfg2 = Timer {
        budget: 2 * cfg.budget,
        ..*cfg
    };
    while more(&cfg2, ratios.len(), start.elapsed()) {
        // alternate which goes first, so that neither profits from the order
        let (ta, tb) = if ratios.len() % 2 == 0 {
            let ta = run_batch(&mut a, ka);
            (ta, run_batch(&mut b, kb))
        } else {
            let tb = run_batch(&mut b, kb);
            (run_batch(&mut a, ka), tb)
        };
        va.push(ta);
        vb.push(tb);
        ratios.push(ta / tb);
    }
    let n = ratios.len();
    let (_, ratio, _) = quartiles(&mut ratios);
    (
        timing_of(&mut va, ka * n),
        timing_of(&mut vb, kb * n),
        ratio,
    )
}

// ---------------------------------------------------------------------------

/// Times every closure of `fs` in rounds: each round runs one batch of
/// each, starting with a different one each round (so that background load
/// and cache state affect all alike). Returns their timings, in order.
pub fn measure_many(fs: &mut [Box<dyn FnMut() + '_>], cfg: &Timer) -> Vec<Timing> {
    if cfg.quick {
        return fs.iter_mut().map(|f| measure(f, cfg)).collect();
    }
    let ks: Vec<usize> = fs.iter_mut().map(|f| calibrate(f, cfg)).collect();
    let m = fs.len();
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); m];
    // the round's budget grows with the number of closures
    let cfg_m = Timer {
        budget: cfg.budget * m as u32,
        ..*cfg
    };
    let start = Instant::now();
    let mut round = 0;
    while more(&cfg_m, round, start.elapsed()) {
        for j in 0..m {
            let i = (round + j) % m;
            per[i].push(run_batch(&mut fs[i], ks[i]));
        }
        round += 1;
    }
    per.iter_mut()
        .zip(&ks)
        .map(|(v, &k)| {
            let n = v.len();
            timing_of(v, k * n)
        })
        .collect()
}

/// The CSV cells of an optional timing: median in µs, relative half IQR and
/// the number of timed runs (empty cells and 0 when untimed).
pub fn csv_cells(t: Option<Timing>) -> (String, String, usize) {
    t.map_or((String::new(), String::new(), 0), |t| {
        (
            format!("{:.4}", t.median * 1e6),
            format!("{:.4}", t.spread),
            t.runs,
        )
    })
}
