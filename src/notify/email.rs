//! The email channel: SMTP through lettre over rustls (ring), STARTTLS or implicit TLS, with a
//! plain-text and an HTML part. The Message-ID carries the idempotency key, so a repeated
//! attempt is recognisable as the same message.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channel::{Channel, SmtpTls};
use super::render::Rendered;
use super::send::{snippet, Answer, Verdict};
use super::Notice;
use crate::config::Secret;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// The SMTP transport of a channel, or why it cannot be built.
fn transport(
    channel: &Channel,
    password: Option<&Secret>,
    ca: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Transport, String> {
    let s = &channel.spec.settings;
    let host = s.smtp_host.clone().unwrap_or_default();
    let mode = s.smtp_tls.unwrap_or_default();
    let mut builder = Transport::builder_dangerous(&host).port(s.smtp_port.unwrap_or(mode.default_port()));
    if mode != SmtpTls::None {
        let mut params = TlsParameters::builder(host.clone());
        if let Some(pem) = ca {
            let cert = Certificate::from_pem(&pem).map_err(|e| format!("CA file: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        let params = params.build_rustls().map_err(|e| format!("TLS: {e}"))?;
        builder = builder.tls(if mode == SmtpTls::Tls { Tls::Wrapper(params) } else { Tls::Required(params) });
    }
    if let (Some(user), Some(password)) = (&s.smtp_user, password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
    }
    Ok(builder.timeout(Some(timeout)).build())
}

fn message(channel: &Channel, notice: &Notice, text: &Rendered) -> Result<Message, String> {
    let s = &channel.spec.settings;
    let parse = |a: &str| a.parse::<Mailbox>().map_err(|e| format!("address `{a}`: {e}"));
    let mut builder = Message::builder()
        .from(parse(s.from.as_deref().unwrap_or_default())?)
        .subject(text.title.clone())
        .message_id(Some(format!("<{}@geoctl>", notice.idempotency_key)));
    for to in &s.to {
        builder = builder.to(parse(to)?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(text.text.clone(), text.html.clone()))
        .map_err(|e| format!("building the message: {e}"))
}

/// One attempt: SMTP 2xx is delivered, a permanent (5xx) reply rejected, anything else
/// (4xx, no connection, TLS) tried again.
pub(super) async fn send(
    channel: &Channel,
    notice: &Notice,
    text: &Rendered,
    password: Option<&Secret>,
    ca: Option<Vec<u8>>,
    timeout: Duration,
) -> Answer {
    let built = transport(channel, password, ca, timeout).and_then(|t| Ok((t, message(channel, notice, text)?)));
    let (transport, message) = match built {
        Ok(built) => built,
        Err(detail) => return Answer { verdict: Verdict::Retry, status: None, detail },
    };
    match transport.send(message).await {
        Ok(reply) => Answer {
            verdict: Verdict::Delivered,
            status: code(&reply.code().to_string()),
            detail: snippet(reply.message().collect::<Vec<_>>().join(" ").as_bytes()),
        },
        Err(e) => Answer {
            verdict: if e.is_permanent() { Verdict::Rejected } else { Verdict::Retry },
            status: e.status().and_then(|c| code(&c.to_string())),
            detail: snippet(crate::error::chain(&e).as_bytes()),
        },
    }
}

fn code(text: &str) -> Option<u16> {
    text.parse().ok()
}

/// Whether the channel's server can be reached and greets with TLS and auth as configured
/// (`channel add` warns when not).
pub async fn check(channel: &Channel, password: Option<&Secret>, timeout: Duration) -> Result<(), String> {
    let ca = match channel.spec.settings.ca_file.as_deref() {
        Some(path) => Some(super::channel::read_ca(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let transport = transport(channel, password, ca, timeout)?;
    match transport.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => Err("the server did not answer NOOP".into()),
        Err(e) => {
            let text = crate::error::chain(&e);
            Err(password.map_or_else(|| text.clone(), |p| super::send::scrub(&text, p)))
        }
    }
}
