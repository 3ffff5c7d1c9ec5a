//! The DevTools protocol over Chromium's `--remote-debugging-pipe`: JSON
//! messages separated by NUL bytes, commands numbered by us, replies carrying
//! the number back, events carrying a `method` and, with flattened sessions,
//! the `sessionId` of the page they come from.
//!
//! One journey drives one connection from one task, so there is no
//! multiplexing: [`Connection::recv`] hands every message to the caller,
//! which waits for its reply and books the events it sees meanwhile.

use std::io;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::process::Pipe;

/// One message from the browser: a reply (`id`) or an event (`method`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: Option<u64>,
    pub method: Option<String>,
    #[serde(default)]
    pub params: Value,
    pub result: Option<Value>,
    pub error: Option<ProtocolError>,
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ProtocolError {
    pub message: String,
}

pub struct Connection {
    pipe_out: tokio::net::unix::pipe::Sender,
    pipe_in: BufReader<tokio::net::unix::pipe::Receiver>,
    /// A message being read; kept across cancelled reads (`read_until` leaves
    /// what it read here), cleared once whole.
    partial: Vec<u8>,
    next_id: u64,
    /// Set while a command is being written: a write cut short by a timeout
    /// leaves half a message in the pipe, and nothing after it would parse.
    writing: bool,
}

impl Connection {
    pub fn new(pipe: Pipe) -> Self {
        Connection {
            pipe_out: pipe.to_browser,
            pipe_in: BufReader::with_capacity(256 << 10, pipe.from_browser),
            partial: Vec::new(),
            next_id: 0,
            writing: false,
        }
    }

    /// Sends a command and returns its number; the reply comes from [`recv`](Self::recv).
    pub async fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> io::Result<u64> {
        if self.writing {
            return Err(io::Error::other("the DevTools pipe broke off in the middle of a command"));
        }
        self.next_id += 1;
        let mut message = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&message)?;
        bytes.push(0);
        self.writing = true;
        self.pipe_out.write_all(&bytes).await?;
        self.writing = false;
        Ok(self.next_id)
    }

    /// The next message. Cancel-safe: a read cut short resumes where it stopped.
    pub async fn recv(&mut self) -> io::Result<Message> {
        self.pipe_in.read_until(0, &mut self.partial).await?;
        // read_until stops short of a NUL only at the end of the stream.
        if self.partial.pop() != Some(0) {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "Chromium closed the DevTools pipe"));
        }
        let bytes = std::mem::take(&mut self.partial);
        serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("a DevTools message: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_events_parse() {
        let reply: Message = serde_json::from_str(r#"{"id":3,"result":{"frameId":"F"},"sessionId":"S"}"#).unwrap();
        assert_eq!((reply.id, reply.session_id.as_deref()), (Some(3), Some("S")));
        let event: Message =
            serde_json::from_str(r#"{"method":"Page.loadEventFired","params":{"timestamp":1.5}}"#).unwrap();
        assert_eq!(event.method.as_deref(), Some("Page.loadEventFired"));
        let error: Message = serde_json::from_str(r#"{"id":4,"error":{"code":-32000,"message":"No node"}}"#).unwrap();
        assert_eq!(error.error.unwrap().message, "No node");
    }
}
