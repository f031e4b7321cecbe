//! `RateLimitLayer`: tower middleware, one keyed limiter (local or in Redis) shared by every
//! clone.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Decision, HeaderStyle, KeyedRateLimit};

/// What the middleware does with a denial.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use keel_rate_limit::{Decision, DenialMode, Gcra, HeaderStyle, KeyedLimiter, Quota};
/// use keel_rate_limit::RateLimitLayer;
/// use std::convert::Infallible;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let limiter = KeyedLimiter::<&str, Gcra>::new(Quota::per_hour(1)?);
/// let key = |_: &Request<String>| "everyone";
/// let layer = RateLimitLayer::with_options(limiter, key, HeaderStyle::Ietf, DenialMode::PassOn);
/// // The inner service sees the decision and serves a denied client a cached page.
/// let service = layer.layer(service_fn(|req: Request<String>| async move {
///     let fresh = req.extensions().get::<Decision>().is_some_and(|d| d.is_allowed());
///     Ok::<_, Infallible>(Response::new(String::from(if fresh { "fresh" } else { "cached" })))
/// }));
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// let first = runtime.block_on(service.clone().oneshot(Request::new(String::new())))?;
/// assert_eq!(first.body(), "fresh");
/// let second = runtime.block_on(service.clone().oneshot(Request::new(String::new())))?;
/// assert_eq!((second.status(), second.body().as_str()), (StatusCode::OK, "cached"));
/// assert!(second.headers().contains_key("retry-after"));
/// assert_eq!(DenialMode::default(), DenialMode::Reject);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
/// The limiter is any [`KeyedRateLimit`]: a [`KeyedLimiter`](crate::KeyedLimiter) for one
/// process, or (feature `redis`) a `RedisLimiter`, so every server of a fleet draws from one
/// quota. Every clone of the layer and of the services it makes shares that one limiter, so
/// all connections draw from the same quotas (tower's own `RateLimit` is per service
/// instance). The decision is made when the response future is first polled.
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
pub struct RateLimitLayer<L, F> {
    shared: Arc<Shared<L, F>>,
}

struct Shared<L, F> {
    limiter: L,
    key: F,
    style: HeaderStyle,
    mode: DenialMode,
}

impl<L, F> RateLimitLayer<L, F> {
    /// A layer limiting by `key(&request)` with `limiter`, rejecting denials with `429` and
    /// IETF headers.
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota, RateLimitLayer};
    /// use std::convert::Infallible;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// // One quota per route.
    /// let limiter = KeyedLimiter::<String, Gcra>::new(Quota::per_minute(2)?);
    /// let layer = RateLimitLayer::new(limiter, |req: &Request<()>| req.uri().path().to_string());
    /// let service = layer.layer(service_fn(|_: Request<()>| async {
    ///     Ok::<_, Infallible>(Response::new(()))
    /// }));
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let get = |path: &str| -> Result<Response<()>, Box<dyn std::error::Error>> {
    ///     Ok(runtime.block_on(service.clone().oneshot(Request::get(path).body(())?))?)
    /// };
    /// let ok = get("/search")?;
    /// assert_eq!(ok.status(), StatusCode::OK);
    /// assert_eq!(ok.headers()["ratelimit"], "\"default\";r=1;t=30");
    /// assert_eq!(get("/search")?.status(), StatusCode::OK);
    /// assert_eq!(get("/search")?.status(), StatusCode::TOO_MANY_REQUESTS);
    /// assert_eq!(get("/home")?.status(), StatusCode::OK); // another key
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(limiter: L, key: F) -> Self {
        RateLimitLayer::with_options(limiter, key, HeaderStyle::Ietf, DenialMode::Reject)
    }

    /// A layer with the header style and denial mode given.
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use keel_rate_limit::{DenialMode, FixedWindow, HeaderStyle, KeyedLimiter, Quota};
    /// use keel_rate_limit::RateLimitLayer;
    /// use std::convert::Infallible;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// let limiter = KeyedLimiter::<(), FixedWindow>::new(Quota::per_hour(1)?);
    /// let key = |_: &Request<()>| ();
    /// let layer = RateLimitLayer::with_options(limiter, key, HeaderStyle::Legacy, DenialMode::Reject);
    /// let service = layer.layer(service_fn(|_: Request<()>| async {
    ///     Ok::<_, Infallible>(Response::new(()))
    /// }));
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let ok = runtime.block_on(service.clone().oneshot(Request::new(())))?;
    /// assert_eq!(ok.headers()["x-ratelimit-limit"], "1");
    /// assert_eq!(ok.headers()["x-ratelimit-remaining"], "0");
    /// assert!(!ok.headers().contains_key("ratelimit")); // no IETF fields in this style
    /// let denied = runtime.block_on(service.clone().oneshot(Request::new(())))?;
    /// assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_options(limiter: L, key: F, style: HeaderStyle, mode: DenialMode) -> Self {
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
    ///
    /// ```
    /// use http::Request;
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota, RateLimitLayer};
    ///
    /// let limiter = KeyedLimiter::<String, Gcra>::new(Quota::per_minute(60)?);
    /// let layer = RateLimitLayer::new(limiter, |req: &Request<()>| {
    ///     req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    /// });
    /// // A paying customer gets more, without rebuilding the layer or its services.
    /// layer.limiter().set_key_quota("key-42".to_string(), Quota::per_minute(6_000)?);
    /// assert_eq!(layer.clone().limiter().quota_for("key-42"), Quota::per_minute(6_000)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limiter(&self) -> &L {
        &self.shared.limiter
    }
}

impl<L, F> Clone for RateLimitLayer<L, F> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<S, L, F> Layer<S> for RateLimitLayer<L, F> {
    type Service = RateLimitService<S, L, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`RateLimitLayer`]; clones share the layer's limiter.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use keel_rate_limit::{Gcra, KeyedLimiter, Quota, RateLimitLayer, RateLimitService};
/// use std::convert::Infallible;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let layer = RateLimitLayer::new(
///     KeyedLimiter::<(), Gcra>::new(Quota::per_hour(1)?),
///     |_: &Request<()>| (),
/// );
/// let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
/// let service: RateLimitService<_, _, _> = layer.layer(inner);
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// // Two clones (two connections, say) draw from the one quota.
/// let a = runtime.block_on(service.clone().oneshot(Request::new(())))?;
/// let b = runtime.block_on(service.clone().oneshot(Request::new(())))?;
/// assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::TOO_MANY_REQUESTS));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RateLimitService<S, L, F> {
    inner: S,
    shared: Arc<Shared<L, F>>,
}

impl<S: Clone, L, F> Clone for RateLimitService<S, L, F> {
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

impl<S, L, F, K, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S, L, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
    L: KeyedRateLimit<K> + Send + Sync + 'static,
    F: Fn(&Request<ReqBody>) -> K + Send + Sync + 'static,
    K: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let shared = self.shared.clone();
        let key = (shared.key)(&request);
        // The readied service goes into the future; a fresh clone waits for the next
        // `poll_ready` (tower's rule for services called from a future).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        ResponseFuture {
            future: Box::pin(async move {
                let decision = shared.limiter.check_key(&key).await;
                if decision.is_denied() && shared.mode == DenialMode::Reject {
                    let mut response = Response::new(ResBody::default());
                    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                    add_headers(response.headers_mut(), &decision, shared.style);
                    return Ok(response);
                }
                request.extensions_mut().insert(decision);
                let mut response = inner.call(request).await?;
                add_headers(response.headers_mut(), &decision, shared.style);
                Ok(response)
            }),
        }
    }
}

/// The response future of [`RateLimitService`]: the limiter's decision, then the inner
/// service's response with the rate-limit headers added, or a `429`.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use keel_rate_limit::{Gcra, KeyedLimiter, Quota, RateLimitLayer};
/// use std::convert::Infallible;
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// let layer = RateLimitLayer::new(
///     KeyedLimiter::<(), Gcra>::new(Quota::per_hour(1)?),
///     |_: &Request<()>| (),
/// );
/// let mut service = layer.layer(service_fn(|_: Request<()>| async {
///     Ok::<_, Infallible>(Response::new(()))
/// }));
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// // `call` returns at once; the decision is made when the future runs.
/// let first = runtime.block_on(service.ready())?.call(Request::new(()));
/// let second = runtime.block_on(service.ready())?.call(Request::new(()));
/// let response = runtime.block_on(first)?;
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(response.headers()["ratelimit-policy"], "\"default\";q=1;w=3600");
/// assert_eq!(runtime.block_on(second)?.status(), StatusCode::TOO_MANY_REQUESTS);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ResponseFuture<T, E> {
    future: Pin<Box<dyn Future<Output = Result<T, E>> + Send>>,
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl<L: fmt::Debug, F> fmt::Debug for RateLimitLayer<L, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.shared.limiter)
            .field("style", &self.shared.style)
            .field("mode", &self.shared.mode)
            .finish_non_exhaustive()
    }
}

impl<S: fmt::Debug, L: fmt::Debug, F> fmt::Debug for RateLimitService<S, L, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limiter", &self.shared.limiter)
            .finish_non_exhaustive()
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
