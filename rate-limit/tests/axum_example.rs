//! The axum example's router, called in process: `/metrics` serves the limiter's decisions as
//! Prometheus text, with keel's names and labels.
#![cfg(all(feature = "tower", feature = "metrics"))]

// The example's own code, so the test checks what the example serves.
#[path = "../examples/axum.rs"]
#[allow(dead_code)]
mod example;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::ServiceExt;

async fn get(app: &axum::Router, path: &str, key: &str) -> (StatusCode, String) {
    let request = Request::get(path)
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8(body.to_vec()).expect("utf-8"))
}

/// The value of the sample line `name{labels}` in Prometheus text, labels in any order.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{')?;
        let found: Vec<&str> = rest.trim_end_matches('}').split(',').collect();
        let all = labels
            .iter()
            .all(|(k, v)| found.contains(&format!("{k}=\"{v}\"").as_str()));
        (metric == name && all && found.len() == labels.len()).then(|| value.parse().ok())?
    })
}

// One test in this binary: it installs the process-wide recorder.
#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let app = example::app(example::limiter().expect("limiter"), handle);

    for _ in 0..3 {
        assert_eq!(get(&app, "/", "free").await.0, StatusCode::OK);
    }
    assert_eq!(
        get(&app, "/", "free").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get(&app, "/", "paid").await.0, StatusCode::OK);

    let (status, text) = get(&app, "/metrics", "free").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a scrape is never rate-limited: {text}"
    );
    assert!(
        text.contains("# TYPE keel_rate_limit_decisions_total counter"),
        "{text}"
    );
    let decisions = |outcome| {
        sample(
            &text,
            "keel_rate_limit_decisions_total",
            &[("name", "api"), ("outcome", outcome)],
        )
    };
    assert_eq!(decisions("admitted"), Some(4.0), "{text}");
    assert_eq!(decisions("denied"), Some(1.0), "{text}");
    // Every sample line is keel's, in the keel_<block>_<what> scheme.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("keel_rate_limit_"), "{line}");
    }
}
