//! Background jobs started by `tapestry serve`.
//!
//! **Expected-recovery curves.** Every practice's curves are refitted from its own completed
//! (discharged) episodes when there is enough new data: at least the trajectory module's minimum
//! reference set, and 10 % (at least 20) more episodes than the current curve was fitted on
//! (`trajectory::refit_due`). Each fit is stored as a new version; the pipeline uses the latest.

use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;
use tapestry_domain::clock::Clock;
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::trajectory::{fit_expected_recovery, refit_due, EmpiricalConfig};
use tapestry_store::Store;

/// How often the curve job looks for new data.
pub const CURVE_JOB_EVERY: Duration = Duration::from_secs(6 * 3600);

/// A curve the job stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Refit {
    pub instrument: String,
    pub version: u32,
    pub n_episodes: usize,
}

/// Instruments whose trajectories are tracked: those with a reliable-change threshold.
fn tracked(registry: &InstrumentRegistry) -> Vec<String> {
    registry
        .iter()
        .filter(|d| d.reliable_change_threshold().is_some())
        .map(|d| d.id.clone())
        .collect()
}

/// One pass of the curve job over every practice. Returns the curves it stored. A practice or
/// instrument whose data cannot be fitted (e.g. no spread in intake scores) is skipped and
/// logged; the previous version stays in use.
pub async fn refit_recovery_curves(
    store: &Arc<dyn Store>,
    registry: &InstrumentRegistry,
    config: &EmpiricalConfig,
    clock: &dyn Clock,
) -> Result<Vec<Refit>> {
    let mut out = Vec::new();
    let instruments = tracked(registry);
    for practice in store.practices().await? {
        for instrument in &instruments {
            let Some(def) = registry.get(instrument) else {
                continue;
            };
            let reference = store.reference_episodes(practice.id, instrument).await?;
            let usable = reference.iter().filter(|e| e.scores.len() >= 2).count();
            let current = store.latest_recovery_curve(practice.id, instrument).await?;
            if !refit_due(current.as_ref().map(|c| c.curve.n_episodes), usable, config) {
                continue;
            }
            let now = clock.now();
            match fit_expected_recovery(def, &reference, config, now.date_naive(), "pending") {
                Ok(curve) => {
                    let stored = store
                        .insert_recovery_curve(practice.id, &curve, now)
                        .await?;
                    tracing::info!(practice = %practice.id, instrument = %instrument, version = stored.version, n = curve.n_episodes, "expected-recovery curve refitted");
                    out.push(Refit {
                        instrument: instrument.clone(),
                        version: stored.version,
                        n_episodes: curve.n_episodes,
                    });
                }
                Err(e) => {
                    tracing::warn!(practice = %practice.id, instrument = %instrument, "expected-recovery curve not refitted: {e}");
                }
            }
        }
    }
    Ok(out)
}

/// Starts the curve job: one pass at start-up, then every [`CURVE_JOB_EVERY`].
pub fn spawn_curve_job(
    store: Arc<dyn Store>,
    registry: Arc<InstrumentRegistry>,
    clock: Arc<dyn Clock>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = EmpiricalConfig::default();
        let mut tick = tokio::time::interval(CURVE_JOB_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = refit_recovery_curves(&store, &registry, &config, clock.as_ref()).await
            {
                tracing::warn!("expected-recovery curve job failed: {e:#}");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Ingestor;
    use chrono::{Duration as Days, TimeZone, Utc};
    use tapestry_domain::client::Client;
    use tapestry_domain::clock::FixedClock;
    use tapestry_domain::episode::{Episode, EpisodeStatus};
    use tapestry_domain::ingest::IngestRequest;
    use tapestry_domain::practice::Practice;
    use tapestry_domain::scoring::Answers;
    use tapestry_store::{IngestSettings, SqliteStore};

    /// PHQ-9 answers summing to `total` (items 1–8 only, item 9 = 0).
    fn phq9_with_total(total: u32) -> Vec<i32> {
        let mut left = total.min(24);
        (0..9)
            .map(|k| {
                if k == 8 {
                    return 0;
                }
                let v = left.min(3);
                left -= v;
                v as i32
            })
            .collect()
    }

    async fn seed_completed(
        store: &Arc<dyn Store>,
        ingestor: &Ingestor,
        practice: &Practice,
        episodes: u32,
        start: chrono::DateTime<Utc>,
    ) {
        for e in 0..episodes {
            let client = Client::new(practice.id, "Seeded", None, None, start).unwrap();
            store.insert_client(&client).await.unwrap();
            let episode = Episode::open(practice.id, client.id, start);
            store.insert_episode(&episode).await.unwrap();
            let intake = 12 + e % 10;
            let requests: Vec<IngestRequest> = (0..6u32)
                .map(|t| IngestRequest {
                    practice_id: practice.id,
                    client_id: client.id,
                    episode_id: episode.id,
                    instrument: "phq9".into(),
                    answers: Answers::from_values(&phq9_with_total(
                        intake.saturating_sub(t * (1 + e % 3)),
                    )),
                    idempotency_key: None,
                    submitted_at: start + Days::weeks(i64::from(t)),
                })
                .collect();
            for r in ingestor.submit_batch(&requests).await.unwrap() {
                r.unwrap();
            }
            store
                .move_episode(
                    practice.id,
                    episode.id,
                    EpisodeStatus::Referral,
                    EpisodeStatus::Discharged,
                    start + Days::weeks(6),
                )
                .await
                .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn curves_are_fitted_when_enough_episodes_complete_and_versioned_on_new_data() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        sqlite.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let registry = Arc::new(InstrumentRegistry::embedded().unwrap());
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
        let clock = FixedClock::new(start + Days::weeks(10));
        let practice = Practice::new("Curves", "UTC", start).unwrap();
        store.insert_practice(&practice).await.unwrap();
        let ingestor = Ingestor::new(store.clone(), registry.clone(), IngestSettings::default());
        let config = EmpiricalConfig {
            min_reference_episodes: 30,
            ..EmpiricalConfig::default()
        };
        // 29 completed episodes: not enough, nothing stored.
        seed_completed(&store, &ingestor, &practice, 29, start).await;
        let none = refit_recovery_curves(&store, &registry, &config, &clock)
            .await
            .unwrap();
        assert!(none.is_empty());
        assert!(store
            .latest_recovery_curve(practice.id, "phq9")
            .await
            .unwrap()
            .is_none());
        // The 30th: version 1, fitted on 30 episodes, dated by the clock.
        seed_completed(&store, &ingestor, &practice, 1, start).await;
        let first = refit_recovery_curves(&store, &registry, &config, &clock)
            .await
            .unwrap();
        assert_eq!(
            first,
            vec![Refit {
                instrument: "phq9".into(),
                version: 1,
                n_episodes: 30
            }]
        );
        let stored = store
            .latest_recovery_curve(practice.id, "phq9")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.fitted_at, clock.now());
        assert_eq!(stored.curve.version, "phq9-v1");
        // Scores fall with time in the seed, so the curve expects improvement.
        assert!(stored.curve.expected(18.0, 6) < stored.curve.expected(18.0, 2));
        // 10 more episodes are not enough new data (20 needed); 20 more are.
        seed_completed(&store, &ingestor, &practice, 10, start).await;
        assert!(refit_recovery_curves(&store, &registry, &config, &clock)
            .await
            .unwrap()
            .is_empty());
        seed_completed(&store, &ingestor, &practice, 10, start).await;
        clock.advance(Days::days(1));
        let second = refit_recovery_curves(&store, &registry, &config, &clock)
            .await
            .unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!((second[0].version, second[0].n_episodes), (2, 50));
        // A practice with no data gets no curve.
        let empty = Practice::new("Empty", "UTC", start).unwrap();
        store.insert_practice(&empty).await.unwrap();
        assert!(refit_recovery_curves(&store, &registry, &config, &clock)
            .await
            .unwrap()
            .is_empty());
    }
}
