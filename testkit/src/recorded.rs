//! What a `metrics-util` debugging recorder holds, as plain values a test can compare: the
//! one helper behind every keel crate's `tests/metrics.rs`.

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// A metric's labels, sorted by key.
pub type Labels = Vec<(String, String)>;

/// A counter as [`counters`] lists it: name, sorted labels, value.
pub type Counter = (String, Labels, u64);

/// A recorded value.
///
/// ```
/// use keel_testkit::recorded::Value;
///
/// assert_eq!(Value::Counter(3).as_f64(), Some(3.0));
/// assert_eq!(Value::Gauge(1.5).as_f64(), Some(1.5));
/// assert_eq!(Value::Histogram(vec![0.25]).as_f64(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// A gauge's value (for the debugging recorder: the change since the last snapshot).
    Gauge(f64),
    /// A histogram's samples.
    Histogram(Vec<f64>),
}

impl Value {
    /// A counter or gauge as `f64`; `None` for a histogram.
    ///
    /// ```
    /// use keel_testkit::recorded::Value;
    ///
    /// assert_eq!(Value::Counter(2).as_f64(), Some(2.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Counter(n) => Some(*n as f64),
            Value::Gauge(v) => Some(*v),
            Value::Histogram(_) => None,
        }
    }
}

/// One recorded metric.
///
/// ```
/// use keel_testkit::recorded::{Value, labels, snapshot};
/// use metrics_util::MetricKind;
/// use metrics_util::debugging::DebuggingRecorder;
///
/// let recorder = DebuggingRecorder::new();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::gauge!("keel_demo_size", "name" => "a").set(4.0);
/// });
/// let metric = &snapshot(&recorder)[0];
/// assert_eq!(metric.kind, MetricKind::Gauge);
/// assert_eq!(metric.name, "keel_demo_size");
/// assert_eq!(metric.labels, labels(&[("name", "a")]));
/// assert_eq!(metric.value, Value::Gauge(4.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The metric's name.
    pub name: String,
    /// Its labels, sorted by key.
    pub labels: Labels,
    /// Its value.
    pub value: Value,
}

/// Everything `recorder` holds, sorted by name, then labels. Like every read of the
/// debugging recorder, it resets the gauges' values it reports.
///
/// ```
/// use keel_testkit::recorded::{Value, snapshot};
/// use metrics_util::debugging::DebuggingRecorder;
///
/// let recorder = DebuggingRecorder::new();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("keel_demo_b_total").increment(1);
///     metrics::counter!("keel_demo_a_total").increment(2);
/// });
/// let names: Vec<_> = snapshot(&recorder).into_iter().map(|m| (m.name, m.value)).collect();
/// assert_eq!(
///     names,
///     [("keel_demo_a_total".to_owned(), Value::Counter(2)), ("keel_demo_b_total".to_owned(), Value::Counter(1))]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn snapshot(recorder: &DebuggingRecorder) -> Vec<Metric> {
    let mut metrics: Vec<Metric> = recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(n) => Value::Counter(n),
                DebugValue::Gauge(v) => Value::Gauge(v.into_inner()),
                DebugValue::Histogram(samples) => {
                    Value::Histogram(samples.into_iter().map(|s| s.into_inner()).collect())
                }
            };
            Metric {
                kind,
                name: key.name().to_owned(),
                labels,
                value,
            }
        })
        .collect();
    metrics.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
    metrics
}

/// Every counter `recorder` holds as `(name, sorted labels, value)`, sorted, for a test that
/// expects counters only.
///
/// # Panics
///
/// If the recorder holds a gauge or a histogram: the test's premise is wrong.
///
/// ```
/// use keel_testkit::recorded::{counters, labels};
/// use metrics_util::debugging::DebuggingRecorder;
///
/// let recorder = DebuggingRecorder::new();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("keel_demo_total", "name" => "x").increment(3);
/// });
/// assert_eq!(
///     counters(&recorder),
///     [("keel_demo_total".to_owned(), labels(&[("name", "x")]), 3)]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn counters(recorder: &DebuggingRecorder) -> Vec<Counter> {
    snapshot(recorder)
        .into_iter()
        .map(|metric| match metric.value {
            Value::Counter(n) => (metric.name, metric.labels, n),
            other => panic!("{} is not a counter: {other:?}", metric.name),
        })
        .collect()
}

/// Owned labels from `pairs`, sorted by key as [`snapshot`] sorts them.
///
/// ```
/// use keel_testkit::recorded::labels;
///
/// assert_eq!(
///     labels(&[("to", "open"), ("from", "closed")]),
///     [("from".to_owned(), "closed".to_owned()), ("to".to_owned(), "open".to_owned())]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

/// The metric of `kind` named `name` with exactly `pairs` as labels, in any order.
///
/// ```
/// use keel_testkit::recorded::{Value, find, snapshot};
/// use metrics_util::MetricKind;
/// use metrics_util::debugging::DebuggingRecorder;
///
/// let recorder = DebuggingRecorder::new();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("keel_demo_total", "name" => "a", "cause" => "size").increment(1);
/// });
/// let metrics = snapshot(&recorder);
/// let found = find(&metrics, MetricKind::Counter, "keel_demo_total", &[("name", "a"), ("cause", "size")]);
/// assert_eq!(found.map(|m| &m.value), Some(&Value::Counter(1)));
/// assert!(find(&metrics, MetricKind::Gauge, "keel_demo_total", &[("name", "a"), ("cause", "size")]).is_none());
/// assert!(find(&metrics, MetricKind::Counter, "keel_demo_total", &[("name", "a")]).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn find<'a>(
    metrics: &'a [Metric],
    kind: MetricKind,
    name: &str,
    pairs: &[(&str, &str)],
) -> Option<&'a Metric> {
    let want = labels(pairs);
    metrics
        .iter()
        .find(|m| m.kind == kind && m.name == name && m.labels == want)
}
