//! One active alerter across every region: a session advisory lock held on a
//! connection of its own.
//!
//! PostgreSQL releases a session lock the moment its connection ends: the
//! leader's process dying (SIGKILL included) closes the socket, and its
//! backend ends with it, so a standby polling every [`RETRY`] takes over within
//! that. A leader that loses its lock connection stops evaluating before its
//! next tick ([`Leadership::still`]), so it never acts without the lock for
//! longer than one tick; and because ticks also serialize on
//! [`super::store::TICK_LOCK`] and carry on from committed state, even that
//! tick could not count a result or write an event twice.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};

/// The session lock's key: "geoctl" and 1.
pub const LEADER_LOCK: i64 = 0x6765_6f63_746c_0001;

/// How often a standby tries to take the lock.
pub const RETRY: Duration = Duration::from_secs(2);

/// The lock, held on a connection no pool will hand to anyone else.
pub struct Leadership {
    conn: PgConnection,
}

impl Leadership {
    /// Takes the lock if no one holds it. The connection is taken out of the
    /// pool for good, so the lock lives exactly as long as this value.
    pub async fn try_take(pool: &PgPool) -> Result<Option<Self>, sqlx::Error> {
        let mut conn = pool.acquire().await?.detach();
        let taken: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK).fetch_one(&mut conn).await?;
        if taken {
            // A leader that vanishes without closing its socket (a cut cable, a
            // frozen host) would hold the lock until the server notices: have
            // the server probe this connection so it drops it in about 10 s.
            // Ignored on Unix sockets, where the kernel tells at once.
            sqlx::raw_sql(
                "SET tcp_keepalives_idle = 4; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; \
                 SET tcp_user_timeout = 10000",
            )
            .execute(&mut conn)
            .await?;
            Ok(Some(Leadership { conn }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Whether the lock is still held: its connection answers and the server
    /// still lists the lock as ours.
    pub async fn still(&mut self) -> bool {
        let held: Result<bool, sqlx::Error> = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                            AND granted AND objsubid = 1
                            AND ((classid::bigint << 32) | objid::bigint) = $1)",
        )
        .bind(LEADER_LOCK)
        .fetch_one(&mut self.conn)
        .await;
        held.unwrap_or(false)
    }

    /// Gives the lock up (a clean shutdown): a standby need not wait for anything.
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(LEADER_LOCK).execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}
