//! B1 (instant match) and B2 (batch assignment) benchmarks for the matching engine.
//!
//! `match_bench <out-dir> [b1-queries]` generates the seeded workloads, writes them
//! for the Python peers (`bench/matching/peer.py`), times our matcher and solver and
//! writes `rust_results.json`. `bench/run-matching.sh` runs both sides and compares.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tapestry_domain::ids::ClinicianId;
use tapestry_domain::matching::assign::{AssignmentGraph, AssignmentInstance, Edge};
use tapestry_domain::matching::instant::{Candidate, ClientRequest, MatchIndex, Preferences};
use tapestry_domain::matching::profile::{
    Capacity, ClinicianProfile, DomainOutcome, Format, IdentityCharacteristics, Licence,
    OutcomeNorms, OutcomeRating, Population, ProblemDomain, WeeklyAvailability, WeeklyInterval,
    JURISDICTIONS,
};
use tapestry_domain::risk::RiskLevel;

const CLINICIANS: usize = 35_000;
const US_JURISDICTIONS: usize = 51;
const LANGUAGES: [&str; 10] = ["en", "es", "fr", "zh", "vi", "ar", "ko", "ru", "pt", "hi"];
const APPROACHES: [&str; 8] = [
    "cbt",
    "dbt",
    "act",
    "emdr",
    "psychodynamic",
    "ipt",
    "mindfulness",
    "humanistic",
];
const CHARACTERISTICS: [&str; 3] = ["woman", "man", "nonbinary"];
const COMPARED_QUERIES: usize = 1_000;
const K: usize = 5;

fn match_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(args.get(1).map_or("bench/out/matching", String::as_str));
    let queries: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    fs::create_dir_all(&out).unwrap();
    // MATCH_BENCH_ONLY=b1|b2|dense runs one part (for profiling); the others are null.
    let only = std::env::var("MATCH_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    let b1 = if part("b1") {
        bench_b1(&out, queries)
    } else {
        Value::Null
    };
    let b2 = if part("b2") {
        bench_b2_sparse(&out)
    } else {
        Value::Null
    };
    let dense = if part("dense") {
        bench_dense(&out)
    } else {
        Value::Null
    };
    let results = json!({ "b1": b1, "b2": b2, "dense": dense });
    fs::write(out.join("rust_results.json"), results.to_string()).unwrap();
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
}

// ------------------------------------------------------------------------- B1

fn chance(rng: &mut StdRng, p: f64) -> bool {
    rng.gen_bool(p)
}

fn gen_clinician(rng: &mut StdRng, i: usize) -> ClinicianProfile {
    let day = match_day();
    let n_lic = rng.gen_range(1..=3);
    let licences = sample(rng, US_JURISDICTIONS, n_lic)
        .into_iter()
        .map(|j| Licence {
            jurisdiction: JURISDICTIONS[j].0.to_string(),
            number: format!("L{i}-{j}"),
            // About 5 % expired before the match day.
            expires_on: day + chrono::Duration::days(rng.gen_range(-20..380)),
        })
        .collect();
    let mut languages = vec![];
    if chance(rng, 0.9) {
        languages.push("en".to_string());
    }
    if chance(rng, 0.25) {
        languages.push("es".to_string());
    }
    for l in &LANGUAGES[2..] {
        if chance(rng, 0.05) {
            languages.push(l.to_string());
        }
    }
    if languages.is_empty() {
        languages.push("en".to_string());
    }
    let mut formats: Vec<Format> = [
        (Format::Video, 0.95),
        (Format::Phone, 0.5),
        (Format::Chat, 0.4),
        (Format::InPerson, 0.3),
    ]
    .into_iter()
    .filter(|&(_, p)| chance(rng, p))
    .map(|(f, _)| f)
    .collect();
    if formats.is_empty() {
        formats.push(Format::Video);
    }
    let mut populations: Vec<Population> = [
        (Population::Children, 0.1),
        (Population::Adolescents, 0.2),
        (Population::Adults, 0.9),
        (Population::OlderAdults, 0.3),
        (Population::Couples, 0.2),
        (Population::Families, 0.15),
    ]
    .into_iter()
    .filter(|&(_, p)| chance(rng, p))
    .map(|(f, _)| f)
    .collect();
    if populations.is_empty() {
        populations.push(Population::Adults);
    }
    let approaches = APPROACHES
        .iter()
        .filter(|_| chance(rng, 0.3))
        .map(|a| a.to_string())
        .collect();
    let n_spec = rng.gen_range(2..=4);
    let specialties = sample(rng, ProblemDomain::COUNT, n_spec)
        .into_iter()
        .map(|d| ProblemDomain::ALL[d])
        .collect();
    let identity = Some(IdentityCharacteristics {
        consent_to_show: chance(rng, 0.6),
        characteristics: vec![CHARACTERISTICS[rng.gen_range(0..3)].to_string()],
    });
    let slots = rng.gen_range(0..=3);
    let offset = [-300, -360, -420, -480][rng.gen_range(0..4)];
    let n_days = rng.gen_range(3..=6);
    let intervals = sample(rng, 7, n_days)
        .into_iter()
        .map(|d| {
            let start = rng.gen_range(8..=14) * 60;
            WeeklyInterval {
                day: d as u8,
                start_minute: start,
                end_minute: start + rng.gen_range(3..=8) * 60,
            }
        })
        .collect();
    let skill: f64 = rng.gen_range(-0.2..0.2);
    let outcomes = ProblemDomain::ALL
        .iter()
        .map(|&domain| {
            let n: u32 = rng.gen_range(0..60);
            let p = (0.5 + skill + rng.gen_range(-0.15..0.15)).clamp(0.02, 0.98);
            let improved = (0..n).filter(|_| rng.gen_bool(p)).count() as u32;
            DomainOutcome {
                domain,
                completed_episodes: n,
                reliably_improved: improved,
            }
        })
        .collect();
    ClinicianProfile {
        id: ClinicianId::random(),
        display_name: format!("Clinician {i}"),
        licences,
        languages,
        formats,
        approaches,
        specialties,
        populations,
        identity,
        capacity: Capacity {
            caseload_limit: 25,
            current_load: 25 - slots,
            new_clients_per_week: 3,
            new_clients_this_week: 0,
        },
        availability: WeeklyAvailability {
            utc_offset_minutes: offset,
            intervals,
        },
        accepts_risk: chance(rng, 0.3),
        outcomes,
    }
}

fn gen_request(rng: &mut StdRng) -> ClientRequest {
    let r: f64 = rng.gen();
    let languages = if r < 0.85 {
        vec!["en".to_string()]
    } else if r < 0.92 {
        vec!["es".to_string()]
    } else if r < 0.95 {
        vec!["es".to_string(), "en".to_string()]
    } else {
        vec![LANGUAGES[rng.gen_range(2..10)].to_string()]
    };
    let r: f64 = rng.gen();
    let format = if r < 0.8 {
        Format::Video
    } else if r < 0.9 {
        Format::Phone
    } else if r < 0.97 {
        Format::Chat
    } else {
        Format::InPerson
    };
    let r: f64 = rng.gen();
    let population = if r < 0.85 {
        Population::Adults
    } else if r < 0.9 {
        Population::Couples
    } else if r < 0.95 {
        Population::Adolescents
    } else {
        Population::OlderAdults
    };
    let elevated_domains = sample(rng, ProblemDomain::COUNT, 3)
        .into_iter()
        .map(|d| ProblemDomain::ALL[d])
        .collect();
    let risk = if chance(rng, 0.1) {
        RiskLevel::Moderate
    } else {
        RiskLevel::None
    };
    let mut preferences = Preferences::default();
    if chance(rng, 0.5) {
        preferences.approaches = vec![APPROACHES[rng.gen_range(0..8)].to_string()];
    }
    if chance(rng, 0.2) {
        preferences.characteristics = vec![CHARACTERISTICS[rng.gen_range(0..2)].to_string()];
    }
    if chance(rng, 0.6) {
        let days = rng.gen_range(2..=3);
        preferences.times = Some(WeeklyAvailability {
            utc_offset_minutes: [-300, -360, -420, -480][rng.gen_range(0..4)],
            intervals: sample(rng, 7, days)
                .into_iter()
                .map(|d| {
                    let start = rng.gen_range(8..=18) * 60;
                    WeeklyInterval {
                        day: d as u8,
                        start_minute: start,
                        end_minute: start + 180,
                    }
                })
                .collect(),
        });
    }
    ClientRequest {
        jurisdiction: JURISDICTIONS[rng.gen_range(0..US_JURISDICTIONS)]
            .0
            .to_string(),
        languages,
        format,
        population,
        elevated_domains,
        risk,
        urgent: chance(rng, 0.05),
        preferences,
        date: match_day(),
    }
}

fn mask<T: PartialEq>(all: &[T], have: impl Iterator<Item = T>) -> u64 {
    have.filter_map(|x| all.iter().position(|a| *a == x))
        .fold(0, |m, i| m | 1 << i)
}

/// Compact columns for the numpy peer: the same facts the index holds.
fn export_clinicians(idx: &MatchIndex, path: &Path) {
    let day = match_day();
    let mut cols: Vec<Vec<Value>> = vec![Vec::new(); 14];
    for i in 0..idx.len() {
        let p = idx.profile(i).unwrap();
        let lic_valid: u64 = (0..US_JURISDICTIONS)
            .filter(|&j| {
                p.licences
                    .iter()
                    .any(|l| l.jurisdiction == JURISDICTIONS[j].0 && l.expires_on >= day)
            })
            .fold(0, |m, j| m | 1 << j);
        let rating_mask = |want: OutcomeRating| {
            ProblemDomain::ALL
                .iter()
                .filter(|&&d| idx.rating(i, d) == want)
                .fold(0u16, |m, d| m | d.bit())
        };
        let hours = p.availability.utc_hours();
        let row: [Value; 14] = [
            json!(lic_valid),
            json!(mask(&LANGUAGES, p.languages.iter().map(String::as_str))),
            json!(mask(&Format::ALL, p.formats.iter().copied())),
            json!(mask(&Population::ALL, p.populations.iter().copied())),
            json!(p.accepts_risk),
            json!(idx.free_slots(i).unwrap()),
            json!(p.specialties.iter().fold(0u16, |m, d| m | d.bit())),
            json!(rating_mask(OutcomeRating::Effective)),
            json!(rating_mask(OutcomeRating::Neutral)),
            json!(rating_mask(OutcomeRating::Ineffective)),
            json!(mask(&APPROACHES, p.approaches.iter().map(String::as_str))),
            json!(mask(
                &CHARACTERISTICS,
                p.shareable_characteristics().iter().map(String::as_str)
            )),
            json!(hours[0]),
            json!([hours[1], hours[2]]),
        ];
        for (c, v) in cols.iter_mut().zip(row) {
            c.push(v);
        }
    }
    let names = [
        "lic_valid",
        "lang",
        "fmt",
        "pop",
        "risk",
        "slots",
        "spec",
        "eff",
        "neu",
        "inef",
        "appr",
        "chars",
        "hours0",
        "hours12",
    ];
    let obj: serde_json::Map<String, Value> = names
        .iter()
        .zip(cols)
        .map(|(n, c)| (n.to_string(), Value::Array(c)))
        .collect();
    fs::write(path, Value::Object(obj).to_string()).unwrap();
}

fn export_query(q: &ClientRequest) -> Value {
    let j = JURISDICTIONS
        .iter()
        .position(|(c, _)| *c == q.jurisdiction)
        .unwrap();
    let hours = q.preferences.times.as_ref().map(|t| t.utc_hours());
    json!({
        "jur": j,
        "lang": mask(&LANGUAGES, q.languages.iter().map(String::as_str)),
        "fmt": q.format.index(),
        "pop": q.population.index(),
        "needs_risk": tapestry_domain::matching::instant::needs_risk_routing(q),
        "top": q.elevated_domains.iter().take(3).map(|d| d.index()).collect::<Vec<_>>(),
        "appr": q.preferences.approaches.iter().map(|a| APPROACHES.iter().position(|x| x == a).unwrap()).collect::<Vec<_>>(),
        "chars": q.preferences.characteristics.iter().map(|a| CHARACTERISTICS.iter().position(|x| x == a).unwrap()).collect::<Vec<_>>(),
        "hours": hours.map(|h| h.to_vec()),
    })
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

fn latency_summary(mut ns: Vec<u64>) -> Value {
    ns.sort_unstable();
    let mean = ns.iter().sum::<u64>() as f64 / ns.len().max(1) as f64 / 1000.0;
    json!({
        "n": ns.len(),
        "mean_us": mean,
        "p50_us": percentile(&ns, 0.5),
        "p99_us": percentile(&ns, 0.99),
        "p999_us": percentile(&ns, 0.999),
        "max_us": percentile(&ns, 1.0),
    })
}

fn bench_b1(out: &Path, queries: usize) -> Value {
    let mut rng = StdRng::seed_from_u64(0x7a9e_5717);
    let profiles: Vec<ClinicianProfile> = (0..CLINICIANS)
        .map(|i| gen_clinician(&mut rng, i))
        .collect();
    let requests: Vec<ClientRequest> = (0..COMPARED_QUERIES)
        .map(|_| gen_request(&mut rng))
        .collect();
    let t = Instant::now();
    let norms = OutcomeNorms::pooled(&profiles);
    let base = MatchIndex::build(profiles, norms).unwrap();
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    export_clinicians(&base, &out.join("b1_clinicians.json"));
    let exported: Vec<Value> = requests[..COMPARED_QUERIES]
        .iter()
        .map(export_query)
        .collect();
    fs::write(
        out.join("b1_queries.json"),
        Value::Array(exported).to_string(),
    )
    .unwrap();

    // The compared sample: top-5 for each of the first 1,000 sign-ups; the client
    // takes the first choice, which uses one place.
    let mut idx = base.clone();
    let mut top: Vec<Candidate> = Vec::with_capacity(K);
    let mut answers = Vec::new();
    let mut candidates = 0u64;
    for req in &requests[..COMPARED_QUERIES] {
        let q = idx.prepare(req).unwrap();
        let f = idx.rank(&q, K, &mut top);
        candidates += u64::from(f.licence_current);
        answers.push(
            top.iter()
                .map(|c| json!([c.index, c.score]))
                .collect::<Vec<_>>(),
        );
        if let Some(first) = top.first() {
            idx.reserve(first.index).unwrap();
        }
    }
    fs::write(out.join("b1_rust_top5.json"), json!(answers).to_string()).unwrap();

    // Timed: the same 1,000 sign-ups the peer answers, one at a time, each taking a
    // place exactly as in the peer's run; after each round the places are given back
    // (untimed), and the round is repeated `queries / 1,000` times for stable
    // percentiles (warm-up round first).
    let sample = &requests[..COMPARED_QUERIES];
    let rounds = (queries / COMPARED_QUERIES).max(1);
    let mut idx = base.clone();
    let mut timed = |explain: bool| {
        let mut ns = Vec::with_capacity(rounds * sample.len());
        let mut cpu_s = 0.0;
        let mut taken = Vec::with_capacity(sample.len());
        for _ in 0..rounds {
            for i in taken.drain(..) {
                idx.release(i).unwrap();
            }
            let cpu = thread_cpu_s();
            for req in sample {
                let t = Instant::now();
                let first = if explain {
                    let r = idx.match_client(req, K).unwrap();
                    r.choices.first().map(|c| c.index)
                } else {
                    let q = idx.prepare(req).unwrap();
                    idx.rank(&q, K, &mut top);
                    top.first().map(|c| c.index)
                };
                if let Some(i) = first {
                    idx.reserve(i).unwrap();
                    taken.push(i);
                }
                ns.push(t.elapsed().as_nanos() as u64);
            }
            cpu_s += thread_cpu_s() - cpu;
        }
        (ns, cpu_s)
    };
    let _warm = timed(false);
    let (rank_ns, rank_cpu_s) = timed(false);
    let rank_cpu_mean_us = rank_cpu_s * 1e6 / rank_ns.len() as f64;
    let (explain_ns, explain_cpu_s) = timed(true);
    let explain_cpu_mean_us = explain_cpu_s * 1e6 / explain_ns.len() as f64;
    // Where the time goes: preparing the request alone.
    let cpu = thread_cpu_s();
    let mut prepared = 0usize;
    for req in &requests {
        prepared += base.prepare(req).map_or(0, |q| q.top_len());
    }
    let prepare_cpu_mean_us = (thread_cpu_s() - cpu) * 1e6 / requests.len() as f64;
    // One request ranked again and again, cache-hot (no place taken).
    let q = base.prepare(&requests[0]).unwrap();
    let mut scanned = 0u64;
    let cpu = thread_cpu_s();
    for _ in 0..20_000 {
        scanned += u64::from(base.rank(&q, K, &mut top).licensed);
    }
    let hot_rank_cpu_us = (thread_cpu_s() - cpu) * 1e6 / 20_000.0;
    let hot_postings = scanned / 20_000;
    json!({
        "clinicians": CLINICIANS,
        "queries": rank_ns.len(),
        "distinct_sign_ups": requests.len(),
        "index_build_ms": build_ms,
        "mean_eligible_in_sample": candidates as f64 / COMPARED_QUERIES as f64,
        "rank": latency_summary(rank_ns.clone()),
        "explained": latency_summary(explain_ns),
        "throughput_per_s": rank_ns.len() as f64 / (rank_ns.iter().sum::<u64>() as f64 / 1e9),
        "rank_cpu_mean_us": rank_cpu_mean_us,
        "explained_cpu_mean_us": explain_cpu_mean_us,
        "prepare_cpu_mean_us": prepare_cpu_mean_us,
        "hot_rank_cpu_us": hot_rank_cpu_us,
        "hot_rank_postings": hot_postings,
        "prepared_top_domains": prepared,
    })
}

// ------------------------------------------------------------------------- B2

fn write_i32(path: &Path, values: impl Iterator<Item = i32>) {
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    for v in values {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// CPU time of this thread in seconds (scheduler run time, ns resolution), so that
/// other work on a shared machine does not count.
fn thread_cpu_s() -> f64 {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(f64::NAN, |ns| ns as f64 / 1e9)
}

fn time_solve(name: &str, out: &Path, inst: &AssignmentInstance, runs: usize) -> Value {
    let t = Instant::now();
    let graph = AssignmentGraph::build(inst).unwrap();
    let build_s = t.elapsed().as_secs_f64();
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut result = None;
    for _ in 0..runs {
        let c = thread_cpu_s();
        let t = Instant::now();
        let a = graph.solve();
        times.push(t.elapsed().as_secs_f64());
        cpu.push(thread_cpu_s() - c);
        if let Some(prev) = &result {
            assert_eq!(prev, &a, "solver is not deterministic");
        }
        result = Some(a);
    }
    let a = result.unwrap();
    write_i32(
        &out.join(format!("{name}.rust_assignment.i32")),
        a.assignment.iter().map(|c| c.map_or(-1, |c| c as i32)),
    );
    json!({
        "clients": inst.clients(),
        "clinicians": inst.capacities().len(),
        "edges": inst.edges().len(),
        "assigned": a.assigned,
        "total_score": a.total_score,
        "build_s": build_s,
        "solve_s_median": median(times.clone()),
        "solve_s_all": times,
        "solve_cpu_s_median": median(cpu.clone()),
        "solve_cpu_s_all": cpu,
    })
}

fn write_instance(name: &str, out: &Path, clients: usize, caps: &[u32], edges: &[Edge]) {
    write_i32(
        &out.join(format!("{name}.edges.i32")),
        edges
            .iter()
            .flat_map(|e| [e.client as i32, e.clinician as i32, e.score as i32]),
    );
    write_i32(
        &out.join(format!("{name}.caps.i32")),
        caps.iter().map(|&c| c as i32),
    );
    fs::write(
        out.join(format!("{name}.meta.json")),
        json!({"clients": clients, "clinicians": caps.len(), "edges": edges.len()}).to_string(),
    )
    .unwrap();
}

fn bench_b2_sparse(out: &Path) -> Value {
    let mut rng = StdRng::seed_from_u64(0xb2_5ba5e);
    let clients = 5_000;
    let caps: Vec<u32> = (0..CLINICIANS).map(|_| rng.gen_range(0..=3)).collect();
    let mut edges = Vec::with_capacity(clients * 300);
    for c in 0..clients {
        for j in sample(&mut rng, CLINICIANS, 300).into_iter() {
            edges.push(Edge {
                client: c as u32,
                clinician: j as u32,
                score: rng.gen_range(0..=999),
            });
        }
    }
    write_instance("b2_sparse", out, clients, &caps, &edges);
    // The CLI path end to end: JSON text in, JSON out (parse + check + build + solve).
    let text = json!({
        "clients": clients,
        "capacities": caps,
        "edges": edges.iter().map(|e| [i64::from(e.client), i64::from(e.clinician), e.score]).collect::<Vec<_>>(),
    })
    .to_string();
    let t = Instant::now();
    let cli = tapestry_domain::matching::assign::assign_command(&text).unwrap();
    let cli_s = t.elapsed().as_secs_f64();
    let inst = AssignmentInstance::new(clients, caps, edges).unwrap();
    let mut result = time_solve("b2_sparse", out, &inst, 5);
    assert_eq!(cli["assigned"], result["assigned"]);
    assert_eq!(cli["total_score"], result["total_score"]);
    result["cli_json_bytes"] = json!(text.len());
    result["cli_end_to_end_s"] = json!(cli_s);
    result
}

fn bench_dense(out: &Path) -> Value {
    let mut rng = StdRng::seed_from_u64(0xde_115e);
    let n = 2_000;
    let caps = vec![1u32; n];
    let mut edges = Vec::with_capacity(n * n);
    for c in 0..n {
        for j in 0..n {
            edges.push(Edge {
                client: c as u32,
                clinician: j as u32,
                score: rng.gen_range(0..=999),
            });
        }
    }
    write_instance("dense", out, n, &caps, &edges);
    let inst = AssignmentInstance::new(n, caps, edges).unwrap();
    time_solve("dense", out, &inst, 3)
}
