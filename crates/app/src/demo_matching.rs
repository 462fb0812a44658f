//! Demo matching data: the two demo clinicians' matching profiles (licensed
//! in England, their profile languages, specialties, capacity and weekly
//! hours) and a match request for every waiting client, so a waiting demo
//! client signs in and sees explained choices at `/me/match`.

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use tapestry_domain::episode::EpisodeStatus;
use tapestry_domain::ids::{ClinicianId, PracticeId};
use tapestry_domain::matching::instant::{ClientRequest, Preferences};
use tapestry_domain::matching::profile::{
    Capacity, ClinicianProfile, Format, Licence, Population, ProblemDomain, WeeklyAvailability,
    WeeklyInterval,
};
use tapestry_domain::risk::RiskLevel;
use tapestry_domain::user::User;
use tapestry_store::{Store, StoredMatchRequest, StoredMatchingProfile};

/// One demo clinician's matching details.
pub struct DemoMatching {
    pub licence_number: &'static str,
    pub languages: Vec<String>,
    pub approaches: &'static [&'static str],
    pub specialties: &'static [ProblemDomain],
    pub accepts_risk: bool,
}

/// Weekdays 09:00–17:00, London (UTC in winter).
fn weekdays() -> WeeklyAvailability {
    WeeklyAvailability {
        utc_offset_minutes: 0,
        intervals: (0..5)
            .map(|day| WeeklyInterval {
                day,
                start_minute: 9 * 60,
                end_minute: 17 * 60,
            })
            .collect(),
    }
}

/// Stores the clinicians' matching profiles and a match request for each
/// client waiting on the waitlist.
pub async fn seed(
    store: &Arc<dyn Store>,
    practice: PracticeId,
    clinicians: &[(User, DemoMatching)],
    now: DateTime<Utc>,
) -> Result<()> {
    for (user, m) in clinicians {
        let profile = ClinicianProfile {
            id: ClinicianId::from_uuid(user.id.as_uuid()),
            display_name: user.display_name.clone(),
            licences: vec![Licence {
                jurisdiction: "GB-ENG".into(),
                number: m.licence_number.into(),
                expires_on: (now + Duration::days(365)).date_naive(),
            }],
            languages: m.languages.clone(),
            formats: vec![Format::Video, Format::Phone],
            approaches: m.approaches.iter().map(|s| s.to_string()).collect(),
            specialties: m.specialties.to_vec(),
            populations: vec![Population::Adults, Population::OlderAdults],
            identity: None,
            capacity: Capacity {
                caseload_limit: 30,
                current_load: 0,
                new_clients_per_week: 5,
                new_clients_this_week: 0,
            },
            availability: weekdays(),
            accepts_risk: m.accepts_risk,
            outcomes: vec![],
        };
        profile
            .validate()
            .map_err(|e| anyhow::anyhow!("demo matching profile: {e}"))?;
        store
            .put_matching_profile(&StoredMatchingProfile {
                practice_id: practice,
                clinician: user.id,
                profile,
                updated_at: now,
            })
            .await?;
    }
    for client in store.clients_in_practice(practice).await? {
        let episodes = store.episodes_for_client(practice, client.id).await?;
        let Some(episode) = episodes
            .iter()
            .find(|e| e.status == EpisodeStatus::Waitlist)
        else {
            continue;
        };
        // The more elevated of depression (PHQ-9 /27) and anxiety (GAD-7 /21) first.
        let mut phq = 0.0;
        let mut gad = 0.0;
        for m in store.episode_measures(practice, episode.id).await? {
            match m.instrument.as_str() {
                "phq9" => phq = m.latest.unwrap_or(0.0) / 27.0,
                "gad7" => gad = m.latest.unwrap_or(0.0) / 21.0,
                _ => {}
            }
        }
        let elevated = if phq >= gad {
            vec![ProblemDomain::Depression, ProblemDomain::Anxiety]
        } else {
            vec![ProblemDomain::Anxiety, ProblemDomain::Depression]
        };
        store
            .put_match_request(&StoredMatchRequest {
                practice_id: practice,
                client_id: client.id,
                request: ClientRequest {
                    jurisdiction: "GB-ENG".into(),
                    languages: vec!["en".into()],
                    format: Format::Video,
                    population: Population::Adults,
                    elevated_domains: elevated,
                    risk: RiskLevel::None,
                    urgent: false,
                    preferences: Preferences {
                        approaches: vec!["cbt".into()],
                        characteristics: vec![],
                        times: Some(WeeklyAvailability {
                            utc_offset_minutes: 0,
                            intervals: vec![WeeklyInterval {
                                day: 2,
                                start_minute: 12 * 60,
                                end_minute: 18 * 60,
                            }],
                        }),
                    },
                    date: now.date_naive(),
                },
                created_at: now,
            })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use tapestry_domain::matching::instant::MatchIndex;
    use tapestry_domain::matching::profile::OutcomeNorms;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_waiting_demo_client_with_a_login_gets_an_explained_match() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = tapestry_store::SqliteStore::open(&dir.path().join("tapestry.db"))
            .await
            .unwrap();
        sqlite.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
        let (practice, _) = crate::demo::ensure(&store, dir.path(), now).await.unwrap();
        let profiles: Vec<ClinicianProfile> = store
            .matching_profiles(practice, now - Duration::days(7))
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.profile)
            .collect();
        assert_eq!(profiles.len(), 2);
        let logins = crate::demo::read_logins(dir.path()).unwrap();
        let clients = store.clients_in_practice(practice).await.unwrap();
        let mut with_request = 0;
        let mut waiting_with_login = 0;
        for c in &clients {
            let Some(r) = store.match_request(practice, c.id).await.unwrap() else {
                continue;
            };
            with_request += 1;
            if c.user_id.is_some() && logins.contains(&c.display_name) {
                waiting_with_login += 1;
            }
            let norms = OutcomeNorms::pooled(&profiles);
            let index = MatchIndex::build(profiles.clone(), norms).unwrap();
            let result = index.match_client(&r.request, 5).unwrap();
            assert!(!result.choices.is_empty());
            let summary = result.choices[0].summary();
            assert!(summary.contains("licensed in England"), "{summary}");
            assert!(summary.contains("speaks English"), "{summary}");
        }
        // Every waiting client has a request; one of them can sign in.
        assert_eq!(
            with_request,
            crate::demo::CLIENT_COUNT - crate::demo::FIRST_WAITING
        );
        assert_eq!(waiting_with_login, 1);
    }
}
