//! The agent's HTTP endpoints: liveness, readiness and metrics.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::Metrics;
use super::{stopped, Health};

/// Serves until `stop` turns true.
pub async fn serve(listener: TcpListener, health: Arc<Health>, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let (health, metrics) = (health.clone(), metrics.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let (health, metrics) = (health.clone(), metrics.clone());
                async move { Ok::<_, Infallible>(respond(&req, &health, &metrics)) }
            });
            let _ = http1::Builder::new().keep_alive(false).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn respond(req: &Request<Incoming>, health: &Health, metrics: &Metrics) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
    }
    match req.uri().path() {
        "/health/live" => text(StatusCode::OK, "live\n".into()),
        "/health/ready" | "/health" => {
            let (redis, db) = (health.redis_ok(), health.db_ok());
            let body = format!(
                "{{\"ready\":{},\"redis\":{},\"database\":{},\"draining\":{}}}\n",
                redis && db && !health.draining(),
                redis,
                db,
                health.draining()
            );
            let status =
                if redis && db && !health.draining() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let mut response = text(status, body);
            response.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().expect("valid"));
            response
        }
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics.render());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8".parse().expect("valid"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found; try /health/live, /health/ready or /metrics\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
