//! The submission pipeline as the application uses it: one [`Ingestor`] for the future HTTP
//! API, the demo and the benchmark. Decisions live in `tapestry_domain::ingest`; the durable
//! one-transaction commit in `tapestry_store::MeasurementStore::ingest`. This module adds the
//! group-commit mode (a batch closes at 256 submissions or 1 ms after its first) and the
//! `tapestry bench ingest` driver used by B3 and the kill -9 durability test.

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapestry_domain::client::Client;
use tapestry_domain::episode::Episode;
use tapestry_domain::ids::{ClientId, EpisodeId};
use tapestry_domain::ingest::IngestRequest;
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::practice::Practice;
use tapestry_domain::scoring::Answers;
use tapestry_store::{IngestResult, IngestSettings, Store};
use tokio::sync::{mpsc, oneshot};

/// Most submissions committed together in group-commit mode.
pub const GROUP_MAX: usize = 256;
/// Longest a submission waits for its group to fill.
pub const GROUP_WAIT: Duration = Duration::from_millis(1);

/// Runs submissions through the pipeline and commits them durably.
#[derive(Clone)]
pub struct Ingestor {
    store: Arc<dyn Store>,
    registry: Arc<InstrumentRegistry>,
    settings: IngestSettings,
}

impl Ingestor {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<InstrumentRegistry>,
        settings: IngestSettings,
    ) -> Self {
        Ingestor {
            store,
            registry,
            settings,
        }
    }

    /// One submission, one commit. Returns after the commit is durable.
    pub async fn submit(&self, request: IngestRequest) -> Result<IngestResult> {
        let mut out = self.submit_batch(std::slice::from_ref(&request)).await?;
        out.pop()
            .ok_or_else(|| anyhow!("ingest: the store returned no result"))
    }

    /// Many submissions in one commit; one result per request, in order.
    pub async fn submit_batch(&self, requests: &[IngestRequest]) -> Result<Vec<IngestResult>> {
        Ok(self
            .store
            .ingest(&self.registry, &self.settings, requests)
            .await?)
    }

    /// Starts group commit: a task that gathers submissions into groups of up to `max` and
    /// commits each group in one transaction, one group at a time, in arrival order. When no
    /// group is committing, a group closes `wait` after its first submission (or when full);
    /// while one commits, the next gathers (up to `max`) and starts the moment it is done, and
    /// only then are the finished group's callers answered. Every caller gets its own result
    /// after its group's commit.
    pub fn group_commit(&self, max: usize, wait: Duration) -> GroupCommitter {
        let max = max.max(1);
        let (tx, rx) = mpsc::channel::<Queued>(max * 4);
        tokio::spawn(commit_groups(self.clone(), rx, max, wait));
        GroupCommitter { tx }
    }
}

/// A group whose transaction is under way.
struct Committing {
    commit: tokio::task::JoinHandle<Result<Vec<IngestResult>>>,
    replies: Vec<oneshot::Sender<std::result::Result<IngestResult, String>>>,
}

impl Committing {
    fn start(ingestor: &Ingestor, group: Vec<Queued>) -> Self {
        let (requests, replies): (Vec<IngestRequest>, Vec<_>) =
            group.into_iter().map(|q| (q.request, q.reply)).unzip();
        let ingestor = ingestor.clone();
        Committing {
            commit: tokio::spawn(async move { ingestor.submit_batch(&requests).await }),
            replies,
        }
    }

    fn answer(
        replies: Vec<oneshot::Sender<std::result::Result<IngestResult, String>>>,
        outcome: std::result::Result<Result<Vec<IngestResult>>, tokio::task::JoinError>,
    ) {
        match outcome.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// The group committer's loop (see [`Ingestor::group_commit`]).
async fn commit_groups(
    ingestor: Ingestor,
    mut rx: mpsc::Receiver<Queued>,
    max: usize,
    wait: Duration,
) {
    let mut committing: Option<Committing> = None;
    let mut next: Vec<Queued> = Vec::new();
    let mut open = true;
    loop {
        let Some(current) = committing.as_mut() else {
            if next.is_empty() {
                match rx.recv().await {
                    Some(q) => next.push(q),
                    None => return,
                }
            }
            let deadline = tokio::time::Instant::now() + wait;
            while next.len() < max {
                // Take what is already queued without waiting.
                match rx.try_recv() {
                    Ok(q) => {
                        next.push(q);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(q)) => next.push(q),
                    Ok(None) | Err(_) => break,
                }
            }
            committing = Some(Committing::start(&ingestor, std::mem::take(&mut next)));
            continue;
        };
        let outcome = if next.len() >= max || !open {
            Some((&mut current.commit).await)
        } else {
            tokio::select! {
                outcome = &mut current.commit => Some(outcome),
                q = rx.recv() => {
                    match q {
                        Some(q) => next.push(q),
                        None => open = false,
                    }
                    None
                }
            }
        };
        if let Some(outcome) = outcome {
            let finished = committing.take().map(|c| c.replies).unwrap_or_default();
            if !next.is_empty() {
                committing = Some(Committing::start(&ingestor, std::mem::take(&mut next)));
            }
            Committing::answer(finished, outcome);
            if !open && committing.is_none() {
                return;
            }
        }
    }
}

struct Queued {
    request: IngestRequest,
    reply: oneshot::Sender<std::result::Result<IngestResult, String>>,
}

/// Handle to a running group committer; cheap to clone.
#[derive(Clone)]
pub struct GroupCommitter {
    tx: mpsc::Sender<Queued>,
}

/// A submission waiting for its group's commit.
pub struct Pending(oneshot::Receiver<std::result::Result<IngestResult, String>>);

impl Pending {
    /// The result if the group has already committed.
    pub fn ready(&mut self) -> Option<Result<IngestResult>> {
        match self.0.try_recv() {
            Ok(Ok(result)) => Some(Ok(result)),
            Ok(Err(message)) => Some(Err(anyhow!("ingest: {message}"))),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => {
                Some(Err(anyhow!("ingest: the group committer stopped")))
            }
        }
    }

    /// Waits for the durable commit of the group.
    pub async fn wait(self) -> Result<IngestResult> {
        match self.0.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(message)) => Err(anyhow!("ingest: {message}")),
            Err(_) => Err(anyhow!("ingest: the group committer stopped")),
        }
    }
}

impl GroupCommitter {
    /// Queues a submission; await the returned [`Pending`] for its result.
    pub async fn enqueue(&self, request: IngestRequest) -> Result<Pending> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Queued { request, reply })
            .await
            .map_err(|_| anyhow!("ingest: the group committer stopped"))?;
        Ok(Pending(rx))
    }
}

/// The synthetic B3 stream, defined so `bench/b3_peer.py` can generate exactly the same:
/// submission `i` goes to client `i % clients`; even `i` are PHQ-9, odd GAD-7; item `k`
/// (0-based) answers `(7·i + 13·k + 5·(i / clients)) mod 4`, except PHQ-9 item 9, which is 1
/// for every 50th submission (i % 100 == 0, so 2 % of PHQ-9s raise a risk flag) and 0 otherwise.
pub fn synthetic_answers(i: u64, clients: u64) -> (&'static str, Vec<i32>) {
    let round = i / clients.max(1);
    let item = |k: u64| i32::try_from((7 * i + 13 * k + 5 * round) % 4).unwrap_or(0);
    if i.is_multiple_of(2) {
        let mut v: Vec<i32> = (0..8).map(item).collect();
        v.push(i32::from(i.is_multiple_of(100)));
        ("phq9", v)
    } else {
        ("gad7", (0..7).map(item).collect())
    }
}

/// Fixed timestamps for the synthetic stream (deterministic, as the peer's): submission `i`
/// is client `i % clients`'s answer of round `i / clients`, at 2026-01-05 09:00 UTC plus
/// `round × round_seconds` seconds plus `i % clients` milliseconds. Weekly rounds
/// (604,800 s) model session-by-session measurement; 0 puts every round in one moment.
fn synthetic_time(i: u64, clients: u64, round_seconds: u64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let clients = clients.max(1);
    let seconds = (i / clients).saturating_mul(round_seconds);
    base + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(0))
        + chrono::Duration::milliseconds(i64::try_from(i % clients).unwrap_or(0))
}

/// Options of `tapestry bench ingest`.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    pub count: u64,
    /// 1 = one commit per submission; more = group commit of up to this many (or 1 ms).
    pub batch: u64,
    pub clients: u64,
    /// Seconds between a client's submissions (see [`synthetic_time`]).
    pub round_seconds: u64,
}

/// Durable ingest of the synthetic stream through the full pipeline. Prints each id
/// (`<practice> <submission>`) on stdout once its commit is acknowledged; prints the figures
/// (submissions/s, p50/p99 commit latency) on stderr at the end.
pub async fn bench(store: Arc<dyn Store>, options: BenchOptions) -> Result<()> {
    let BenchOptions {
        count,
        batch,
        clients,
        round_seconds,
    } = options;
    if batch == 0 {
        bail!("--batch: must be at least 1");
    }
    if clients == 0 {
        bail!("--clients: must be at least 1");
    }
    let registry = Arc::new(InstrumentRegistry::embedded().context("built-in instruments")?);
    let at = synthetic_time(0, clients, round_seconds);
    let practice = Practice::new("Ingest benchmark", "UTC", at)?;
    store.insert_practice(&practice).await?;
    let mut episodes: Vec<(ClientId, EpisodeId)> = Vec::new();
    for n in 0..clients {
        let client = Client::new(
            practice.id,
            &format!("Synthetic client {n}"),
            None,
            None,
            at,
        )?;
        store.insert_client(&client).await?;
        let episode = Episode::open(practice.id, client.id, at);
        store.insert_episode(&episode).await?;
        episodes.push((client.id, episode.id));
    }
    let ingestor = Ingestor::new(store.clone(), registry, IngestSettings::default());
    let request = |i: u64| -> IngestRequest {
        let (instrument, values) = synthetic_answers(i, clients);
        let (client_id, episode_id) = episodes
            .get(usize::try_from(i % clients).unwrap_or(0))
            .copied()
            .unwrap_or((ClientId::random(), EpisodeId::random()));
        IngestRequest {
            practice_id: practice.id,
            client_id,
            episode_id,
            instrument: instrument.to_string(),
            answers: Answers::from_values(&values),
            idempotency_key: None,
            submitted_at: synthetic_time(i, clients, round_seconds),
        }
    };
    // Buffered: an id is written only after its commit, and flushed before waiting for the
    // next commit, so whatever reached the pipe was acknowledged.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut latencies: Vec<Duration> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let mut flags = 0usize;
    if batch == 1 {
        for i in 0..count {
            let t = Instant::now();
            let receipt = ingestor.submit(request(i)).await?.map_err(|e| anyhow!(e))?;
            latencies.push(t.elapsed());
            flags += receipt.flags.len();
            writeln!(stdout, "{} {}", practice.id, receipt.submission_id)?;
            stdout.flush()?;
        }
    } else {
        let committer =
            ingestor.group_commit(usize::try_from(batch).unwrap_or(GROUP_MAX), GROUP_WAIT);
        // A producer keeps up to 4 groups in flight; results are printed in order.
        let (ack_tx, mut ack_rx) = mpsc::channel::<(Instant, Pending)>(
            usize::try_from(batch.saturating_mul(4)).unwrap_or(1024),
        );
        let producer = {
            let committer = committer.clone();
            let requests: Vec<IngestRequest> = (0..count).map(&request).collect();
            tokio::spawn(async move {
                for r in requests {
                    let t = Instant::now();
                    let pending = committer.enqueue(r).await?;
                    if ack_tx.send((t, pending)).await.is_err() {
                        break;
                    }
                }
                Ok::<(), anyhow::Error>(())
            })
        };
        loop {
            let next = match ack_rx.try_recv() {
                Ok(next) => next,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    stdout.flush()?;
                    match ack_rx.recv().await {
                        Some(next) => next,
                        None => break,
                    }
                }
            };
            let (t, mut pending) = next;
            let result = match pending.ready() {
                Some(result) => result,
                None => {
                    stdout.flush()?;
                    pending.wait().await
                }
            };
            let receipt = result?.map_err(|e| anyhow!(e))?;
            latencies.push(t.elapsed());
            flags += receipt.flags.len();
            writeln!(stdout, "{} {}", practice.id, receipt.submission_id)?;
        }
        stdout.flush()?;
        producer
            .await
            .map_err(|e| anyhow!("ingest producer: {e}"))??;
    }
    let elapsed = started.elapsed();
    let cpu = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    store.close().await;
    latencies.sort_unstable();
    let pick = |q: f64| -> f64 {
        let ix = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(ix).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    eprintln!(
        "{{\"bench\":\"ingest\",\"mode\":\"{}\",\"submissions\":{count},\"seconds\":{:.3},\"submissions_per_s\":{:.0},\"p50_commit_us\":{:.0},\"p99_commit_us\":{:.0},\"risk_flags\":{flags},\"cpu_seconds\":{},\"cpu_us_per_submission\":{}}}",
        if batch == 1 { "single".to_string() } else { format!("group{batch}") },
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64().max(1e-9),
        pick(0.50),
        pick(0.99),
        cpu.map_or("null".to_string(), |c| format!("{c:.2}")),
        cpu.map_or("null".to_string(), |c| format!("{:.1}", c * 1e6 / count.max(1) as f64)),
    );
    Ok(())
}

/// CPU time (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (Linux; in USER_HZ ticks, 100 per second); `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces):
    // state is field 3, utime field 14, stime field 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapestry_store::SqliteStore;

    async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        s.migrate().await.unwrap();
        (Arc::new(s), dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_answers_every_caller_and_stores_an_idempotent_retry_once() {
        let (store, _dir) = sqlite().await;
        let at = synthetic_time(0, 1, 0);
        let practice = Practice::new("Group", "UTC", at).unwrap();
        store.insert_practice(&practice).await.unwrap();
        let client = Client::new(practice.id, "C", None, None, at).unwrap();
        store.insert_client(&client).await.unwrap();
        let episode = Episode::open(practice.id, client.id, at);
        store.insert_episode(&episode).await.unwrap();
        let ingestor = Ingestor::new(
            store.clone(),
            Arc::new(InstrumentRegistry::embedded().unwrap()),
            IngestSettings::default(),
        );
        let committer = ingestor.group_commit(GROUP_MAX, GROUP_WAIT);
        let request = |values: &[i32], key: Option<&str>| IngestRequest {
            practice_id: practice.id,
            client_id: client.id,
            episode_id: episode.id,
            instrument: "phq9".into(),
            answers: Answers::from_values(values),
            idempotency_key: key.map(str::to_string),
            submitted_at: at,
        };
        let mut handles = Vec::new();
        // 16 concurrent retries of one risky submission, 16 distinct ones and one bad one.
        for n in 0..33 {
            let c = committer.clone();
            let r = match n {
                0..=15 => request(&[1, 1, 1, 1, 1, 1, 1, 1, 2], Some("same-key")),
                16..=31 => request(&[0; 9], None),
                _ => request(&[0, 0, 0], None),
            };
            handles.push(tokio::spawn(async move {
                c.enqueue(r).await.unwrap().wait().await
            }));
        }
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap().unwrap());
        }
        assert!(results[32].is_err());
        let retried: Vec<_> = results[..16].iter().map(|r| r.as_ref().unwrap()).collect();
        assert!(retried
            .iter()
            .all(|r| r.submission_id == retried[0].submission_id));
        assert_eq!(retried.iter().filter(|r| r.new).count(), 1);
        assert_eq!(store.count_submissions(practice.id).await.unwrap(), 17);
        assert_eq!(store.open_risk_flags(practice.id).await.unwrap().len(), 1);
        assert_eq!(store.open_tasks(practice.id).await.unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_deteriorating_clients_have_open_risk_flags_and_tasks() {
        let (store, dir) = sqlite().await;
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let (practice, created) = crate::demo::ensure(&store, dir.path(), now).await.unwrap();
        assert!(created);
        let flags = store.open_risk_flags(practice).await.unwrap();
        assert!(!flags.is_empty());
        assert!(flags.iter().all(|f| matches!(
            &f.flag.signal.source,
            tapestry_domain::risk::RiskSource::CriticalItem { instrument, item: 9, .. } if instrument == "phq9"
        )));
        let tasks = store.open_tasks(practice).await.unwrap();
        assert_eq!(tasks.len(), flags.len());
        // Earlier weeks' risk answers were reviewed: one open task per client.
        let mut clients = Vec::new();
        for t in &tasks {
            assert!(
                !clients.contains(&t.client_id),
                "two open risk tasks for one demo client"
            );
            clients.push(t.client_id);
        }
        assert!(!store.not_on_track(practice).await.unwrap().is_empty());
    }

    #[test]
    fn the_synthetic_stream_is_valid_and_two_percent_of_phq9s_are_risky() {
        let registry = InstrumentRegistry::embedded().unwrap();
        let mut risky = 0;
        for i in 0..10_000 {
            let (instrument, values) = synthetic_answers(i, 1000);
            let def = registry.get(instrument).unwrap();
            tapestry_domain::scoring::score(def, &Answers::from_values(&values)).unwrap();
            if instrument == "phq9" && values[8] > 0 {
                risky += 1;
            }
        }
        assert_eq!(risky, 100);
    }
}
