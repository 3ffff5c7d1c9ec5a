//! Is a server there at all? Asked once, quickly, before a pool starts retrying: a pool treats
//! "connection refused" as a server still starting and retries until its timeout, so the
//! operator would wait 10 s to read "pool timed out". With this check a closed port fails at once
//! and says so. Shared by the PostgreSQL pool and the Redis connections of the queues.

use std::time::Duration;

/// How long to wait for a TCP handshake before calling the server unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens (and closes) one TCP connection to `host:port`, trying each address the name
/// resolves to. The error is the cause in words: "connection refused", "no answer within 3s",
/// "cannot resolve host `db`: …".
pub async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let lookup = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("resolving host `{host}` took longer than {}", crate::duration::format(timeout)))?
        .map_err(|e| format!("cannot resolve host `{host}`: {e}"))?;
    let mut last = format!("host `{host}` has no address");
    for addr in lookup {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = describe_connect_error(&e),
            Err(_) => last = format!("no answer within {}", crate::duration::format(timeout)),
        }
    }
    Err(last)
}

/// The cause of a failed connect, in the words an operator searches for.
pub fn describe_connect_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused (nothing listens on that port)".into(),
        ErrorKind::TimedOut => "connection timed out".into(),
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => format!("unreachable: {e}"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_refused_at_once() {
        // Bound but not listening: connections are refused, and no one else can take the port.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        let started = std::time::Instant::now();
        let err = tcp("127.0.0.1", port, CONNECT_TIMEOUT).await.unwrap_err();
        assert!(err.contains("connection refused"), "{err}");
        assert!(started.elapsed() < CONNECT_TIMEOUT, "refused is not a timeout");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tcp("127.0.0.1", listener.local_addr().unwrap().port(), CONNECT_TIMEOUT).await.unwrap();
    }
}
