//! `kill -9` in the middle of a burst of writes loses no acknowledged write
//! and leaves a sound database.

use crate::harness::{data_dir, tapestry};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use tapestry_domain::ids::{PracticeId, ResponseId};
use tapestry_store::{SqliteStore, SubmissionStore};

async fn kill_mid_burst(batch: &str, kill_after: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = tapestry(tmp.path())
        .args(["bench", "ingest", "--count", "1000000", "--batch", batch])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < kill_after {
        let line = lines.next().expect("ingest stopped early").unwrap();
        acknowledged.push(line);
    }
    child.kill().unwrap(); // SIGKILL: no chance to flush or close anything.
    child.wait().unwrap();
    // Whatever else reached the pipe was acknowledged too.
    acknowledged.extend(lines.map_while(Result::ok));

    let store = SqliteStore::open(&tapestry_store::sqlite_file(&data_dir(tmp.path())))
        .await
        .unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    for line in &acknowledged {
        let (practice, id) = line.split_once(' ').unwrap();
        let practice: PracticeId = practice.parse().unwrap();
        let id: ResponseId = id.parse().unwrap();
        assert!(
            store.submission(practice, id).await.unwrap().is_some(),
            "acknowledged submission {id} lost"
        );
    }
    let practice: PracticeId = acknowledged[0].split_once(' ').unwrap().0.parse().unwrap();
    let stored = store.count_submissions(practice).await.unwrap();
    assert!(stored as usize >= acknowledged.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_single_commits_loses_no_acknowledged_write() {
    kill_mid_burst("1", 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_group_commits_loses_no_acknowledged_write() {
    kill_mid_burst("64", 3000).await;
}
