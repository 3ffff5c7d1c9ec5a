//! Public status pages: the `status_pages` table (`geoctl statuspage add/list/remove`) and what
//! `/status/<slug>` shows of the chosen monitors — each one's name, current state, 90 days of
//! daily uptime from the summaries, and its open incidents' cause and start. Nothing else: no
//! target, no region, no error text, no incident summary (those can name hosts).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::monitor::{MonitorError, MonitorStore, Placement};
use crate::results::query::day_summaries;
use crate::results::status::{statuses, State};

/// Days of uptime bars a page shows.
pub const DAYS: i64 = 90;

#[derive(Debug, thiserror::Error)]
pub enum StatusPageError {
    #[error("invalid slug `{0}`: use 1-63 lowercase letters, digits and '-', starting with a letter or digit (e.g. public-api)")]
    InvalidSlug(String),
    #[error("the title must have 1 to 200 characters")]
    InvalidTitle,
    #[error("give the monitors to publish: --monitors web,api")]
    NoMonitors,
    #[error("no status page `{0}`; `geoctl statuspage list` shows them")]
    NotFound(String),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error(transparent)]
    Alert(#[from] crate::alert::AlertError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl crate::error::Coded for StatusPageError {
    fn exit(&self) -> crate::error::Exit {
        match self {
            StatusPageError::InvalidSlug(_)
            | StatusPageError::InvalidTitle
            | StatusPageError::NoMonitors
            | StatusPageError::NotFound(_) => crate::error::Exit::Input,
            StatusPageError::Monitor(e) => crate::error::Coded::exit(e),
            StatusPageError::Alert(_) | StatusPageError::Db(_) => crate::error::Exit::Failed,
        }
    }
}

/// A status page as `statuspage list` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StatusPage {
    pub slug: String,
    pub title: String,
    /// The published monitors' names, in page order.
    pub monitors: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn validate_slug(slug: &str) -> Result<(), StatusPageError> {
    let ok = (1..=63).contains(&slug.len())
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(StatusPageError::InvalidSlug(slug.to_string()))
    }
}

/// Creates the page, or replaces its title and monitors (running it again is safe). Every monitor
/// is resolved first, in the same transaction, so an unknown one leaves nothing written.
pub async fn put(pool: &PgPool, slug: &str, title: &str, monitors: &[String]) -> Result<StatusPage, StatusPageError> {
    validate_slug(slug)?;
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(StatusPageError::InvalidTitle);
    }
    if monitors.is_empty() {
        return Err(StatusPageError::NoMonitors);
    }
    let mut tx = pool.begin().await?;
    let mut ids: Vec<Uuid> = Vec::new();
    for reference in monitors {
        let id = MonitorStore::resolve_id(&mut tx, reference.trim()).await?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    sqlx::query(
        "INSERT INTO status_pages (slug, title) VALUES ($1, $2)
         ON CONFLICT (slug) DO UPDATE SET title = EXCLUDED.title, updated_at = now()",
    )
    .bind(slug)
    .bind(title)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM status_page_monitors WHERE slug = $1").bind(slug).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO status_page_monitors (slug, monitor_id, position)
         SELECT $1, id, position::int FROM unnest($2::uuid[]) WITH ORDINALITY AS t(id, position)",
    )
    .bind(slug)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    list(pool).await?.into_iter().find(|p| p.slug == slug).ok_or_else(|| StatusPageError::NotFound(slug.into()))
}

pub async fn list(pool: &PgPool) -> Result<Vec<StatusPage>, StatusPageError> {
    Ok(sqlx::query_as(
        "SELECT p.slug, p.title, p.created_at, p.updated_at,
                COALESCE(array_agg(m.name::text ORDER BY s.position) FILTER (WHERE m.id IS NOT NULL), '{}') AS monitors
         FROM status_pages p
         LEFT JOIN status_page_monitors s ON s.slug = p.slug
         LEFT JOIN monitors m ON m.id = s.monitor_id
         GROUP BY p.slug ORDER BY p.slug",
    )
    .fetch_all(pool)
    .await?)
}

/// Removes the page; its monitors stay as they are.
pub async fn remove(pool: &PgPool, slug: &str) -> Result<StatusPage, StatusPageError> {
    let page =
        list(pool).await?.into_iter().find(|p| p.slug == slug).ok_or_else(|| StatusPageError::NotFound(slug.into()))?;
    sqlx::query("DELETE FROM status_pages WHERE slug = $1").bind(slug).execute(pool).await?;
    Ok(page)
}

/// What `/status/<slug>` and `/api/v1/status/<slug>` show.
#[derive(Debug, Clone, Serialize)]
pub struct PublicPage {
    pub title: String,
    /// The worst state of the monitors.
    pub state: State,
    pub monitors: Vec<PublicMonitor>,
    pub generated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublicMonitor {
    pub name: String,
    pub state: State,
    /// Uptime over the days that have checks.
    pub uptime_percentage: Option<f64>,
    /// Oldest first, one per UTC day, today last.
    pub days: Vec<Day>,
    pub open_incidents: Vec<PublicIncident>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Day {
    pub day: NaiveDate,
    pub checks: i64,
    pub successful: i64,
    /// `None`: no check that day.
    pub uptime_percentage: Option<f64>,
    /// `good`, `degraded`, `poor` or `none`: how the bar is coloured.
    pub grade: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublicIncident {
    /// `down` or `latency`.
    pub cause: String,
    pub severity: String,
    pub opened_at: DateTime<Utc>,
    pub acknowledged: bool,
}

fn grade(uptime: Option<f64>) -> &'static str {
    match uptime {
        None => "none",
        Some(p) => match crate::report::UptimeGrade::of(p) {
            crate::report::UptimeGrade::Good => "good",
            crate::report::UptimeGrade::Degraded => "degraded",
            crate::report::UptimeGrade::Poor => "poor",
        },
    }
}

fn worst(states: impl Iterator<Item = State>) -> State {
    let rank = |s: &State| match s {
        State::Up => 0,
        State::Unknown => 1,
        State::Degraded => 2,
        State::Down => 3,
    };
    states.max_by_key(rank).unwrap_or(State::Unknown)
}

/// The public view of page `slug`, as of `now`.
pub async fn public(pool: &PgPool, slug: &str, now: DateTime<Utc>) -> Result<PublicPage, StatusPageError> {
    let title: Option<String> =
        sqlx::query_scalar("SELECT title FROM status_pages WHERE slug = $1").bind(slug).fetch_optional(pool).await?;
    let title = title.ok_or_else(|| StatusPageError::NotFound(slug.into()))?;
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT monitor_id FROM status_page_monitors WHERE slug = $1 ORDER BY position")
            .bind(slug)
            .fetch_all(pool)
            .await?;
    let store = MonitorStore::new(pool, Placement { geo_distribution: true, default_region: None });
    let mut monitors = Vec::new();
    for id in &ids {
        if let Some(m) = store.find(*id).await? {
            monitors.push(m);
        }
    }
    let states = statuses(pool, &monitors, now).await?;
    let today = now.date_naive();
    let first = today - chrono::Duration::days(DAYS - 1);
    let summaries = day_summaries(pool, &ids, first, today + chrono::Duration::days(1)).await?;
    let open = crate::alert::manage::open_for(pool, &ids).await?;
    let published = monitors
        .iter()
        .zip(states)
        .map(|(m, status)| {
            let days: Vec<Day> = (0..DAYS)
                .map(|i| {
                    let day = first + chrono::Duration::days(i);
                    let (checks, successful) = summaries
                        .iter()
                        .filter(|s| s.monitor_id == m.id && s.day == day)
                        .fold((0, 0), |(c, s), d| (c + d.checks, s + d.successful));
                    let uptime = (checks > 0).then(|| 100.0 * successful as f64 / checks as f64);
                    Day { day, checks, successful, uptime_percentage: uptime, grade: grade(uptime) }
                })
                .collect();
            let (checks, successful) = days.iter().fold((0, 0), |(c, s), d| (c + d.checks, s + d.successful));
            PublicMonitor {
                name: m.name.clone(),
                state: status.state,
                uptime_percentage: (checks > 0).then(|| 100.0 * successful as f64 / checks as f64),
                days,
                open_incidents: open
                    .iter()
                    .filter(|i| i.monitor_id() == Some(m.id))
                    .map(|i| PublicIncident {
                        cause: i.cause.clone(),
                        severity: i.severity.clone(),
                        opened_at: i.opened_at,
                        acknowledged: i.acknowledged_at.is_some(),
                    })
                    .collect(),
            }
        })
        .collect::<Vec<_>>();
    Ok(PublicPage { title, state: worst(published.iter().map(|m| m.state)), monitors: published, generated_at: now })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe() {
        for good in ["public-api", "a", "status2"] {
            assert!(validate_slug(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "Public", "a/b", "a b", &"x".repeat(64)] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_worst_state_wins() {
        assert_eq!(worst([State::Up, State::Degraded].into_iter()), State::Degraded);
        assert_eq!(worst([State::Up, State::Down, State::Unknown].into_iter()), State::Down);
        assert_eq!(worst(std::iter::empty()), State::Unknown);
    }
}
