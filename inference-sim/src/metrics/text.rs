//! Prometheus text exposition 0.0.4, written the way Python's `prometheus_client` writes vLLM's
//! multiprocess registry: sorted labels (`le` last), counters suffixed `_total`, Go-style floats.

use std::fmt::Write as _;

use super::Histogram;

/// `Content-Type` of `/metrics`.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) struct Writer {
    out: String,
    model: String,
    /// `engine="0",model_name="…"`, the labels of every per-engine series.
    base: String,
}

impl Writer {
    pub fn new(model: &str) -> Self {
        Self {
            out: String::with_capacity(16 * 1024),
            model: model.to_owned(),
            base: labels(vec![
                ("engine", "0".into()),
                ("model_name", model.to_owned()),
            ]),
        }
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        let _ = writeln!(self.out, "{name}{{{labels}}} {}", float(value));
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, "gauge");
        let base = self.base.clone();
        self.sample(name, &base, value);
    }

    /// A counter named `name` in vLLM's code, exposed as `name_total`.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        let name = format!("{name}_total");
        self.header(&name, help, "counter");
        let base = self.base.clone();
        self.sample(&name, &base, value as f64);
    }

    /// A counter with one more label (sorted between `engine` and `model_name` when it sorts so).
    pub fn counter_by<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        let name = format!("{name}_total");
        self.header(&name, help, "counter");
        for (value_label, value) in series {
            let labels = self.with(label, value_label);
            self.sample(&name, &labels, value as f64);
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) {
        self.header(name, help, "histogram");
        let base = self.base.clone();
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, count) in histogram.counts.iter().enumerate() {
            cumulative += count;
            let le = histogram.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            let labels = format!("{base},le=\"{}\"", float(le));
            self.sample(&bucket, &labels, cumulative as f64);
        }
        self.sample(&format!("{name}_count"), &base, histogram.count as f64);
        self.sample(&format!("{name}_sum"), &base, histogram.sum);
    }

    /// A gauge family with arbitrary labels per series (vLLM's info-style gauges).
    pub fn info_family<'a>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (Vec<(&'a str, String)>, f64)>,
    ) {
        self.header(name, help, "gauge");
        for (series_labels, value) in series {
            self.sample(name, &labels(series_labels), value);
        }
    }

    /// The base labels plus `key="value"`.
    fn with(&self, key: &str, value: &str) -> String {
        labels(vec![
            ("engine", "0".into()),
            ("model_name", self.model.clone()),
            (key, value.to_owned()),
        ])
    }
}

/// `k="v",…` sorted by name, values escaped.
fn labels(mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// `prometheus_client.utils.floatToGoString`.
pub(super) fn float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let repr = format!("{value:?}");
    match repr.find('.') {
        Some(dot) if value > 0.0 && dot > 6 => {
            let digits = format!("{}.{}{}", &repr[..1], &repr[1..dot], &repr[dot + 1..]);
            let mantissa = digits.trim_end_matches(['0', '.']);
            format!("{mantissa}e+0{}", dot - 1)
        }
        _ => repr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_prometheus_client() {
        assert_eq!(float(0.0), "0.0");
        assert_eq!(float(3.0), "3.0");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(1_000_000.0), "1e+06");
        assert_eq!(float(1_723_341_500.125), "1.723341500125e+09");
    }

    #[test]
    fn labels_are_sorted_with_le_last() {
        let mut w = Writer::new("m");
        w.counter_by("x", "h", "finished_reason", [("stop", 2)]);
        let mut h = Histogram::new(&[1.0]);
        h.observe(0.5);
        w.histogram("y", "h", &h);
        let text = w.finish();
        assert!(
            text.contains("x_total{engine=\"0\",finished_reason=\"stop\",model_name=\"m\"} 2.0\n")
        );
        assert!(text.contains("y_bucket{engine=\"0\",model_name=\"m\",le=\"1.0\"} 1.0\n"));
        assert!(text.contains("y_bucket{engine=\"0\",model_name=\"m\",le=\"+Inf\"} 1.0\n"));
        assert!(text.contains("y_count{engine=\"0\",model_name=\"m\"} 1.0\n"));
    }
}
