//! The HTTP side: routes, the access guard, the security headers every answer carries, and the
//! mapping of errors to statuses (details of internal errors go to the log, not to the client).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::data::Source;
use super::pages::{self, Pages};
use super::range::{self, RangeQuery};
use super::statuspage::{self, StatusPageError};
use super::{Auth, DashboardError};

/// Scripts, styles and images only from this server, no inline script or style, nothing framed,
/// forms only back here: an error text that got through escaping still could not run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
    connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// How often the pages fetch their content again, in seconds.
pub const REFRESH_SECONDS: u32 = 10;

struct Shared {
    source: Source,
    auth: Auth,
    pages: Pages,
}

type AppState = Arc<Shared>;

/// Serves until `shutdown` completes. `ready` gets the bound address (the port of `:0` known).
pub async fn serve(
    source: Source,
    auth: Auth,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    super::check_listen(addr, &auth)?;
    let pages = Pages::new()?;
    let state = Arc::new(Shared { source, auth, pages });
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| DashboardError::Bind { addr, why: e.to_string() })?;
    let bound = listener.local_addr().map_err(|e| DashboardError::Bind { addr, why: e.to_string() })?;
    ready(bound);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| DashboardError::Bind { addr, why: e.to_string() })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(overview_page))
        .route("/monitors/{id}", get(monitor_page))
        .route("/api/v1/overview", get(overview_api))
        .route("/api/v1/monitors/{id}", get(monitor_api))
        .route("/api/v1/monitors/{id}/results/{result}/screenshot", get(screenshot))
        .route("/status/{slug}", get(status_page))
        .route("/api/v1/status/{slug}", get(status_api))
        .route("/assets/{name}", get(asset))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// What anyone may fetch: the public status pages, the style sheet and script (they hold nothing
/// of the data) and the liveness answer.
fn is_public(path: &str) -> bool {
    path.starts_with("/status/")
        || path.starts_with("/api/v1/status/")
        || path.starts_with("/assets/")
        || path == "/healthz"
}

async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if is_public(&path) || state.auth.allows(header) {
        return next.run(request).await;
    }
    let fragment = request.uri().query().is_some_and(|q| q.split('&').any(|p| p == "fragment=1"));
    match &state.auth {
        // A browser cannot put a bearer token on a navigation: the page itself (no data in it)
        // asks for the token, keeps it in session storage and fetches its content with it.
        Auth::Bearer(_) if !path.starts_with("/api/") && !fragment => match state.pages.login() {
            Ok(html) => Html(html).into_response(),
            Err(e) => error_response(e, false),
        },
        Auth::Bearer(_) => unauthorized("Bearer"),
        _ => unauthorized("Basic realm=\"geoctl dashboard\", charset=\"UTF-8\""),
    }
}

fn unauthorized(challenge: &'static str) -> Response {
    let body = Json(serde_json::json!({ "error": "authentication required" }));
    let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

async fn security_headers(request: Request, next: Next) -> Response {
    let asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let cache = if asset { "public, max-age=300" } else { "no-store" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// A page's query: its range, and whether only its content is wanted (the script's refresh).
#[derive(Debug, Deserialize)]
struct PageQuery {
    #[serde(flatten)]
    range: RangeQuery,
    fragment: Option<String>,
}

impl PageQuery {
    fn fragment(&self) -> bool {
        self.fragment.as_deref() == Some("1")
    }
}

/// The status an error answers with, and what the client may read of it.
fn error_parts(e: DashboardError) -> (StatusCode, String) {
    let status = match &e {
        DashboardError::NoMonitor(_) | DashboardError::StatusPage(StatusPageError::NotFound(_)) => {
            StatusCode::NOT_FOUND
        }
        DashboardError::Range(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("dashboard: {e}");
        (status, "internal error; the dashboard's log says more".to_string())
    } else {
        (status, e.to_string())
    }
}

fn error_html(message: &str) -> String {
    format!("<p class=\"error\">{}</p>", crate::report::html::escape(message))
}

fn error_response(e: DashboardError, json: bool) -> Response {
    let (status, message) = error_parts(e);
    if json {
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    } else {
        (status, Html(error_html(&message))).into_response()
    }
}

fn scheme(state: &Shared) -> &'static str {
    state.auth.scheme().unwrap_or("")
}

async fn overview_api(State(state): State<AppState>, Query(q): Query<RangeQuery>) -> Response {
    let result = async {
        let range = range::resolve(&q, chrono::Utc::now())?;
        state.source.overview(&range).await
    };
    match result.await {
        Ok(answer) => ([(header::CONTENT_TYPE, "application/json")], answer.json.clone()).into_response(),
        Err(e) => error_response(e, true),
    }
}

async fn monitor_api(State(state): State<AppState>, Path(id): Path<Uuid>, Query(q): Query<RangeQuery>) -> Response {
    let result = async {
        let range = range::resolve(&q, chrono::Utc::now())?;
        state.source.monitor(id, &range).await
    };
    match result.await {
        Ok(page) => Json(page).into_response(),
        Err(e) => error_response(e, true),
    }
}

async fn overview_page(State(state): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let result = async {
        let range = range::resolve(&q.range, chrono::Utc::now())?;
        let answer = state.source.overview(&range).await?;
        state.pages.overview(&answer.overview)
    };
    page(&state, "Overview", q.fragment(), result.await)
}

async fn monitor_page(State(state): State<AppState>, Path(id): Path<Uuid>, Query(q): Query<PageQuery>) -> Response {
    let result = async {
        let range = range::resolve(&q.range, chrono::Utc::now())?;
        let monitor = state.source.monitor(id, &range).await?;
        Ok((monitor.monitor.name.clone(), state.pages.monitor(&monitor)?))
    };
    match result.await {
        Ok((name, html)) => page(&state, &name, q.fragment(), Ok(html)),
        Err(e) => page(&state, "Monitor", q.fragment(), Err(e)),
    }
}

/// The page's content alone for the script's refresh, or inside the layout.
fn page(state: &Shared, title: &str, fragment: bool, content: Result<String, DashboardError>) -> Response {
    let (status, main) = match content {
        Ok(html) => (StatusCode::OK, html),
        Err(e) => {
            let (status, message) = error_parts(e);
            (status, error_html(&message))
        }
    };
    if fragment {
        return (status, Html(main)).into_response();
    }
    match state.pages.layout(title, &main, scheme(state)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => error_response(e, false),
    }
}

async fn status_api(State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    match statuspage::public(&state.source.pool, &slug, chrono::Utc::now()).await {
        Ok(page) => Json(page).into_response(),
        Err(e) => error_response(e.into(), true),
    }
}

async fn status_page(State(state): State<AppState>, Path(slug): Path<String>, Query(q): Query<PageQuery>) -> Response {
    let result = async {
        let page = statuspage::public(&state.source.pool, &slug, chrono::Utc::now()).await?;
        Ok::<_, DashboardError>((page.title.clone(), state.pages.status(&page)?))
    };
    let (status, title, main) = match result.await {
        Ok((title, html)) => (StatusCode::OK, title, html),
        Err(e) => {
            let (status, message) = error_parts(e);
            (status, "Status".to_string(), error_html(&message))
        }
    };
    if q.fragment() {
        return (status, Html(main)).into_response();
    }
    match state.pages.public_layout(&title, &main) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => error_response(e, false),
    }
}

async fn screenshot(State(state): State<AppState>, Path((id, result)): Path<(Uuid, i64)>) -> Response {
    match crate::results::query::screenshot(&state.source.pool, id, result).await {
        Ok(Some(bytes)) => {
            let kind = match bytes.as_slice() {
                [0x89, b'P', b'N', b'G', ..] => "image/png",
                [0xff, 0xd8, 0xff, ..] => "image/jpeg",
                _ => "application/octet-stream",
            };
            ([(header::CONTENT_TYPE, kind)], bytes).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "no such screenshot" }))).into_response(),
        Err(e) => error_response(e.into(), true),
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    match pages::asset(&name) {
        Some((kind, body)) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
