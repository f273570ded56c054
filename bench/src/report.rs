//! Figures and their presentation.
//!
//! Every latency is recorded in an HDR histogram (microsecond resolution, 3 significant
//! digits) and reported as p50/p90/p99/max over a stated number of samples, with the error
//! count and, for deliveries, the number of results that never arrived. Each figure names the
//! floor it stands on (measured by the `floor` scenario in the same run); the report prints
//! the ratio to that floor beside it, and the SPEC §11 target where there is one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

/// A latency histogram in microseconds.
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        // 1 µs … 10 min.
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant, valid histogram bounds"))
    }
}

impl Hist {
    pub fn record(&mut self, d: Duration) {
        self.0.saturating_record((d.as_micros() as u64).max(1));
    }

    pub fn add(&mut self, other: &Hist) {
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn dist(&self) -> Option<Dist> {
        if self.0.is_empty() {
            return None;
        }
        let ms = |q: f64| self.0.value_at_quantile(q) as f64 / 1000.0;
        Some(Dist {
            samples: self.0.len(),
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            max: self.0.max() as f64 / 1000.0,
        })
    }
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Dist {
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// A reference cost measured by the `floor` scenario.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Floor {
    /// A latency floor.
    Latency(Dist),
    /// A rate floor (per second).
    Rate(f64),
}

/// One reported figure: a distribution, a single value, or both (throughput: rate + latency).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Figure {
    pub scenario: String,
    pub name: String,
    /// What was measured and how (sizes, rates, placement).
    pub params: String,
    pub dist: Option<Dist>,
    pub value: Option<f64>,
    pub unit: String,
    pub errors: u64,
    pub undelivered: u64,
    /// Key of a floor in [`Report::floors`].
    pub floor: Option<String>,
    pub target: Option<String>,
    /// Whether the target is met (None: no target or not comparable).
    pub meets: Option<bool>,
    /// Process CPU use and other observations.
    pub notes: Vec<String>,
}

impl Figure {
    pub fn new(scenario: &str, name: impl Into<String>, params: impl Into<String>) -> Self {
        Self {
            scenario: scenario.into(),
            name: name.into(),
            params: params.into(),
            unit: "ms".into(),
            ..Default::default()
        }
    }
    pub fn dist(mut self, hist: &Hist) -> Self {
        self.dist = hist.dist();
        self
    }
    pub fn value(mut self, value: f64, unit: &str) -> Self {
        self.value = Some(value);
        self.unit = unit.into();
        self
    }
    pub fn errors(mut self, errors: u64) -> Self {
        self.errors = errors;
        self
    }
    pub fn undelivered(mut self, undelivered: u64) -> Self {
        self.undelivered = undelivered;
        self
    }
    pub fn floor(mut self, key: &str) -> Self {
        self.floor = Some(key.into());
        self
    }
    pub fn target(mut self, target: &str, meets: Option<bool>) -> Self {
        self.target = Some(target.into());
        self.meets = meets;
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
    pub fn notes(mut self, notes: &[String]) -> Self {
        self.notes.extend_from_slice(notes);
        self
    }
}

#[derive(Default)]
pub struct Report {
    pub figures: Vec<Figure>,
    pub floors: BTreeMap<String, Floor>,
    /// Scenarios that could not finish: name and error.
    pub failures: Vec<(String, String)>,
    pub info: BTreeMap<String, Value>,
}

impl Report {
    pub fn push(&mut self, figure: Figure) {
        println!("  {}", line(&figure, self.ratio(&figure).as_deref()));
        self.figures.push(figure);
    }

    /// Ratios to the figure's floor: (p50, p99) for latencies, or the value ratio for rates.
    fn ratios(&self, figure: &Figure) -> Option<(f64, Option<f64>)> {
        let floor = self.floors.get(figure.floor.as_deref()?)?;
        match (floor, figure.dist, figure.value) {
            (Floor::Rate(rate), _, Some(value)) if *rate > 0.0 => Some((value / rate, None)),
            (Floor::Latency(f), Some(d), _) if f.p50 > 0.0 && f.p99 > 0.0 => {
                Some((d.p50 / f.p50, Some(d.p99 / f.p99)))
            }
            _ => None,
        }
    }

    /// `×floor` text: `p50× / p99×` for latencies, `value×` for rates.
    fn ratio(&self, figure: &Figure) -> Option<String> {
        Some(match self.ratios(figure)? {
            (r, None) => format!("{r:.2}×"),
            (r50, Some(r99)) => format!("{r50:.1}× / {r99:.1}×"),
        })
    }

    fn floor_text(&self, figure: &Figure) -> String {
        let Some(key) = figure.floor.as_deref() else { return String::new() };
        match self.floors.get(key) {
            Some(Floor::Latency(d)) => format!("{key} {:.3}/{:.3} ms", d.p50, d.p99),
            Some(Floor::Rate(r)) => format!("{key} {r:.0}/s"),
            None => format!("{key} (not measured)"),
        }
    }

    /// Errors and undelivered results over all figures, plus failed scenarios.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> =
            self.failures.iter().map(|(scenario, err)| format!("{scenario}: failed: {err}")).collect();
        for f in &self.figures {
            if f.errors > 0 || f.undelivered > 0 {
                problems.push(format!(
                    "{} / {}: {} errors, {} undelivered",
                    f.scenario, f.name, f.errors, f.undelivered
                ));
            }
        }
        problems
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<12} {:<46} {:>7} {:>9} {:>9} {:>9} {:>9} {:>14} {:>4} {:>5}  {:<28} {:<15} target",
            "scenario",
            "figure",
            "n",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "value",
            "err",
            "lost",
            "floor p50/p99",
            "×floor"
        );
        for f in &self.figures {
            let d = f.dist;
            let cell = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
            let value = f.value.map(|v| format!("{} {}", human(v), f.unit)).unwrap_or_else(|| "-".into());
            let target = match (&f.target, f.meets) {
                (Some(t), Some(true)) => format!("{t} ✓"),
                (Some(t), Some(false)) => format!("{t} ✗"),
                (Some(t), None) => t.clone(),
                (None, _) => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<12} {:<46} {:>7} {:>9} {:>9} {:>9} {:>9} {:>14} {:>4} {:>5}  {:<28} {:<15} {}",
                f.scenario,
                f.name,
                d.map(|d| d.samples.to_string()).unwrap_or_else(|| "-".into()),
                cell(d.map(|d| d.p50)),
                cell(d.map(|d| d.p90)),
                cell(d.map(|d| d.p99)),
                cell(d.map(|d| d.max)),
                value,
                f.errors,
                f.undelivered,
                self.floor_text(f),
                self.ratio(f).unwrap_or_default(),
                target
            );
        }
        out
    }

    pub fn write_json(&self, path: &Path, mode: &str) -> Result<()> {
        let figures: Vec<Value> = self
            .figures
            .iter()
            .map(|f| {
                let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
                let ratios = self.ratios(f);
                v["ratio_to_floor"] = json!({
                    "p50": ratios.and_then(|(r, p99)| p99.map(|_| r)),
                    "p99": ratios.and_then(|(_, p99)| p99),
                    "value": ratios.and_then(|(r, p99)| p99.is_none().then_some(r)),
                });
                v
            })
            .collect();
        let doc = json!({
            "mode": mode,
            "generated_at": chrono::Utc::now().to_rfc3339(),
            "info": self.info,
            "floors": self.floors,
            "figures": figures,
            "failures": self.failures.iter().map(|(s, e)| json!({ "scenario": s, "error": e })).collect::<Vec<_>>(),
        });
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// One line per figure while the run goes on.
fn line(f: &Figure, ratio: Option<&str>) -> String {
    let mut s = format!("{:<46}", f.name);
    if let Some(d) = f.dist {
        let _ = write!(
            s,
            " n={} p50={:.3} p90={:.3} p99={:.3} max={:.3} ms",
            d.samples, d.p50, d.p90, d.p99, d.max
        );
    }
    if let Some(v) = f.value {
        let _ = write!(s, " {} {}", human(v), f.unit);
    }
    let _ = write!(s, " err={} lost={}", f.errors, f.undelivered);
    if let Some(r) = ratio {
        let _ = write!(s, " ×floor {r}");
    }
    for note in &f.notes {
        let _ = write!(s, "; {note}");
    }
    s
}

fn human(v: f64) -> String {
    if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// Linear least squares: the slope of `y` over `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) =
        points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + (x - mx) * (y - my), b + (x - mx).powi(2)));
    (den > 0.0).then(|| num / den)
}
