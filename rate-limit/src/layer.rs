//! `RateLimitLayer`: tower middleware, one keyed limiter shared by every clone.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use keel_core::{Clock, SystemClock};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Algorithm, Decision, Gcra, HeaderStyle, KeyedLimiter};

/// What the middleware does with a denial.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenialMode {
    /// Answer `429 Too Many Requests` with `Retry-After` and the rate-limit headers, without
    /// calling the inner service. The default.
    #[default]
    Reject,
    /// Call the inner service anyway, with the [`Decision`] in the request's extensions, and
    /// let it decide (log, degrade, serve from cache).
    PassOn,
}

/// A tower [`Layer`] that rate-limits requests by a key computed from each request (peer IP,
/// a header, the route).
///
/// Every clone of the layer and of the services it makes shares one [`KeyedLimiter`], so all
/// connections draw from the same quotas (tower's own `RateLimit` is per service instance).
/// Admitted requests carry their [`Decision`] in the request extensions and get the
/// rate-limit headers on their response; denied ones are answered `429` or passed on,
/// depending on the [`DenialMode`].
///
/// # Example
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use keel_rate_limit::{Gcra, KeyedLimiter, Quota, RateLimitLayer};
/// use std::convert::Infallible;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let limiter = KeyedLimiter::<String, Gcra>::new(Quota::per_minute(1)?);
/// let layer = RateLimitLayer::new(limiter, |req: &Request<String>| {
///     req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("anonymous").to_string()
/// });
/// let service = layer.layer(service_fn(|_req: Request<String>| async {
///     Ok::<_, Infallible>(Response::new(String::from("hello")))
/// }));
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// let request = || Request::builder().header("x-api-key", "k1").body(String::new());
/// let first = runtime.block_on(service.clone().oneshot(request()?))?;
/// assert_eq!(first.status(), StatusCode::OK);
/// let second = runtime.block_on(service.clone().oneshot(request()?))?;
/// assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(second.headers()["retry-after"], "60");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RateLimitLayer<K, F, A: Algorithm = Gcra, C: Clock = SystemClock>
where
    K: Hash + Eq,
{
    shared: Arc<Shared<K, F, A, C>>,
}

struct Shared<K: Hash + Eq, F, A: Algorithm, C: Clock> {
    limiter: KeyedLimiter<K, A, C>,
    key: F,
    style: HeaderStyle,
    mode: DenialMode,
}

impl<K, F, A, C> RateLimitLayer<K, F, A, C>
where
    K: Hash + Eq + Send + Sync,
    A: Algorithm,
    C: Clock,
{
    /// A layer limiting by `key(&request)` with `limiter`, rejecting denials with `429` and
    /// IETF headers.
    pub fn new(limiter: KeyedLimiter<K, A, C>, key: F) -> Self {
        RateLimitLayer::with_options(limiter, key, HeaderStyle::Ietf, DenialMode::Reject)
    }

    /// A layer with the header style and denial mode given.
    pub fn with_options(
        limiter: KeyedLimiter<K, A, C>,
        key: F,
        style: HeaderStyle,
        mode: DenialMode,
    ) -> Self {
        RateLimitLayer {
            shared: Arc::new(Shared {
                limiter,
                key,
                style,
                mode,
            }),
        }
    }

    /// The shared limiter, to change quotas at runtime or inspect it.
    pub fn limiter(&self) -> &KeyedLimiter<K, A, C> {
        &self.shared.limiter
    }
}

impl<K: Hash + Eq, F, A: Algorithm, C: Clock> Clone for RateLimitLayer<K, F, A, C> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<S, K: Hash + Eq, F, A: Algorithm, C: Clock> Layer<S> for RateLimitLayer<K, F, A, C> {
    type Service = RateLimitService<S, K, F, A, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`RateLimitLayer`]; clones share the layer's limiter.
pub struct RateLimitService<S, K, F, A: Algorithm = Gcra, C: Clock = SystemClock>
where
    K: Hash + Eq,
{
    inner: S,
    shared: Arc<Shared<K, F, A, C>>,
}

impl<S: Clone, K: Hash + Eq, F, A: Algorithm, C: Clock> Clone for RateLimitService<S, K, F, A, C> {
    fn clone(&self) -> Self {
        RateLimitService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

fn add_headers(headers: &mut http::HeaderMap, decision: &Decision, style: HeaderStyle) {
    for (name, value) in decision.headers(style) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
}

impl<S, K, F, A, C, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S, K, F, A, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
    K: Hash + Eq + Clone + Send + Sync,
    F: Fn(&Request<ReqBody>) -> K,
    A: Algorithm,
    C: Clock,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let key = (shared.key)(&request);
        let decision = shared.limiter.check_key(&key);
        if decision.is_denied() && shared.mode == DenialMode::Reject {
            let mut response = Response::new(ResBody::default());
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            add_headers(response.headers_mut(), &decision, shared.style);
            return ResponseFuture {
                kind: Kind::Denied {
                    response: Some(response),
                },
            };
        }
        request.extensions_mut().insert(decision);
        ResponseFuture {
            kind: Kind::Inner {
                future: self.inner.call(request),
                decision,
                style: shared.style,
            },
        }
    }
}

pin_project! {
    /// The response future of [`RateLimitService`]: the inner service's response with the
    /// rate-limit headers added, or the ready `429`.
    pub struct ResponseFuture<Fut, B> {
        #[pin]
        kind: Kind<Fut, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<Fut, B> {
        Inner {
            #[pin]
            future: Fut,
            decision: Decision,
            style: HeaderStyle,
        },
        Denied {
            response: Option<Response<B>>,
        },
    }
}

impl<Fut, B, E> Future for ResponseFuture<Fut, B>
where
    Fut: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner {
                future,
                decision,
                style,
            } => match future.poll(cx) {
                Poll::Ready(Ok(mut response)) => {
                    add_headers(response.headers_mut(), decision, *style);
                    Poll::Ready(Ok(response))
                }
                other => other,
            },
            KindProj::Denied { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: a contract breach by the caller; stay pending
                // rather than panic.
                None => Poll::Pending,
            },
        }
    }
}

impl<K: Hash + Eq, F, A: Algorithm, C: Clock> fmt::Debug for RateLimitLayer<K, F, A, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.shared.limiter)
            .field("style", &self.shared.style)
            .field("mode", &self.shared.mode)
            .finish_non_exhaustive()
    }
}

impl<S: fmt::Debug, K: Hash + Eq, F, A: Algorithm, C: Clock> fmt::Debug
    for RateLimitService<S, K, F, A, C>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limiter", &self.shared.limiter)
            .finish_non_exhaustive()
    }
}

impl<Fut, B> fmt::Debug for ResponseFuture<Fut, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { decision, .. } => f
                .debug_struct("ResponseFuture")
                .field("decision", decision)
                .finish_non_exhaustive(),
            Kind::Denied { .. } => f.write_str("ResponseFuture(429)"),
        }
    }
}
