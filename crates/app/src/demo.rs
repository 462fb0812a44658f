//! The demo practice: synthetic, seeded, realistic. About forty clients whose
//! PHQ-9 and GAD-7 histories follow the courses seen in routine care —
//! steady improvement, late response, no change, deterioration, early recovery —
//! so charts, not-on-track alerts and risk tasks have something true to show.
//! Everything is generated from one seed; no real person is represented.

use crate::accounts;
use anyhow::{Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use tapestry_domain::care::{CareRelationship, CareRole};
use tapestry_domain::client::{Client, ClinicianProfile};
use tapestry_domain::episode::{Episode, EpisodeStatus};
use tapestry_domain::ids::PracticeId;
use tapestry_domain::ingest::IngestRequest;
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::practice::Practice;
use tapestry_domain::scoring::Answers;
use tapestry_domain::user::{Role, User};
use tapestry_store::{IngestSettings, Store};

/// Marks the demo practice, so `demo` never seeds twice.
pub const DEMO_MARKER_KEY: &str = "demo_seed";
pub const DEMO_MARKER_VALUE: &str = "tapestry-demo-v1";
const SEED: u64 = 20_261_121;
pub const CLIENT_COUNT: usize = 40;
/// Clients from this index on are on the waitlist.
pub const FIRST_WAITING: usize = 36;

/// The course a synthetic client's scores follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Course {
    Improving,
    LateResponder,
    Flat,
    Deteriorating,
    EarlyRecovery,
}

impl Course {
    fn for_index(i: usize) -> Course {
        // 40 % improving, 20 % late, 20 % flat, 10 % deteriorating, 10 % early recovery.
        match i % 10 {
            0..=3 => Course::Improving,
            4 | 5 => Course::LateResponder,
            6 | 7 => Course::Flat,
            8 => Course::Deteriorating,
            _ => Course::EarlyRecovery,
        }
    }

    /// The expected score at session `t` (1 = intake) from `baseline`.
    pub fn expected(self, baseline: f64, t: u32, max: f64) -> f64 {
        let k = f64::from(t.saturating_sub(1));
        let value = match self {
            Course::Improving => baseline * (-0.13 * k).exp(),
            Course::LateResponder if t <= 6 => baseline - 0.2 * k,
            Course::LateResponder => (baseline - 1.0) * (-0.22 * (k - 5.0)).exp(),
            Course::Flat => baseline,
            Course::Deteriorating => baseline + 0.7 * k,
            Course::EarlyRecovery => baseline * (-0.35 * k).exp(),
        };
        value.clamp(0.0, max)
    }
}

/// Spreads `total` over `items` answers of 0..=3, leaving `blocked` items at 0.
fn answers_for(rng: &mut StdRng, total: u32, items: usize, blocked: &[usize]) -> Vec<Option<u8>> {
    let mut answers = vec![0u8; items];
    let open: Vec<usize> = (0..items).filter(|i| !blocked.contains(i)).collect();
    let capacity = u32::try_from(open.len() * 3).unwrap_or(0);
    let mut remaining = total.min(capacity);
    while remaining > 0 {
        let slot = open[rng.gen_range(0..open.len())];
        if answers[slot] < 3 {
            answers[slot] += 1;
            remaining -= 1;
        }
    }
    answers.into_iter().map(Some).collect()
}

fn noisy(rng: &mut StdRng, value: f64, max: f64) -> u32 {
    let noise: f64 = (0..3).map(|_| rng.gen_range(-1.0..1.0)).sum::<f64>();
    let v = (value + noise).round().clamp(0.0, max);
    // Clamped to 0..=max (at most 27), so the conversion is exact.
    v as u32
}

const FIRST: [&str; 40] = [
    "Alex", "Bea", "Chidi", "Dana", "Elif", "Farah", "Gus", "Hana", "Ines", "Jonah", "Kofi",
    "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tomas", "Uma", "Vik",
    "Wren", "Xia", "Yusuf", "Zoe", "Ari", "Bo", "Cleo", "Dev", "Esme", "Finn", "Gia", "Hugo",
    "Iris", "Jae", "Kai", "Lior", "Mira", "Noor",
];
const LAST: [&str; 12] = [
    "Adams",
    "Baker",
    "Costa",
    "Diallo",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lindqvist",
];

/// Credentials printed for the demo, one line per account.
pub struct DemoLogin {
    pub role: &'static str,
    pub name: String,
    pub email: String,
    pub password: String,
}

/// Seeds the demo practice unless it exists. Returns the practice id and
/// whether it was created now.
pub async fn ensure(
    store: &Arc<dyn Store>,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> Result<(PracticeId, bool)> {
    if let Some(existing) = store
        .practice_with_setting(DEMO_MARKER_KEY, DEMO_MARKER_VALUE)
        .await?
    {
        return Ok((existing, false));
    }
    let registry = Arc::new(InstrumentRegistry::embedded().context("built-in instruments")?);
    let ingestor =
        crate::ingest::Ingestor::new(store.clone(), registry.clone(), IngestSettings::default());
    let knowledge = tapestry_domain::knowledge::Knowledge::embedded()
        .map_err(|e| anyhow::anyhow!("knowledge base: {e}"))?;
    let mut rng = StdRng::seed_from_u64(SEED);
    let practice = Practice::new("Tapestry Demo Practice", "Europe/London", now)?;
    store.insert_practice(&practice).await?;
    let mut logins = Vec::new();

    let mut add_user =
        |email: &str, name: &str, role: Role, label: &'static str| -> Result<(User, String)> {
            let user = User::new(practice.id, email, name, role, now)?;
            let password = accounts::random_password();
            logins.push(DemoLogin {
                role: label,
                name: name.to_string(),
                email: email.to_string(),
                password: password.clone(),
            });
            Ok((user, password))
        };
    let staff = [
        (
            "owner@demo.tapestry.invalid",
            "Morgan Reyes",
            Role::PracticeOwner,
            "practice owner",
        ),
        (
            "admin@demo.tapestry.invalid",
            "Pat Lindgren",
            Role::PracticeAdmin,
            "practice admin",
        ),
        (
            "amara.okafor@demo.tapestry.invalid",
            "Dr Amara Okafor",
            Role::Clinician,
            "clinician",
        ),
        (
            "luis.romero@demo.tapestry.invalid",
            "Luis Romero, LCSW",
            Role::Clinician,
            "clinician",
        ),
        (
            "helen.park@demo.tapestry.invalid",
            "Dr Helen Park",
            Role::Supervisor,
            "supervisor",
        ),
    ];
    let mut staff_users = Vec::new();
    // Staff need a second factor (G8): the demo enrols one per staff account
    // and prints its secret, to be added to any authenticator app.
    let mut totp_secrets: Vec<(String, String)> = Vec::new();
    for (email, name, role, label) in staff {
        let (user, password) = add_user(email, name, role, label)?;
        store
            .insert_user(&user, Some(&accounts::hash_password(&password)?))
            .await?;
        let secret = tapestry_domain::identity::totp::TotpSecret::generate();
        store
            .begin_totp_enrolment(practice.id, user.id, &secret)
            .await?;
        store.accept_totp_step(practice.id, user.id, 0, now).await?;
        totp_secrets.push((email.to_string(), secret.to_base32()));
        staff_users.push(user);
    }
    let clinicians = [staff_users[2].clone(), staff_users[3].clone()];
    let supervisor = staff_users[4].clone();
    let profiles = [
        (
            "Clinical psychologist",
            "Integrative CBT, ACT and compassion-focused work; trauma and anxiety.",
            vec!["en", "fr"],
        ),
        (
            "Licensed clinical social worker",
            "Interpersonal and DBT-informed therapy; depression, grief and relationships.",
            vec!["en", "es"],
        ),
    ];
    for (clinician, (title, bio, langs)) in clinicians.iter().zip(profiles) {
        store
            .upsert_clinician_profile(&ClinicianProfile {
                user_id: clinician.id,
                practice_id: practice.id,
                professional_title: title.into(),
                bio: bio.into(),
                languages: langs.into_iter().map(String::from).collect(),
                accepts_new_clients: true,
                caseload_limit: 30,
            })
            .await?;
    }

    for i in 0..CLIENT_COUNT {
        let name = format!("{} {}", FIRST[i], LAST[i % LAST.len()]);
        let dob = NaiveDate::from_ymd_opt(
            1960 + rng.gen_range(0..45),
            rng.gen_range(1..=12),
            rng.gen_range(1..=28),
        );
        let mut client = Client::new(practice.id, &name, dob, Some("GB"), now)?;
        client.time_zone = Some(tapestry_domain::practice::TimeZoneName::parse(
            "Europe/London",
        )?);
        store.insert_client(&client).await?;
        // The first five clients, and the first waiting one (who gets an
        // explained match at /me/match), can sign in.
        if i < 5 || i == FIRST_WAITING {
            let email = format!("{}@demo.tapestry.invalid", FIRST[i].to_lowercase());
            let label = if i == FIRST_WAITING {
                "client (waiting: see /me/match)"
            } else {
                "client"
            };
            let (user, password) = add_user(&email, &name, Role::Client, label)?;
            store
                .insert_user(&user, Some(&accounts::hash_password(&password)?))
                .await?;
            store
                .link_client_user(practice.id, client.id, user.id)
                .await?;
        }
        let clinician = &clinicians[i % 2];
        let course = Course::for_index(i);
        let waiting = i >= FIRST_WAITING;
        let sessions: u32 = if waiting { 1 } else { rng.gen_range(3..=14) };
        let first_at = now - Duration::days(i64::from(sessions) * 7 + rng.gen_range(1..6));
        let mut episode = Episode::open(practice.id, client.id, first_at - Duration::days(7));
        store.insert_episode(&episode).await?;
        let to = if waiting {
            EpisodeStatus::Waitlist
        } else {
            EpisodeStatus::Active
        };
        store
            .move_episode(
                practice.id,
                episode.id,
                EpisodeStatus::Referral,
                to,
                first_at,
            )
            .await?;
        episode.status = to;
        if !waiting {
            store
                .set_primary_clinician(practice.id, episode.id, clinician.id)
                .await?;
            store
                .insert_care_relationship(&CareRelationship::begin(
                    practice.id,
                    clinician.id,
                    client.id,
                    CareRole::Treating,
                    first_at,
                ))
                .await?;
            if i % 2 == 0 {
                store
                    .insert_care_relationship(&CareRelationship::begin(
                        practice.id,
                        supervisor.id,
                        client.id,
                        CareRole::Supervising,
                        first_at,
                    ))
                    .await?;
            }
        }
        let phq_base = f64::from(rng.gen_range(11..=23));
        let gad_base = f64::from(rng.gen_range(8..=18));
        let mut batch = Vec::new();
        for t in 1..=sessions {
            let at = first_at + Duration::days(i64::from(t - 1) * 7);
            let phq_total = noisy(&mut rng, course.expected(phq_base, t, 27.0), 27.0);
            let gad_total = noisy(&mut rng, course.expected(gad_base, t, 21.0), 21.0);
            // Item 9 (thoughts of death or self-harm) is endorsed only in the
            // deteriorating course, from the third session: the demo's risk signal.
            let risky = course == Course::Deteriorating && t >= 3;
            let mut phq = answers_for(
                &mut rng,
                phq_total.saturating_sub(u32::from(risky)),
                9,
                &[8],
            );
            if risky {
                phq[8] = Some(1);
            }
            let gad = answers_for(&mut rng, gad_total, 7, &[]);
            for (instrument, raw) in [("phq9", phq), ("gad7", gad)] {
                batch.push(IngestRequest {
                    practice_id: practice.id,
                    client_id: client.id,
                    episode_id: episode.id,
                    instrument: instrument.into(),
                    answers: Answers::from_options(&raw),
                    idempotency_key: None,
                    submitted_at: at,
                });
            }
        }
        // Through the measurement pipeline, so risk answers leave open flags and tasks.
        for result in ingestor.submit_batch(&batch).await? {
            result.map_err(|e| anyhow::anyhow!("demo submission: {e}"))?;
        }
        if !waiting {
            review_earlier_risk(store, &practice, &episode, clinician, now).await?;
        }
        if !waiting && i < DEMO_FORMULATIONS.len() {
            seed_record(
                store, &knowledge, &registry, &practice, &client, &episode, clinician, i, first_at,
            )
            .await?;
        }
        if course == Course::EarlyRecovery && !waiting && sessions >= 6 {
            store
                .move_episode(
                    practice.id,
                    episode.id,
                    EpisodeStatus::Active,
                    EpisodeStatus::Discharged,
                    now - Duration::days(1),
                )
                .await?;
        }
    }
    crate::demo_matching::seed(
        store,
        practice.id,
        &[
            (
                clinicians[0].clone(),
                crate::demo_matching::DemoMatching {
                    licence_number: "HCPC PYL04711",
                    languages: vec!["en".into(), "fr".into()],
                    approaches: &["cbt", "act", "cft"],
                    specialties: &[
                        tapestry_domain::matching::profile::ProblemDomain::Trauma,
                        tapestry_domain::matching::profile::ProblemDomain::Anxiety,
                    ],
                    accepts_risk: true,
                },
            ),
            (
                clinicians[1].clone(),
                crate::demo_matching::DemoMatching {
                    licence_number: "SWE SW118203",
                    languages: vec!["en".into(), "es".into()],
                    approaches: &["ipt", "dbt"],
                    specialties: &[
                        tapestry_domain::matching::profile::ProblemDomain::Depression,
                        tapestry_domain::matching::profile::ProblemDomain::SocialConflict,
                    ],
                    accepts_risk: false,
                },
            ),
        ],
        now,
    )
    .await?;
    let room = demo_sessions(store, &practice, &clinicians, now).await?;
    write_logins(data_dir, &logins, &totp_secrets)?;
    append_room(data_dir, room.as_deref())?;
    // The marker goes last: a seed interrupted half-way is seeded again in a
    // new practice rather than left looking complete.
    store
        .set_setting(practice.id, DEMO_MARKER_KEY, DEMO_MARKER_VALUE)
        .await?;
    Ok((practice.id, true))
}

/// Online sessions in the demo: both clinicians work Monday to Friday
/// 09:00-17:00 London, the practice offers intake, session and review types,
/// and the first demo client (who has a login) has a video session with
/// their clinician starting ten minutes after seeding, so the two can meet
/// in the room straight away. Returns that room's path.
async fn demo_sessions(
    store: &Arc<dyn Store>,
    practice: &Practice,
    clinicians: &[User],
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    use chrono::{NaiveTime, Timelike, Weekday};
    use tapestry_domain::schedule::{
        Appointment, AppointmentKind, AppointmentType, Availability, BookingRules, Format,
        WeeklyHours,
    };
    use tapestry_store::ClinicianSchedule;
    let types = [
        (AppointmentKind::Intake, 60, Format::Video),
        (AppointmentKind::Session, 50, Format::Video),
        (AppointmentKind::Session, 50, Format::Phone),
        (AppointmentKind::Session, 50, Format::Chat),
        (AppointmentKind::Review, 30, Format::Video),
    ];
    for (kind, minutes, format) in types {
        store
            .add_appointment_type(practice.id, AppointmentType::new(kind, minutes, format)?)
            .await?;
    }
    let hours = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
    for c in clinicians {
        let weekly = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ]
        .into_iter()
        .map(|weekday| WeeklyHours {
            weekday,
            start: hours(9),
            end: hours(17),
        })
        .collect();
        store
            .put_clinician_schedule(&ClinicianSchedule {
                practice_id: practice.id,
                clinician: c.id,
                availability: Availability {
                    time_zone: "Europe/London".into(),
                    weekly,
                    exceptions: vec![],
                },
                rules: BookingRules::default(),
                policy: Default::default(),
                updated_at: now,
            })
            .await?;
    }
    let Some(client) = store
        .clients_in_practice(practice.id)
        .await?
        .into_iter()
        .find(|c| c.user_id.is_some())
    else {
        return Ok(None);
    };
    // The client's treating clinician holds the session.
    let Some(clinician) = store
        .care_for_client(practice.id, client.id)
        .await?
        .into_iter()
        .find(|r| r.role == CareRole::Treating && r.ended_at.is_none())
        .and_then(|r| clinicians.iter().find(|c| c.id == r.clinician))
    else {
        return Ok(None);
    };
    let start = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now)
        + Duration::minutes(10);
    let appointment = Appointment::book(
        practice.id,
        clinician.id,
        client.id,
        AppointmentType::new(AppointmentKind::Session, 50, Format::Video)?,
        start,
        now,
    )?;
    store.book_appointment(&appointment).await?;
    Ok(Some(format!(
        "/clients/{}/appointments/{}/room",
        client.id, appointment.id
    )))
}

/// The demo's clinicians have reviewed each risk answer within days, as a
/// working practice does: every risk task of the episode but the newest is
/// completed and its flag closed with a note, so the caseload shows one open
/// risk task per client (the newest answer), not one per week of history.
async fn review_earlier_risk(
    store: &Arc<dyn Store>,
    practice: &Practice,
    episode: &Episode,
    clinician: &User,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut open: Vec<_> = store
        .tasks_for_episode(practice.id, episode.id)
        .await?
        .into_iter()
        .filter(|t| t.completed_at.is_none())
        .collect();
    open.sort_by_key(|t| t.created_at);
    let kept = open.pop().and_then(|t| t.risk_flag_id);
    let mut closed = Vec::new();
    for task in open {
        let reviewed_at = (task.created_at + Duration::days(2)).min(now);
        if let Some(flag) = task
            .risk_flag_id
            .filter(|f| Some(*f) != kept && !closed.contains(f))
        {
            closed.push(flag);
            store
                .close_risk_flag(
                    practice.id,
                    flag,
                    clinician.id,
                    "Reviewed by phone within the week: passive thoughts, no plan or intent; safety plan in place.",
                    reviewed_at,
                )
                .await?;
        }
        store
            .complete_task(practice.id, task.id, reviewed_at)
            .await?;
    }
    Ok(())
}

fn append_room(data_dir: &Path, room: Option<&str>) -> Result<()> {
    let Some(room) = room else { return Ok(()) };
    let path = logins_file(data_dir);
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = writeln!(
        text,
        "# A video session between the first clinician and the first client starts 10 minutes after seeding\n# (the room opens 15 minutes before and closes 15 minutes after the 50-minute session):\n#   {room}"
    );
    std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    restrict(&path)
}

/// Case formulations of the first demo clients: (problems, goal, precipitating,
/// perpetuating, protective, reactance).
type DemoCase = (
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const DEMO_FORMULATIONS: [DemoCase; 6] = [
    (
        &["depression", "insomnia"],
        "Get back to Sunday football with my brother",
        "Redundancy after twelve years at the firm",
        "Staying in bed late and cancelling plans",
        "Close relationship with a sister",
        "moderate",
    ),
    (
        &["generalized-anxiety"],
        "Stop checking my phone for bad news every hour",
        "New management role with tight deadlines",
        "Reassurance seeking and over-preparing",
        "Regular swimming",
        "low",
    ),
    (
        &["panic"],
        "Take the train to see my parents",
        "First panic attack on a crowded platform",
        "Avoiding trains and carrying water everywhere",
        "Supportive partner",
        "moderate",
    ),
    (
        &["social-anxiety"],
        "Speak up once in each team meeting",
        "Moved city for a new job",
        "Rehearsing sentences and avoiding eye contact",
        "Good friends from university",
        "high",
    ),
    (
        &["depression", "low-self-esteem"],
        "Be kinder to myself when things go wrong",
        "End of a long relationship",
        "Harsh self-criticism and withdrawal",
        "Enjoys painting",
        "moderate",
    ),
    (
        &["stress-burnout"],
        "Leave work by six most days",
        "Caring for a parent while working full time",
        "Saying yes to every request",
        "Sense of humour and a good GP",
        "low",
    ),
];

/// Seeds a formulation, a generated plan and its accepted version for one
/// demo client, through the store (deterministic content).
#[allow(clippy::too_many_arguments)]
async fn seed_record(
    store: &Arc<dyn Store>,
    knowledge: &tapestry_domain::knowledge::Knowledge,
    registry: &InstrumentRegistry,
    practice: &Practice,
    client: &Client,
    episode: &Episode,
    clinician: &User,
    i: usize,
    at: DateTime<Utc>,
) -> Result<()> {
    use tapestry_domain::formulation::Formulation;
    use tapestry_store::{NewFormulation, NewPlanVersion, PlanOrigin, PlanStatus};
    let Some((problems, goal, precipitating, perpetuating, protective, reactance)) =
        DEMO_FORMULATIONS.get(i)
    else {
        return Ok(());
    };
    let mut f = Formulation::new(
        u16::try_from(28 + i * 5).unwrap_or(30),
        problems.iter().map(|p| p.to_string()).collect(),
    );
    f.goals = vec![goal.to_string()];
    f.five_ps.precipitating = vec![precipitating.to_string()];
    f.five_ps.perpetuating = vec![perpetuating.to_string()];
    f.five_ps.protective = vec![protective.to_string()];
    f.style = serde_json::from_value(serde_json::json!({ "reactance": reactance }))?;
    f.validate(knowledge)
        .map_err(|e| anyhow::anyhow!("demo formulation: {e}"))?;
    let stored = store
        .insert_formulation(&NewFormulation {
            practice_id: practice.id,
            client_id: client.id,
            formulation: &f,
            reason: "initial formulation",
            author: clinician.id,
            at,
        })
        .await?;
    let submissions = store
        .submissions_for_episode(practice.id, episode.id)
        .await?;
    let case = tapestry_web::records::build_case(registry, f, &submissions, &[]);
    let plan = tapestry_domain::plan::generate(knowledge, &case);
    for (status, origin) in [
        (PlanStatus::Draft, PlanOrigin::Generated),
        (
            PlanStatus::Accepted,
            PlanOrigin::AcceptedPlan {
                reason: "Talked through the plan with the client; agreed".into(),
            },
        ),
    ] {
        store
            .insert_plan_version(&NewPlanVersion {
                practice_id: practice.id,
                client_id: client.id,
                plan: &plan,
                formulation_version: Some(stored.version),
                engine_version: tapestry_web::records::ENGINE_VERSION,
                status,
                origin: &origin,
                created_by: clinician.id,
                at,
            })
            .await?;
    }
    Ok(())
}

fn logins_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("demo-logins.txt")
}

fn write_logins(data_dir: &Path, logins: &[DemoLogin], totp: &[(String, String)]) -> Result<()> {
    let mut text = String::from(
        "# Tapestry demo accounts (synthetic people). Generated once; keep this file private.\n# Staff sign in with password + a code from an authenticator app set up with the TOTP secret (last column).\n",
    );
    for l in logins {
        let secret = totp
            .iter()
            .find(|(e, _)| *e == l.email)
            .map_or("-", |(_, s)| s.as_str());
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}",
            l.role, l.name, l.email, l.password, secret
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("data_dir {}: cannot create", data_dir.display()))?;
    let path = logins_file(data_dir);
    std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    restrict(&path)
}

#[cfg(unix)]
fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("{}: cannot set permissions", path.display()))
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> Result<()> {
    Ok(())
}

/// The demo logins as written at seeding time.
pub fn read_logins(data_dir: &Path) -> Result<String> {
    let path = logins_file(data_dir);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: demo logins are missing", path.display()))?;
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        match cols.as_slice() {
            [role, name, email, password, secret] if *secret != "-" => {
                let _ = writeln!(
                    out,
                    "  {role:<15} {name:<22} {email:<38} {password}  TOTP secret: {secret}"
                );
            }
            [role, name, email, password, ..] => {
                let _ = writeln!(out, "  {role:<15} {name:<22} {email:<38} {password}");
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn courses_have_their_shapes() {
        let improving: Vec<f64> = (1..=12)
            .map(|t| Course::Improving.expected(20.0, t, 27.0))
            .collect();
        assert!(improving.windows(2).all(|w| w[1] < w[0]));
        assert!(improving[11] < 10.0);
        let late_at_5 = Course::LateResponder.expected(20.0, 5, 27.0);
        let late_at_12 = Course::LateResponder.expected(20.0, 12, 27.0);
        assert!(late_at_5 > 18.0 && late_at_12 < 10.0);
        assert!(Course::Deteriorating.expected(20.0, 10, 27.0) > 25.0);
        assert_eq!(Course::Deteriorating.expected(26.0, 10, 27.0), 27.0);
    }

    #[test]
    fn answers_sum_to_the_total_and_respect_blocked_items() {
        let mut rng = StdRng::seed_from_u64(1);
        for total in 0..=24 {
            let a = answers_for(&mut rng, total, 9, &[8]);
            assert_eq!(
                a.iter().flatten().map(|&x| u32::from(x)).sum::<u32>(),
                total
            );
            assert_eq!(a[8], Some(0));
            assert!(a.iter().flatten().all(|&x| x <= 3));
        }
        // More than fits is capped, not looped on forever.
        let a = answers_for(&mut rng, 40, 7, &[]);
        assert_eq!(a.iter().flatten().map(|&x| u32::from(x)).sum::<u32>(), 21);
    }
}
