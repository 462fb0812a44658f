//! Matching: profiles, instant match (filters, score, reasons) and the batch solver
//! against a brute-force optimum.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers
use chrono::NaiveDate;
use proptest::prelude::*;
use tapestry_domain::ids::ClinicianId;
use tapestry_domain::matching::assign::{
    assign_command, solve, AssignInputError, AssignOptions, AssignmentGraph, AssignmentInstance,
    Edge, SolverMethod,
};
use tapestry_domain::matching::instant::{
    ClientRequest, InstantMatchError, MatchIndex, Preferences,
};
use tapestry_domain::matching::profile::{
    Capacity, ClinicianProfile, DomainOutcome, Format, IdentityCharacteristics, Licence,
    OutcomeNorms, Population, ProblemDomain, ProfileError, WeeklyAvailability, WeeklyInterval,
};
use tapestry_domain::risk::RiskLevel;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn profile(name: &str, jurisdiction: &str) -> ClinicianProfile {
    ClinicianProfile {
        id: ClinicianId::random(),
        display_name: name.to_string(),
        licences: vec![Licence {
            jurisdiction: jurisdiction.to_string(),
            number: "L-1".to_string(),
            expires_on: day(2030, 1, 1),
        }],
        languages: vec!["en".to_string()],
        formats: vec![Format::Video],
        approaches: vec!["cbt".to_string()],
        specialties: vec![],
        populations: vec![Population::Adults],
        identity: None,
        capacity: Capacity {
            caseload_limit: 20,
            current_load: 10,
            new_clients_per_week: 2,
            new_clients_this_week: 0,
        },
        availability: WeeklyAvailability {
            utc_offset_minutes: -300,
            intervals: vec![WeeklyInterval {
                day: 0,
                start_minute: 9 * 60,
                end_minute: 17 * 60,
            }],
        },
        accepts_risk: false,
        outcomes: vec![],
    }
}

fn request(jurisdiction: &str) -> ClientRequest {
    ClientRequest {
        jurisdiction: jurisdiction.to_string(),
        languages: vec!["en".to_string()],
        format: Format::Video,
        population: Population::Adults,
        elevated_domains: vec![ProblemDomain::Anxiety],
        risk: RiskLevel::None,
        urgent: false,
        preferences: Preferences::default(),
        date: day(2026, 11, 21),
    }
}

fn outcome(domain: ProblemDomain, n: u32, improved: u32) -> DomainOutcome {
    DomainOutcome {
        domain,
        completed_episodes: n,
        reliably_improved: improved,
    }
}

/// Norms of 50 % on every domain, so ratings are easy to predict.
fn half_norms() -> OutcomeNorms {
    OutcomeNorms {
        expected_rate: [0.5; ProblemDomain::COUNT],
    }
}

fn index(profiles: Vec<ClinicianProfile>) -> MatchIndex {
    MatchIndex::build(profiles, half_norms()).unwrap()
}

fn chosen_names(idx: &MatchIndex, req: &ClientRequest) -> Vec<String> {
    idx.match_client(req, 5)
        .unwrap()
        .choices
        .into_iter()
        .map(|c| c.display_name)
        .collect()
}

// ---------------------------------------------------------------- profiles

#[test]
fn overlapping_availability_is_rejected_naming_both_intervals() {
    let mut p = profile("A", "CA-ON");
    p.availability.intervals.push(WeeklyInterval {
        day: 0,
        start_minute: 16 * 60,
        end_minute: 18 * 60,
    });
    let err = p.validate().unwrap_err();
    assert!(matches!(
        err,
        ProfileError::OverlappingAvailability {
            first: 0,
            second: 1,
            ..
        }
    ));
    assert!(err.to_string().contains("availability"), "{err}");
    // Touching intervals (end == start) do not overlap.
    p.availability.intervals[1].start_minute = 17 * 60;
    assert_eq!(p.validate(), Ok(()));
}

#[test]
fn unknown_jurisdiction_negative_capacity_and_bad_outcomes_are_named() {
    let mut p = profile("A", "XX-ZZ");
    let err = p.validate().unwrap_err().to_string();
    assert!(
        err.contains("licences[0].jurisdiction") && err.contains("XX-ZZ"),
        "{err}"
    );

    p = profile("A", "ca-on"); // codes are case-insensitive
    assert_eq!(p.validate(), Ok(()));
    p.capacity.new_clients_per_week = -1;
    let err = p.validate().unwrap_err().to_string();
    assert!(err.contains("capacity.new_clients_per_week"), "{err}");

    p = profile("A", "CA-ON");
    p.outcomes = vec![outcome(ProblemDomain::Sleep, 10, 11)];
    let err = p.validate().unwrap_err().to_string();
    assert!(err.contains("outcomes[0].reliably_improved"), "{err}");
    p.outcomes = vec![
        outcome(ProblemDomain::Sleep, 10, 1),
        outcome(ProblemDomain::Sleep, 12, 1),
    ];
    assert!(p.validate().unwrap_err().to_string().contains("sleep"));

    p = profile("A", "CA-ON");
    p.languages.clear();
    assert!(p.validate().unwrap_err().to_string().contains("languages"));
    p.languages = vec!["English".to_string()];
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .contains("languages[0]"));

    p = profile("A", "CA-ON");
    p.availability.intervals[0].end_minute = 1441;
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .contains("availability.intervals[0]"));
}

#[test]
fn index_build_names_the_bad_profile() {
    let mut bad = profile("B", "CA-ON");
    bad.capacity.caseload_limit = -3;
    let err = MatchIndex::build(vec![profile("A", "CA-ON"), bad], half_norms()).unwrap_err();
    assert!(matches!(
        err,
        InstantMatchError::InvalidProfile { index: 1, .. }
    ));
    assert!(err.to_string().starts_with("clinicians[1]"), "{err}");
}

#[test]
fn pooled_norms_are_the_practice_rate() {
    let mut a = profile("A", "CA-ON");
    a.outcomes = vec![outcome(ProblemDomain::Depression, 30, 24)];
    let mut b = profile("B", "CA-ON");
    b.outcomes = vec![outcome(ProblemDomain::Depression, 70, 26)];
    let norms = OutcomeNorms::pooled(&[a.clone(), b.clone()]);
    assert!((norms.expected(ProblemDomain::Depression) - 0.5).abs() < 1e-12);
    assert!((norms.expected(ProblemDomain::Sleep) - 0.5).abs() < 1e-12);
    let idx = MatchIndex::build(vec![a, b], norms).unwrap();
    use tapestry_domain::matching::profile::OutcomeRating::*;
    assert_eq!(idx.rating(0, ProblemDomain::Depression), Effective);
    assert_eq!(idx.rating(1, ProblemDomain::Depression), Ineffective);
    assert_eq!(idx.rating(0, ProblemDomain::Sleep), InsufficientData);
}

// ---------------------------------------------------------------- instant match

#[test]
fn expired_or_missing_licence_is_a_hard_stop() {
    let mut expired = profile("Expired", "CA-ON");
    expired.licences[0].expires_on = day(2026, 11, 20);
    let mut last_day = profile("LastDay", "CA-ON");
    last_day.licences[0].expires_on = day(2026, 11, 21);
    let elsewhere = profile("Elsewhere", "CA-BC");
    let idx = index(vec![expired, last_day, elsewhere]);
    assert_eq!(chosen_names(&idx, &request("CA-ON")), vec!["LastDay"]);

    let only_expired = {
        let mut p = profile("Expired", "CA-ON");
        p.licences[0].expires_on = day(2020, 1, 1);
        index(vec![p])
    };
    let r = only_expired.match_client(&request("CA-ON"), 5).unwrap();
    assert!(r.choices.is_empty());
    assert_eq!(r.funnel.outcomes, 1);
    assert_eq!(r.funnel.licence_current, 0);
    assert!(r.unmet[0].contains("expired"), "{:?}", r.unmet);

    let r = only_expired.match_client(&request("US-NY"), 5).unwrap();
    assert!(r.unmet[0].contains("licence for New York"), "{:?}", r.unmet);
}

#[test]
fn ineffective_on_an_elevated_domain_excludes_but_elsewhere_does_not() {
    let mut poor_anxiety = profile("PoorAnxiety", "CA-ON");
    poor_anxiety.outcomes = vec![outcome(ProblemDomain::Anxiety, 40, 5)];
    let mut poor_sleep = profile("PoorSleep", "CA-ON");
    poor_sleep.outcomes = vec![outcome(ProblemDomain::Sleep, 40, 5)];
    let idx = index(vec![poor_anxiety, poor_sleep]);
    let mut req = request("CA-ON");
    req.elevated_domains = vec![ProblemDomain::Anxiety];
    assert_eq!(chosen_names(&idx, &req), vec!["PoorSleep"]);
    // Anxiety as the fourth most elevated domain is outside the Match-POP top three.
    req.elevated_domains = vec![
        ProblemDomain::Depression,
        ProblemDomain::Trauma,
        ProblemDomain::Eating,
        ProblemDomain::Anxiety,
    ];
    assert_eq!(chosen_names(&idx, &req).len(), 2);
    // Too few cases to rate (< 15) never excludes.
    let mut few = profile("Few", "CA-ON");
    few.outcomes = vec![outcome(ProblemDomain::Anxiety, 14, 0)];
    let idx = index(vec![few]);
    assert_eq!(chosen_names(&idx, &request("CA-ON")), vec!["Few"]);
}

#[test]
fn urgent_or_risky_clients_go_only_to_clinicians_who_accept_risk() {
    let plain = profile("Plain", "CA-ON");
    let mut risk = profile("Risk", "CA-ON");
    risk.accepts_risk = true;
    let idx = index(vec![plain, risk]);
    let mut req = request("CA-ON");
    assert_eq!(chosen_names(&idx, &req), vec!["Plain", "Risk"]);
    req.risk = RiskLevel::Moderate;
    assert_eq!(chosen_names(&idx, &req), vec!["Risk"]);
    req.risk = RiskLevel::Low;
    req.urgent = true;
    let r = idx.match_client(&req, 5).unwrap();
    assert_eq!(r.choices.len(), 1);
    assert!(r.choices[0].summary().contains("higher-risk"));

    // Nobody accepts risk: the client is not silently dropped; the unmet list says so.
    let idx = index(vec![profile("Plain", "CA-ON")]);
    let r = idx.match_client(&req, 5).unwrap();
    assert!(r.choices.is_empty());
    assert!(r.unmet[0].contains("intake team"), "{:?}", r.unmet);
}

#[test]
fn language_format_population_and_capacity_filter() {
    let mut spanish = profile("Spanish", "CA-ON");
    spanish.languages = vec!["es".to_string()];
    let mut phone = profile("Phone", "CA-ON");
    phone.formats = vec![Format::Phone];
    let mut couples = profile("Couples", "CA-ON");
    couples.populations = vec![Population::Couples];
    let mut full = profile("Full", "CA-ON");
    full.capacity.current_load = 20;
    let idx = index(vec![spanish, phone, couples, full]);

    let mut req = request("CA-ON");
    req.languages = vec!["fr".to_string(), "es".to_string()];
    assert_eq!(chosen_names(&idx, &req), vec!["Spanish"]);
    let r = idx.match_client(&req, 5).unwrap();
    assert!(r.choices[0].summary().contains("speaks Spanish"));

    let mut req = request("CA-ON");
    req.format = Format::Phone;
    assert_eq!(chosen_names(&idx, &req), vec!["Phone"]);
    req.format = Format::Chat;
    let r = idx.match_client(&req, 5).unwrap();
    assert!(r.unmet[0].contains("chat"), "{:?}", r.unmet);

    let mut req = request("CA-ON");
    req.population = Population::Couples;
    assert_eq!(chosen_names(&idx, &req), vec!["Couples"]);
    // "Full" is never offered: caseload 20 of 20.
    let r = idx.match_client(&request("CA-ON"), 5).unwrap();
    assert!(r.choices.is_empty());
    assert_eq!((r.funnel.population, r.funnel.capacity), (1, 0));
    assert!(r.unmet[0].contains("free place"), "{:?}", r.unmet);
}

#[test]
fn reasons_read_like_the_issue_example() {
    let mut p = profile("Ana", "CA-ON");
    p.languages = vec!["en".to_string(), "es".to_string()];
    p.specialties = vec![ProblemDomain::Trauma];
    p.outcomes = vec![outcome(ProblemDomain::Anxiety, 24, 20)];
    p.approaches = vec!["emdr".to_string()];
    let idx = index(vec![p]);
    let mut req = request("CA-ON");
    req.languages = vec!["es".to_string()];
    req.elevated_domains = vec![ProblemDomain::Trauma, ProblemDomain::Anxiety];
    req.preferences.approaches = vec!["emdr".to_string(), "dbt".to_string()];
    let r = idx.match_client(&req, 3).unwrap();
    let s = r.choices[0].summary();
    assert!(s.starts_with("licensed in Ontario · speaks Spanish"), "{s}");
    assert!(s.contains("works with trauma"), "{s}");
    assert!(
        s.contains("strong results with anxiety (24 clients)"),
        "{s}"
    );
    assert!(s.contains("trained in EMDR"), "{s}");
    assert!(r.choices[0].unmet.iter().any(|u| u == "not trained in DBT"));
    assert!(r.choices[0]
        .unmet
        .iter()
        .any(|u| u.contains("trauma") && u.contains("0 of 15")));
    assert!(r.unmet.iter().any(|u| u.contains("only 1 clinician")));
}

#[test]
fn identity_characteristics_count_only_with_consent() {
    let mut shown = profile("Shown", "CA-ON");
    shown.identity = Some(IdentityCharacteristics {
        consent_to_show: true,
        characteristics: vec!["woman".to_string()],
    });
    let mut hidden = profile("Hidden", "CA-ON");
    hidden.identity = Some(IdentityCharacteristics {
        consent_to_show: false,
        characteristics: vec!["woman".to_string()],
    });
    // Hidden comes first so that only the score can put Shown ahead.
    let idx = index(vec![hidden, shown]);
    let mut req = request("CA-ON");
    req.preferences.characteristics = vec!["woman".to_string()];
    let r = idx.match_client(&req, 5).unwrap();
    assert_eq!(r.choices[0].display_name, "Shown");
    assert!(r.choices[0]
        .summary()
        .contains("describes themself as woman"));
    assert!(!r.choices[1].summary().contains("woman"));
    assert!(r.choices[0].score > r.choices[1].score);
}

#[test]
fn preferred_times_score_overlap_across_time_zones() {
    // Clinician: Monday 09–17 at UTC−5 (14–22 UTC). Client in UTC+1 wants Monday
    // 20:00–23:00 local = 19–22 UTC: 3 hours of overlap.
    let idx = index(vec![profile("A", "CA-ON")]);
    let mut req = request("CA-ON");
    req.preferences.times = Some(WeeklyAvailability {
        utc_offset_minutes: 60,
        intervals: vec![WeeklyInterval {
            day: 0,
            start_minute: 20 * 60,
            end_minute: 23 * 60,
        }],
    });
    let r = idx.match_client(&req, 1).unwrap();
    assert!(r.choices[0].summary().contains("available 3 hours a week"));
    // Bad preferred times are an error naming the field.
    req.preferences.times = Some(WeeklyAvailability {
        utc_offset_minutes: 0,
        intervals: vec![
            WeeklyInterval {
                day: 2,
                start_minute: 60,
                end_minute: 180,
            },
            WeeklyInterval {
                day: 2,
                start_minute: 120,
                end_minute: 200,
            },
        ],
    });
    let err = idx.match_client(&req, 1).unwrap_err().to_string();
    assert!(err.contains("preferences.times"), "{err}");
}

#[test]
fn bad_requests_are_named() {
    let idx = index(vec![profile("A", "CA-ON")]);
    let mut req = request("ZZ");
    assert!(matches!(
        idx.match_client(&req, 5),
        Err(InstantMatchError::UnknownJurisdiction(_))
    ));
    req = request("CA-ON");
    req.languages.clear();
    assert_eq!(
        idx.match_client(&req, 5),
        Err(InstantMatchError::NoLanguage)
    );
    req = request("CA-ON");
    req.elevated_domains = vec![ProblemDomain::Sleep, ProblemDomain::Sleep];
    assert!(idx
        .match_client(&req, 5)
        .unwrap_err()
        .to_string()
        .contains("sleep"));
    req = request("CA-ON");
    assert_eq!(
        idx.match_client(&req, 0),
        Err(InstantMatchError::InvalidChoiceCount(0))
    );
    req.preferences.approaches = vec!["C B T".to_string()];
    assert!(idx
        .match_client(&req, 5)
        .unwrap_err()
        .to_string()
        .contains("preferences.approaches[0]"));
    // A huge preference list is refused by name rather than scored.
    req.preferences.approaches = vec!["cbt".to_string(); 65];
    assert_eq!(
        idx.match_client(&req, 5).unwrap_err().to_string(),
        "preferences.approaches: at most 64 entries (got 65)"
    );
    // 64 (duplicates included) is still fine.
    req.preferences.approaches = vec!["cbt".to_string(); 64];
    assert!(idx.match_client(&req, 5).is_ok());
    // Empty index: no error, nobody licensed.
    let empty = index(vec![]);
    let r = empty.match_client(&request("CA-ON"), 5).unwrap();
    assert!(r.choices.is_empty() && r.funnel.total == 0);
}

#[test]
fn reserving_places_never_exceeds_capacity() {
    let mut p = profile("A", "CA-ON");
    p.capacity.new_clients_per_week = 2;
    let mut idx = index(vec![p]);
    let req = request("CA-ON");
    for expected_left in [1, 0] {
        let top = idx.match_client(&req, 1).unwrap();
        assert_eq!(top.choices.len(), 1);
        assert_eq!(idx.reserve(top.choices[0].index), Ok(expected_left));
    }
    assert!(idx.match_client(&req, 1).unwrap().choices.is_empty());
    assert_eq!(idx.reserve(0), Err(InstantMatchError::NoFreePlace(0)));
    assert_eq!(idx.reserve(7), Err(InstantMatchError::UnknownClinician(7)));
    assert_eq!(idx.release(0), Ok(1));
    assert_eq!(idx.match_client(&req, 1).unwrap().choices.len(), 1);
}

#[test]
fn outcome_informed_score_prefers_effective_specialists() {
    let generalist = profile("Generalist", "CA-ON");
    let mut specialist = profile("Specialist", "CA-ON");
    specialist.specialties = vec![ProblemDomain::Depression];
    let mut effective = profile("Effective", "CA-ON");
    effective.specialties = vec![ProblemDomain::Depression];
    effective.outcomes = vec![outcome(ProblemDomain::Depression, 30, 27)];
    let idx = index(vec![generalist, specialist, effective]);
    let mut req = request("CA-ON");
    req.elevated_domains = vec![ProblemDomain::Depression];
    assert_eq!(
        chosen_names(&idx, &req),
        vec!["Effective", "Specialist", "Generalist"]
    );
}

// Small random clinician pools: the bitset index must agree with a plain reading of
// the rules over the profiles.
const APPROACHES: [&str; 3] = ["cbt", "dbt", "emdr"];
const CHARACTERISTICS: [&str; 3] = ["woman", "man", "nonbinary"];

fn arb_profile() -> impl Strategy<Value = ClinicianProfile> {
    (
        0usize..3,
        any::<bool>(),
        0u8..4,
        0u8..4,
        0u8..3,
        any::<bool>(),
        0i32..3,
        proptest::collection::vec((0usize..14, 0u32..40, 0u32..40), 0..4),
        0u16..(1 << 14),
        0u8..8,
        (any::<bool>(), 0usize..3),
        (0u8..7, 0u16..20, 1u16..20),
    )
        .prop_map(
            |(jur, expired, langs, fmts, pops, risk, slots, outs, spec, appr, ident, avail)| {
                let mut p = profile("P", ["CA-ON", "CA-BC", "US-NY"][jur]);
                if expired {
                    p.licences[0].expires_on = day(2026, 1, 1);
                }
                p.languages = match langs {
                    0 => vec!["en".into()],
                    1 => vec!["es".into()],
                    2 => vec!["en".into(), "es".into()],
                    _ => vec!["fr".into()],
                };
                p.formats = match fmts {
                    0 => vec![Format::Video],
                    1 => vec![Format::Phone],
                    2 => vec![Format::Video, Format::Chat],
                    _ => Format::ALL.to_vec(),
                };
                p.populations = match pops {
                    0 => vec![Population::Adults],
                    1 => vec![Population::Couples],
                    _ => vec![Population::Adults, Population::Couples],
                };
                p.accepts_risk = risk;
                p.capacity.new_clients_per_week = slots;
                let mut seen = 0u16;
                p.outcomes = outs
                    .into_iter()
                    .filter_map(|(d, n, i)| {
                        let d = ProblemDomain::ALL[d];
                        (seen & d.bit() == 0).then(|| {
                            seen |= d.bit();
                            outcome(d, n, i.min(n))
                        })
                    })
                    .collect();
                p.specialties = ProblemDomain::ALL
                    .into_iter()
                    .filter(|d| spec & d.bit() != 0)
                    .collect();
                p.approaches = APPROACHES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| appr >> i & 1 == 1)
                    .map(|(_, a)| a.to_string())
                    .collect();
                p.identity = Some(IdentityCharacteristics {
                    consent_to_show: ident.0,
                    characteristics: vec![CHARACTERISTICS[ident.1].to_string()],
                });
                let (day, start, hours) = avail;
                let start = start.min(23);
                p.availability.intervals = vec![WeeklyInterval {
                    day,
                    start_minute: start * 60,
                    end_minute: ((start + hours) * 60).min(24 * 60),
                }];
                p
            },
        )
}

proptest! {
    #[test]
    fn index_agrees_with_plain_rules(
        profiles in proptest::collection::vec(arb_profile(), 0..40),
        lang in 0usize..3,
        urgent in any::<bool>(),
        elevated in proptest::collection::vec(0usize..14, 0..5),
        approaches in proptest::collection::vec(0usize..4, 0..3),
        characteristics in proptest::collection::vec(0usize..3, 0..2),
        times in proptest::option::of((0u8..7, 0u16..20, 1u16..20, -2i32..3)),
        k in prop_oneof![Just(50usize), 1usize..6],
    ) {
        let idx = index(profiles.clone());
        let mut req = request("CA-ON");
        req.languages = vec![["en", "es", "fr"][lang].to_string()];
        req.urgent = urgent;
        // Preferences, including an approach nobody is trained in ("ipt").
        req.preferences.approaches = approaches
            .iter()
            .map(|&a| ["cbt", "dbt", "emdr", "ipt"][a].to_string())
            .collect();
        req.preferences.characteristics = characteristics
            .iter()
            .map(|&c| CHARACTERISTICS[c].to_string())
            .collect();
        req.preferences.times = times.map(|(day, start, hours, shift)| WeeklyAvailability {
            utc_offset_minutes: -300 + 60 * shift,
            intervals: vec![WeeklyInterval {
                day,
                start_minute: start * 60,
                end_minute: ((start + hours) * 60).min(24 * 60),
            }],
        });
        let mut seen = 0u16;
        req.elevated_domains = elevated
            .into_iter()
            .map(|d| ProblemDomain::ALL[d])
            .filter(|d| { let new = seen & d.bit() == 0; seen |= d.bit(); new })
            .collect();
        let got: Vec<(usize, u32)> = idx
            .match_client(&req, k)
            .unwrap()
            .choices
            .iter()
            .map(|c| (c.index, c.score))
            .collect();
        let top3: Vec<ProblemDomain> = req.elevated_domains.iter().take(3).copied().collect();
        let mut want: Vec<(usize, u32)> = Vec::new();
        for (i, p) in profiles.iter().enumerate() {
            let rating = |d: ProblemDomain| p.outcome(d).map(|o| o.rating(0.5));
            use tapestry_domain::matching::profile::OutcomeRating::*;
            let eligible = p.valid_licence(
                tapestry_domain::matching::profile::Jurisdiction::from_code("CA-ON").unwrap(),
                req.date,
            ).is_some()
                && p.languages.contains(&req.languages[0])
                && p.formats.contains(&req.format)
                && p.populations.contains(&req.population)
                && p.capacity.free_slots() > 0
                && (!urgent || p.accepts_risk)
                && top3.iter().all(|&d| rating(d) != Some(Ineffective));
            if !eligible { continue; }
            let mut s = 0;
            for (&d, w) in top3.iter().zip([3u32, 2, 1]) {
                s += w * (4 * u32::from(p.specialties.contains(&d))
                    + 6 * u32::from(rating(d) == Some(Effective))
                    + u32::from(rating(d) == Some(Neutral)));
            }
            if !top3.is_empty() && top3.iter().all(|&d| rating(d) == Some(Effective)) {
                s += 10;
            }
            for a in &req.preferences.approaches {
                s += 5 * u32::from(p.approaches.contains(a));
            }
            let shared = p.shareable_characteristics();
            for c in &req.preferences.characteristics {
                s += 4 * u32::from(shared.contains(c));
            }
            if let Some(t) = &req.preferences.times {
                let have = p.availability.utc_hours();
                let overlap: u32 = t
                    .utc_hours()
                    .iter()
                    .zip(have)
                    .map(|(a, b)| (a & b).count_ones())
                    .sum();
                s += overlap.min(10);
            }
            want.push((i, s));
        }
        want.sort_by_key(|&(i, s)| (std::cmp::Reverse(s), i));
        want.truncate(k);
        prop_assert_eq!(got, want);
    }
}

// ---------------------------------------------------------------- batch assignment

fn instance(clients: usize, caps: &[u32], edges: &[(u32, u32, i64)]) -> AssignmentInstance {
    AssignmentInstance::new(
        clients,
        caps.to_vec(),
        edges
            .iter()
            .map(|&(client, clinician, score)| Edge {
                client,
                clinician,
                score,
            })
            .collect(),
    )
    .unwrap()
}

/// Best (urgent matched, matched, total score) by trying every assignment.
fn brute_force(
    clients: usize,
    caps: &[u32],
    edges: &[(u32, u32, i64)],
    urgent: &[bool],
) -> (usize, usize, i64) {
    fn go(
        r: usize,
        clients: usize,
        left: &mut Vec<u32>,
        edges: &[(u32, u32, i64)],
        urgent: &[bool],
        acc: (usize, usize, i64),
        best: &mut (usize, usize, i64),
    ) {
        if r == clients {
            if acc > *best {
                *best = acc;
            }
            return;
        }
        go(r + 1, clients, left, edges, urgent, acc, best);
        for &(c, j, s) in edges {
            if c as usize == r && left[j as usize] > 0 {
                left[j as usize] -= 1;
                let u = usize::from(urgent.get(r).copied().unwrap_or(false));
                go(
                    r + 1,
                    clients,
                    left,
                    edges,
                    urgent,
                    (acc.0 + u, acc.1 + 1, acc.2 + s),
                    best,
                );
                left[j as usize] += 1;
            }
        }
    }
    let mut best = (0, 0, i64::MIN);
    go(
        0,
        clients,
        &mut caps.to_vec(),
        edges,
        urgent,
        (0, 0, 0),
        &mut best,
    );
    best
}

fn arb_instance() -> impl Strategy<Value = (usize, Vec<u32>, Vec<(u32, u32, i64)>)> {
    (0usize..=6, 1usize..=4).prop_flat_map(|(n, m)| {
        (
            Just(n),
            proptest::collection::vec(0u32..=3, m),
            proptest::collection::btree_map(
                (0..n.max(1) as u32, 0..m as u32),
                -5i64..20,
                0..=n * m,
            )
            .prop_map(move |map| {
                map.into_iter()
                    .filter(|((c, _), _)| (*c as usize) < n)
                    .map(|((c, j), s)| (c, j, s))
                    .collect::<Vec<_>>()
            }),
        )
    })
}

fn check_feasible(
    a: &tapestry_domain::matching::assign::Assignment,
    caps: &[u32],
    edges: &[(u32, u32, i64)],
) -> i64 {
    let mut used = vec![0u32; caps.len()];
    let mut total = 0;
    for (r, c) in a.assignment.iter().enumerate() {
        if let Some(j) = c {
            used[*j as usize] += 1;
            let e = edges
                .iter()
                .find(|e| e.0 as usize == r && e.1 == *j)
                .expect("assigned along an existing edge");
            total += e.2;
        }
    }
    for (u, c) in used.iter().zip(caps) {
        assert!(u <= c, "capacity exceeded");
    }
    assert_eq!(
        a.assigned,
        a.assignment.iter().filter(|c| c.is_some()).count()
    );
    total
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn solver_equals_brute_force((n, caps, edges) in arb_instance()) {
        let inst = instance(n, &caps, &edges);
        let a = solve(&inst).unwrap();
        let total = check_feasible(&a, &caps, &edges);
        prop_assert_eq!(total, a.total_score);
        let (_, k, s) = brute_force(n, &caps, &edges, &[]);
        prop_assert_eq!(a.assigned, k);
        prop_assert_eq!(a.total_score, if k == 0 { 0 } else { s });
        // Both shortest-path engines reach the same optimum.
        let g = AssignmentGraph::build(&inst).unwrap();
        for method in [SolverMethod::Sparse, SolverMethod::Dense] {
            let b = g.solve_using(method);
            prop_assert_eq!(check_feasible(&b, &caps, &edges), b.total_score);
            prop_assert_eq!((b.assigned, b.total_score), (a.assigned, a.total_score));
        }
        // Deterministic: same instance, same answer.
        prop_assert_eq!(solve(&inst).unwrap(), a.clone());
        // Edge order does not change the optimum.
        let mut rev = edges.clone();
        rev.reverse();
        let b = solve(&instance(n, &caps, &rev)).unwrap();
        prop_assert_eq!((b.assigned, b.total_score), (a.assigned, a.total_score));
    }

    #[test]
    fn priority_matches_most_urgent_then_most_then_best(
        (n, caps, edges) in arb_instance(),
        flags in proptest::collection::vec(any::<bool>(), 6),
    ) {
        let urgent: Vec<bool> = flags.into_iter().take(n).collect();
        let g = AssignmentGraph::build(&instance(n, &caps, &edges)).unwrap();
        let a = g.solve_with(&AssignOptions { urgent: urgent.clone(), max_share_per_clinician: None }).unwrap();
        check_feasible(&a, &caps, &edges);
        let got_urgent = a.assignment.iter().zip(&urgent).filter(|(c, u)| c.is_some() && **u).count();
        let (bu, bk, bs) = brute_force(n, &caps, &edges, &urgent);
        prop_assert_eq!((got_urgent, a.assigned), (bu, bk));
        prop_assert_eq!(a.total_score, if bk == 0 { 0 } else { bs });
    }
}

#[test]
fn cli_contract_solves_and_reports() {
    let out = assign_command(
        r#"{"clients":3,"capacities":[1,2],"edges":[[0,0,5],[1,0,7],[1,1,1],[2,1,2]]}"#,
    )
    .unwrap();
    assert_eq!(
        out,
        serde_json::json!({"assigned":3,"total_score":8,"assignment":[0,1,1]})
    );
    // Empty instance.
    let out = assign_command(r#"{"clients":0,"capacities":[],"edges":[]}"#).unwrap();
    assert_eq!(
        out,
        serde_json::json!({"assigned":0,"total_score":0,"assignment":[]})
    );
    // Clients without edges stay unmatched (null).
    let out = assign_command(r#"{"clients":2,"capacities":[0],"edges":[[0,0,3]]}"#).unwrap();
    assert_eq!(out["assignment"], serde_json::json!([null, null]));
}

#[test]
fn cli_errors_name_the_field() {
    let err = |s: &str| assign_command(s).unwrap_err().to_string();
    assert!(err(r#"{"clients":1,"capacities":[1,-2],"edges":[]}"#).contains("capacities[1]"));
    assert!(err(r#"{"clients":1,"capacities":[1],"edges":[[0,3,1]]}"#).contains("edges[0][1]"));
    assert!(err(r#"{"clients":1,"capacities":[1],"edges":[[4,0,1]]}"#).contains("edges[0][0]"));
    assert!(err(r#"{"clients":1,"capacities":[1],"edges":[[0,0,1.5]]}"#).contains("edges[0] score"));
    assert!(err(r#"{"clients":1,"capacities":[1],"edges":[[0,0,"3"]]}"#).contains("edges[0] score"));
    assert!(err(r#"{"clients":1,"capacities":[1],"edges":[[0,0]]}"#).contains("edges[0]"));
    assert!(err(r#"{"clients":-1,"capacities":[],"edges":[]}"#).contains("clients"));
    assert!(err(r#"{"capacities":[],"edges":[]}"#).contains("clients"));
    assert!(
        err(r#"{"clients":1,"capacities":[1],"edges":[[0,0,9000000000]]}"#).contains("edges[0][2]")
    );
    assert!(err("[1,2").contains("not valid JSON"));
    let huge = err(r#"{"clients":50000000,"capacities":[],"edges":[]}"#);
    assert!(huge.contains("clients") && huge.contains("limit"), "{huge}");
    let dup = assign_command(r#"{"clients":2,"capacities":[1],"edges":[[0,0,1],[1,0,1],[0,0,2]]}"#)
        .unwrap_err();
    assert!(matches!(
        dup,
        AssignInputError::DuplicateEdge {
            first: 0,
            second: 2,
            ..
        }
    ));
    assert!(dup.to_string().contains("edges[0] and edges[2]"));
}

#[test]
fn larger_random_instance_is_feasible_and_deterministic() {
    // 300 clients × 200 clinicians, ~20 edges each: no brute force, but the answer
    // must respect every capacity, every client must be matched when there are
    // plenty of places, and two runs agree.
    let mut edges = Vec::new();
    let mut x: u64 = 7;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for c in 0..300u32 {
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < 20 {
            seen.insert((next() % 200) as u32);
        }
        for j in seen {
            edges.push((c, j, (next() % 1000) as i64));
        }
    }
    let caps: Vec<u32> = (0..200).map(|j| (j % 4) as u32).collect();
    let inst = instance(300, &caps, &edges);
    let a = solve(&inst).unwrap();
    let total = check_feasible(&a, &caps, &edges);
    assert_eq!(total, a.total_score);
    assert_eq!(a.assigned, 300);
    assert_eq!(solve(&inst).unwrap(), a);
    let dense = AssignmentGraph::build(&inst)
        .unwrap()
        .solve_using(SolverMethod::Dense);
    assert_eq!(check_feasible(&dense, &caps, &edges), dense.total_score);
    assert_eq!(
        (dense.assigned, dense.total_score),
        (a.assigned, a.total_score)
    );
}
