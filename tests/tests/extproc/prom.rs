//! Reading samples out of Prometheus / OpenMetrics text.

/// The sum of every sample of `name` whose labels include all of `labels`.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse)
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .sum()
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    value: f64,
}

/// `name{a="x",b="y"} value`.
fn parse(line: &str) -> Option<Sample<'_>> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, labels)) = series.split_once('{') else {
        return Some(Sample {
            name: series,
            labels: Vec::new(),
            value,
        });
    };
    let labels = labels
        .strip_suffix('}')?
        .split("\",")
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once("=\"")?;
            Some((k, v.trim_end_matches('"')))
        })
        .collect();
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[test]
fn samples_are_summed_over_matching_label_sets() {
    let text = "# TYPE x histogram\n\
                x_count{a=\"1\",b=\"p,q\"} 2\n\
                x_count{a=\"1\",b=\"r\"} 3\n\
                x_count{a=\"2\"} 7\n\
                y 1.5\n";
    assert_eq!(sum(text, "x_count", &[("a", "1")]), 5.0);
    assert_eq!(sum(text, "x_count", &[("b", "p,q")]), 2.0);
    assert_eq!(sum(text, "x_count", &[]), 12.0);
    assert_eq!(sum(text, "y", &[]), 1.5);
    assert_eq!(sum(text, "z", &[]), 0.0);
}
