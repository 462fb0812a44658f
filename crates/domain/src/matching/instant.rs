//! Instant match: one client, right after intake, against every clinician.
//!
//! A [`MatchIndex`] is built once from the clinicians' profiles. For each jurisdiction
//! it keeps a posting list of the clinicians licensed there, in profile order; each
//! entry carries the licence's last valid day, the clinician's weekly UTC hours and a
//! copy of their packed 24-byte record: languages (a 64-bit mask over the index's first
//! 64 languages; further ones in bitsets), formats, populations, risk acceptance, free
//! places, and the specialty / effective / neutral / ineffective domain masks. A match
//! reads only the client's jurisdiction's list (about 4 % of clinicians), sequentially:
//! pass 1 evaluates every hard filter branch-free, counts what each filter left (the
//! funnel, for "what could not be met") and writes the eligible positions to a compact
//! list; pass 2 scores those, skipping the preference part when it cannot beat the
//! current k-th choice, and keeps the best `k` in a small sorted buffer. One allocation
//! per match, none per clinician. Taking a place updates the record and its copies.
//!
//! **Hard filters** (a clinician failing one is never offered):
//! licence in the client's jurisdiction valid on the match date · speaks one of the
//! client's languages · offers the format · works with the population · has a free
//! place · when the client is urgent or at moderate-or-higher risk, accepts risk ·
//! not rated *ineffective* on any of the client's (up to) three most elevated domains.
//!
//! **Score** (a small integer; higher is better; ties go to the earlier profile):
//! for the elevated domains ranked 1, 2, 3 with weights 3, 2, 1 — specialty +4·w,
//! rated effective +6·w, rated neutral +1·w; effective on every one of them (the
//! Match-POP top level) +10; each preferred approach they are trained in +5; each
//! preferred characteristic they share (with consent) +4; each whole hour of overlap
//! with the client's preferred times +1, up to 10.

use super::profile::{
    approach_label, is_language_code, is_slug, language_name, ClinicianProfile, Format,
    Jurisdiction, OutcomeNorms, OutcomeRating, Population, ProblemDomain, ProfileError, WeekHours,
    WeeklyAvailability, JURISDICTIONS,
};
use crate::ids::ClinicianId;
use crate::risk::RiskLevel;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How many elevated domains the outcome filter and score look at (Match-POP used the
/// client's three most elevated).
pub const ELEVATED_DOMAINS_CONSIDERED: usize = 3;
/// Most choices one match may return.
pub const MAX_CHOICES: usize = 50;

const RANK_WEIGHTS: [u32; ELEVATED_DOMAINS_CONSIDERED] = [3, 2, 1];
const SPECIALTY_POINTS: u32 = 4;
const EFFECTIVE_POINTS: u32 = 6;
const NEUTRAL_POINTS: u32 = 1;
const TOP_LEVEL_BONUS: u32 = 10;
const APPROACH_POINTS: u32 = 5;
const CHARACTERISTIC_POINTS: u32 = 4;
const MAX_HOUR_POINTS: u32 = 10;

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// Where the client is (jurisdiction code, e.g. `CA-ON`): the clinician must be
    /// licensed there.
    pub jurisdiction: String,
    /// Languages the client is comfortable in; one in common is enough.
    pub languages: Vec<String>,
    pub format: Format,
    pub population: Population,
    /// Elevated problem domains, most elevated first.
    #[serde(default)]
    pub elevated_domains: Vec<ProblemDomain>,
    #[serde(default = "no_risk")]
    pub risk: RiskLevel,
    /// Intake marked the referral urgent.
    #[serde(default)]
    pub urgent: bool,
    #[serde(default)]
    pub preferences: Preferences,
    /// The day the match is made (licences must be valid on it).
    pub date: NaiveDate,
}

fn no_risk() -> RiskLevel {
    RiskLevel::None
}

/// Soft wishes: they raise the score and are reported when unmet, never exclude.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Preferences {
    #[serde(default)]
    pub approaches: Vec<String>,
    /// Clinician characteristics the client would like (matched only against
    /// characteristics clinicians consented to show).
    #[serde(default)]
    pub characteristics: Vec<String>,
    /// Times the client would like sessions, in the client's local time.
    #[serde(default)]
    pub times: Option<WeeklyAvailability>,
}

/// A request that cannot be matched as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstantMatchError {
    #[error("jurisdiction: unknown jurisdiction code '{0}'")]
    UnknownJurisdiction(String),
    #[error("languages: at least one language is required")]
    NoLanguage,
    #[error("languages[{index}]: '{code}' is not a lower-case ISO 639 code")]
    InvalidLanguage { index: usize, code: String },
    #[error("elevated_domains: '{0}' is listed twice")]
    DuplicateElevatedDomain(&'static str),
    #[error("{field}: '{value}' is not a lower-case slug")]
    InvalidPreference { field: String, value: String },
    #[error("preferences.times: {0}")]
    InvalidTimes(ProfileError),
    #[error("k: must be 1…{MAX_CHOICES} (got {0})")]
    InvalidChoiceCount(usize),
    #[error("clinicians[{index}]: {source}")]
    InvalidProfile { index: usize, source: ProfileError },
    #[error("clinicians: {0} profiles is more than the index supports (u32)")]
    TooManyClinicians(usize),
    #[error("clinician index {0} is out of range")]
    UnknownClinician(usize),
    #[error("clinician index {0} has no free place")]
    NoFreePlace(usize),
}

type Bits = Vec<u64>;

/// Languages with an id below this are held in each clinician's record; any further
/// ones in a bitset over clinicians.
const PACKED_LANGUAGES: usize = 64;
const RISK_BIT: u32 = 1 << 31;

/// One clinician's filter and outcome facts, packed for the scan.
#[derive(Debug, Clone, Copy, Default)]
struct Packed {
    /// Bit l: speaks language id l (ids < 64).
    languages: u64,
    /// Bits 0–3 formats, 8–13 populations, 31 accepts risk.
    attrs: u32,
    free_slots: u32,
    specialties: u16,
    effective: u16,
    neutral: u16,
    ineffective: u16,
}

/// A clinician licensed in a jurisdiction, with the licence's last valid day and a
/// copy of the clinician's packed record, so a match reads its posting list
/// sequentially (56 bytes per clinician) instead of jumping around memory.
#[derive(Debug, Clone, Copy)]
struct Posting {
    rec: Packed,
    clinician: u32,
    last_day: i32,
    /// Weekly availability in UTC hours, for the preferred-times score.
    hours: WeekHours,
}

/// Precomputed, scan-friendly view of all clinicians for instant matching.
#[derive(Debug, Clone)]
pub struct MatchIndex {
    profiles: Vec<ClinicianProfile>,
    norms: OutcomeNorms,
    /// Per jurisdiction, in clinician order, one entry per clinician (latest expiry).
    postings: Vec<Vec<Posting>>,
    /// The authoritative record per clinician (postings hold copies).
    packed: Vec<Packed>,
    /// Where each clinician's copies are: (jurisdiction, position in its list).
    copies: Vec<Vec<(u16, u32)>>,
    language_ids: HashMap<String, usize>,
    /// Bitsets over clinicians for languages with id ≥ 64.
    overflow_languages: HashMap<String, Bits>,
    approaches: HashMap<String, Bits>,
    characteristics: HashMap<String, Bits>,
    hours: Vec<WeekHours>,
}

/// How many clinicians were left after each hard filter, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Funnel {
    pub total: u32,
    /// Hold a licence (of any date) for the client's jurisdiction.
    pub licensed: u32,
    pub language: u32,
    pub format: u32,
    pub population: u32,
    pub capacity: u32,
    pub risk: u32,
    /// Not ineffective on the client's most elevated domains.
    pub outcomes: u32,
    /// And the licence is valid on the match date: the eligible clinicians.
    pub licence_current: u32,
}

/// One ranked clinician.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Position of the profile in the index.
    pub index: usize,
    pub score: u32,
}

/// A choice offered to the client, with the reasons in plain language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchExplanation {
    pub clinician: ClinicianId,
    pub index: usize,
    pub display_name: String,
    pub score: u32,
    /// Why this clinician ("licensed in Ontario", "speaks Spanish", …).
    pub reasons: Vec<String>,
    /// Wishes this clinician does not meet.
    pub unmet: Vec<String>,
}

impl MatchExplanation {
    /// The reasons on one line, separated by " · ".
    pub fn summary(&self) -> String {
        self.reasons.join(" · ")
    }
}

/// The answer to a client: ranked choices, and what could not be met overall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchResult {
    pub choices: Vec<MatchExplanation>,
    pub unmet: Vec<String>,
    pub funnel: Funnel,
}

/// A request resolved against an index: masks to test, weights to add.
#[derive(Debug, Clone)]
pub struct PreparedRequest<'a> {
    date_days: i32,
    postings: &'a [Posting],
    language_mask: u64,
    overflow_languages: Vec<&'a [u64]>,
    format_bit: u32,
    population_bit: u32,
    /// `RISK_BIT` when the client must go to a clinician accepting risk, else 0.
    risk_bit: u32,
    /// (domain bit, weight) for the most elevated domains.
    top: Vec<(u16, u32)>,
    top_mask: u16,
    approaches: Vec<&'a [u64]>,
    characteristics: Vec<&'a [u64]>,
    hours: Option<WeekHours>,
    /// Most points the preferences can add.
    max_rest: u32,
}

impl PreparedRequest<'_> {
    /// How many elevated domains the score looks at (at most three).
    pub fn top_len(&self) -> usize {
        self.top.len()
    }
}

#[inline]
fn has_bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).copied().unwrap_or(0) >> (i % 64) & 1 == 1
}

fn set_bit(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1u64 << (i % 64);
    }
}

fn date_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce()
}

impl MatchIndex {
    /// Validates every profile and builds the index. Outcome ratings are made against
    /// `norms` (use [`OutcomeNorms::pooled`] for the practice's own pooled rates).
    pub fn build(
        profiles: Vec<ClinicianProfile>,
        norms: OutcomeNorms,
    ) -> Result<Self, InstantMatchError> {
        let n = profiles.len();
        if u32::try_from(n).is_err() {
            return Err(InstantMatchError::TooManyClinicians(n));
        }
        let words = n.div_ceil(64);
        let mut index = MatchIndex {
            norms,
            postings: vec![Vec::new(); JURISDICTIONS.len()],
            packed: Vec::with_capacity(n),
            copies: vec![Vec::new(); n],
            language_ids: HashMap::new(),
            overflow_languages: HashMap::new(),
            approaches: HashMap::new(),
            characteristics: HashMap::new(),
            hours: Vec::with_capacity(n),
            profiles: Vec::new(),
        };
        for (i, p) in profiles.iter().enumerate() {
            p.validate()
                .map_err(|source| InstantMatchError::InvalidProfile { index: i, source })?;
            let mut rec = Packed::default();
            let hours = p.availability.utc_hours();
            for code in &p.languages {
                let next = index.language_ids.len();
                let id = *index.language_ids.entry(code.clone()).or_insert(next);
                if id < PACKED_LANGUAGES {
                    rec.languages |= 1 << id;
                } else {
                    let bits = index
                        .overflow_languages
                        .entry(code.clone())
                        .or_insert_with(|| vec![0; words]);
                    set_bit(bits, i);
                }
            }
            for f in &p.formats {
                rec.attrs |= 1 << f.index();
            }
            for pop in &p.populations {
                rec.attrs |= 1 << (8 + pop.index());
            }
            if p.accepts_risk {
                rec.attrs |= RISK_BIT;
            }
            rec.free_slots = p.capacity.free_slots();
            for a in &p.approaches {
                let bits = index
                    .approaches
                    .entry(a.clone())
                    .or_insert_with(|| vec![0; words]);
                set_bit(bits, i);
            }
            for c in p.shareable_characteristics() {
                let bits = index
                    .characteristics
                    .entry(c.clone())
                    .or_insert_with(|| vec![0; words]);
                set_bit(bits, i);
            }
            rec.specialties = p.specialties.iter().fold(0, |m, d| m | d.bit());
            for o in &p.outcomes {
                match o.rating(norms.expected(o.domain)) {
                    OutcomeRating::Effective => rec.effective |= o.domain.bit(),
                    OutcomeRating::Neutral => rec.neutral |= o.domain.bit(),
                    OutcomeRating::Ineffective => rec.ineffective |= o.domain.bit(),
                    OutcomeRating::InsufficientData => {}
                }
            }
            for l in &p.licences {
                let Some(j) = Jurisdiction::from_code(&l.jurisdiction) else {
                    continue;
                };
                let Some(list) = index.postings.get_mut(j.index()) else {
                    continue;
                };
                let last_day = date_days(l.expires_on);
                match list.last_mut() {
                    // Two licences in one jurisdiction: keep the later expiry.
                    Some(prev) if prev.clinician == i as u32 => {
                        prev.last_day = prev.last_day.max(last_day)
                    }
                    _ => {
                        if let Some(copies) = index.copies.get_mut(i) {
                            copies.push((j.index() as u16, list.len() as u32));
                        }
                        list.push(Posting {
                            rec,
                            clinician: i as u32,
                            last_day,
                            hours,
                        });
                    }
                }
            }
            index.packed.push(rec);
            index.hours.push(hours);
        }
        index.profiles = profiles;
        Ok(index)
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    pub fn profile(&self, index: usize) -> Option<&ClinicianProfile> {
        self.profiles.get(index)
    }

    pub fn norms(&self) -> &OutcomeNorms {
        &self.norms
    }

    /// Free places left for a clinician.
    pub fn free_slots(&self, index: usize) -> Option<u32> {
        self.packed.get(index).map(|p| p.free_slots)
    }

    /// The clinician's rating on a domain against this index's norms.
    pub fn rating(&self, index: usize, domain: ProblemDomain) -> OutcomeRating {
        self.profiles
            .get(index)
            .and_then(|p| p.outcome(domain))
            .map_or(OutcomeRating::InsufficientData, |o| {
                o.rating(self.norms.expected(domain))
            })
    }

    /// Takes one place from a clinician (the client chose them). The clinician stops
    /// being offered when no place is left. The durable, concurrency-safe hold is the
    /// store's job; this keeps the in-memory index in step with it.
    pub fn reserve(&mut self, index: usize) -> Result<u32, InstantMatchError> {
        let rec = self
            .packed
            .get_mut(index)
            .ok_or(InstantMatchError::UnknownClinician(index))?;
        if rec.free_slots == 0 {
            return Err(InstantMatchError::NoFreePlace(index));
        }
        rec.free_slots -= 1;
        let left = rec.free_slots;
        self.sync_copies(index, left);
        Ok(left)
    }

    fn sync_copies(&mut self, index: usize, free_slots: u32) {
        for &(j, pos) in self.copies.get(index).map_or(&[][..], |c| c.as_slice()) {
            if let Some(post) = self
                .postings
                .get_mut(usize::from(j))
                .and_then(|list| list.get_mut(pos as usize))
            {
                post.rec.free_slots = free_slots;
            }
        }
    }

    /// Gives a place back (a client switched or withdrew).
    pub fn release(&mut self, index: usize) -> Result<u32, InstantMatchError> {
        let rec = self
            .packed
            .get_mut(index)
            .ok_or(InstantMatchError::UnknownClinician(index))?;
        rec.free_slots = rec.free_slots.saturating_add(1);
        let left = rec.free_slots;
        self.sync_copies(index, left);
        Ok(left)
    }

    /// Checks a request and resolves it against the index.
    pub fn prepare<'a>(
        &'a self,
        req: &ClientRequest,
    ) -> Result<PreparedRequest<'a>, InstantMatchError> {
        static NONE: [u64; 0] = [];
        let jurisdiction = Jurisdiction::from_code(&req.jurisdiction)
            .ok_or_else(|| InstantMatchError::UnknownJurisdiction(req.jurisdiction.clone()))?;
        if req.languages.is_empty() {
            return Err(InstantMatchError::NoLanguage);
        }
        let mut language_mask = 0u64;
        let mut overflow_languages = Vec::new();
        for (index, code) in req.languages.iter().enumerate() {
            if !is_language_code(code) {
                return Err(InstantMatchError::InvalidLanguage {
                    index,
                    code: code.clone(),
                });
            }
            match self.language_ids.get(code) {
                Some(&id) if id < PACKED_LANGUAGES => language_mask |= 1 << id,
                Some(_) => {
                    if let Some(bits) = self.overflow_languages.get(code) {
                        overflow_languages.push(bits.as_slice());
                    }
                }
                None => {}
            }
        }
        let mut seen = 0u16;
        for d in &req.elevated_domains {
            if seen & d.bit() != 0 {
                return Err(InstantMatchError::DuplicateElevatedDomain(d.label()));
            }
            seen |= d.bit();
        }
        for (field, values) in [
            ("preferences.approaches", &req.preferences.approaches),
            (
                "preferences.characteristics",
                &req.preferences.characteristics,
            ),
        ] {
            for (i, v) in values.iter().enumerate() {
                if !is_slug(v) {
                    return Err(InstantMatchError::InvalidPreference {
                        field: format!("{field}[{i}]"),
                        value: v.clone(),
                    });
                }
            }
        }
        if let Some(times) = &req.preferences.times {
            times
                .validate("preferences.times")
                .map_err(InstantMatchError::InvalidTimes)?;
        }
        let lookup = |map: &'a HashMap<String, Bits>, key: &str| -> &'a [u64] {
            map.get(key).map_or(&NONE[..], |b| b.as_slice())
        };
        let top: Vec<(u16, u32)> = req
            .elevated_domains
            .iter()
            .take(ELEVATED_DOMAINS_CONSIDERED)
            .zip(RANK_WEIGHTS)
            .map(|(d, w)| (d.bit(), w))
            .collect();
        Ok(PreparedRequest {
            date_days: date_days(req.date),
            postings: self
                .postings
                .get(jurisdiction.index())
                .map_or(&[][..], |p| p.as_slice()),
            language_mask,
            overflow_languages,
            format_bit: 1 << req.format.index(),
            population_bit: 1 << (8 + req.population.index()),
            risk_bit: if needs_risk_routing(req) { RISK_BIT } else { 0 },
            top_mask: top.iter().fold(0, |m, (b, _)| m | b),
            top,
            approaches: req
                .preferences
                .approaches
                .iter()
                .map(|a| lookup(&self.approaches, a))
                .collect(),
            characteristics: req
                .preferences
                .characteristics
                .iter()
                .map(|c| lookup(&self.characteristics, c))
                .collect(),
            hours: req.preferences.times.as_ref().map(|t| t.utc_hours()),
            max_rest: APPROACH_POINTS * req.preferences.approaches.len() as u32
                + CHARACTERISTIC_POINTS * req.preferences.characteristics.len() as u32
                + if req.preferences.times.is_some() {
                    MAX_HOUR_POINTS
                } else {
                    0
                },
        })
    }

    /// Applies the hard filters and keeps the best `k` clinicians in `out` (cleared
    /// first), best first; ties go to the lower index. Returns the filter funnel.
    pub fn rank(&self, q: &PreparedRequest<'_>, k: usize, out: &mut Vec<Candidate>) -> Funnel {
        out.clear();
        // Pass 1, branch-free: every hard filter for every licensed clinician, the
        // funnel counts in registers, and the positions of the eligible ones written
        // unconditionally into a compact list (the cursor advances only when eligible).
        let (mut language_n, mut format_n, mut population_n, mut capacity_n) = (0u32, 0, 0, 0);
        let (mut risk_n, mut outcomes_n, mut current_n) = (0u32, 0, 0);
        let mut eligible = vec![0u32; q.postings.len() + 1];
        let mut found = 0usize;
        let no_overflow = q.overflow_languages.is_empty();
        for (pos, post) in q.postings.iter().enumerate() {
            let c = &post.rec;
            let mut language = c.languages & q.language_mask != 0;
            if !no_overflow {
                let i = post.clinician as usize;
                language |= q.overflow_languages.iter().any(|b| has_bit(b, i));
            }
            let format = language & (c.attrs & q.format_bit != 0);
            let population = format & (c.attrs & q.population_bit != 0);
            let capacity = population & (c.free_slots > 0);
            let risk = capacity & (c.attrs & q.risk_bit == q.risk_bit);
            let outcomes = risk & (c.ineffective & q.top_mask == 0);
            let current = outcomes & (post.last_day >= q.date_days);
            language_n += u32::from(language);
            format_n += u32::from(format);
            population_n += u32::from(population);
            capacity_n += u32::from(capacity);
            risk_n += u32::from(risk);
            outcomes_n += u32::from(outcomes);
            current_n += u32::from(current);
            if let Some(slot) = eligible.get_mut(found) {
                *slot = pos as u32;
            }
            found += usize::from(current);
        }
        // Pass 2: score the eligible ones, cheap part first; skip the rest when even
        // its maximum cannot beat the current k-th choice (ties keep the earlier one).
        for &pos in eligible.get(..found).unwrap_or(&[]) {
            let Some(post) = q.postings.get(pos as usize) else {
                continue;
            };
            let base = outcome_score(&post.rec, q);
            if out.len() == k && out.last().is_some_and(|l| base + q.max_rest <= l.score) {
                continue;
            }
            let i = post.clinician as usize;
            let score = base + preference_score(i, post, q);
            push_top(out, k, Candidate { index: i, score });
        }
        Funnel {
            total: self.profiles.len() as u32,
            licensed: q.postings.len() as u32,
            language: language_n,
            format: format_n,
            population: population_n,
            capacity: capacity_n,
            risk: risk_n,
            outcomes: outcomes_n,
            licence_current: current_n,
        }
    }

    /// The full instant match: check the request, filter, score, take the best `k`
    /// and explain each choice and what could not be met.
    pub fn match_client(
        &self,
        req: &ClientRequest,
        k: usize,
    ) -> Result<MatchResult, InstantMatchError> {
        if k == 0 || k > MAX_CHOICES {
            return Err(InstantMatchError::InvalidChoiceCount(k));
        }
        let q = self.prepare(req)?;
        let mut top = Vec::with_capacity(k);
        let funnel = self.rank(&q, k, &mut top);
        let choices = top.iter().map(|c| self.explain(req, c)).collect();
        let mut unmet = self.funnel_unmet(req, &funnel);
        if !top.is_empty() && top.len() < k {
            unmet.push(format!(
                "only {} clinician{} meet{} every requirement",
                top.len(),
                if top.len() == 1 { "" } else { "s" },
                if top.len() == 1 { "s" } else { "" }
            ));
        }
        Ok(MatchResult {
            choices,
            unmet,
            funnel,
        })
    }

    /// Why nobody is left, naming the first hard filter that removed everyone.
    fn funnel_unmet(&self, req: &ClientRequest, f: &Funnel) -> Vec<String> {
        let place = Jurisdiction::from_code(&req.jurisdiction).map_or("?", |j| j.name());
        let langs: Vec<&str> = req.languages.iter().map(|l| language_name(l)).collect();
        let reason = if f.licensed == 0 {
            format!("no clinician holds a licence for {place}")
        } else if f.language == 0 {
            format!(
                "no clinician licensed in {place} speaks {}",
                langs.join(" or ")
            )
        } else if f.format == 0 {
            format!(
                "no suitable clinician offers {} sessions",
                req.format.label()
            )
        } else if f.population == 0 {
            format!(
                "no suitable clinician works with {}",
                req.population.label()
            )
        } else if f.capacity == 0 {
            "no suitable clinician has a free place right now".to_string()
        } else if f.risk == 0 {
            "no suitable clinician with a free place takes urgent or higher-risk referrals; \
             the intake team must arrange care directly"
                .to_string()
        } else if f.outcomes == 0 {
            "every remaining clinician is rated ineffective on your most elevated problems"
                .to_string()
        } else if f.licence_current == 0 {
            format!("the remaining clinicians' licences for {place} have expired")
        } else {
            return Vec::new();
        };
        vec![reason]
    }

    /// Plain-language reasons for one choice, and the wishes it does not meet.
    pub fn explain(&self, req: &ClientRequest, c: &Candidate) -> MatchExplanation {
        let mut reasons = Vec::new();
        let mut unmet = Vec::new();
        let Some(p) = self.profiles.get(c.index) else {
            return MatchExplanation {
                clinician: ClinicianId::from_uuid(uuid::Uuid::nil()),
                index: c.index,
                display_name: String::new(),
                score: c.score,
                reasons,
                unmet,
            };
        };
        if let Some(j) = Jurisdiction::from_code(&req.jurisdiction) {
            reasons.push(format!("licensed in {}", j.name()));
        }
        if let Some(l) = req.languages.iter().find(|l| p.languages.contains(l)) {
            reasons.push(format!("speaks {}", language_name(l)));
        }
        reasons.push(format!("offers {} sessions", req.format.label()));
        if req.population != Population::Adults {
            reasons.push(format!("works with {}", req.population.label()));
        }
        if needs_risk_routing(req) {
            reasons.push("takes urgent and higher-risk referrals".to_string());
        }
        for d in req
            .elevated_domains
            .iter()
            .take(ELEVATED_DOMAINS_CONSIDERED)
        {
            if p.specialties.contains(d) {
                reasons.push(format!("works with {}", d.label()));
            }
        }
        for d in req
            .elevated_domains
            .iter()
            .take(ELEVATED_DOMAINS_CONSIDERED)
        {
            let n = p.outcome(*d).map_or(0, |o| o.completed_episodes);
            match self.rating(c.index, *d) {
                OutcomeRating::Effective => {
                    reasons.push(format!("strong results with {} ({n} clients)", d.label()))
                }
                OutcomeRating::Neutral => {
                    reasons.push(format!("typical results with {} ({n} clients)", d.label()))
                }
                OutcomeRating::InsufficientData => unmet.push(format!(
                    "too few finished cases with {} to rate results ({n} of 15)",
                    d.label()
                )),
                OutcomeRating::Ineffective => {}
            }
        }
        for a in &req.preferences.approaches {
            if p.approaches.contains(a) {
                reasons.push(format!("trained in {}", approach_label(a)));
            } else {
                unmet.push(format!("not trained in {}", approach_label(a)));
            }
        }
        let shared = p.shareable_characteristics();
        for ch in &req.preferences.characteristics {
            if shared.contains(ch) {
                reasons.push(format!(
                    "describes themself as {}",
                    ch.replace(['_', '-'], " ")
                ));
            } else {
                unmet.push(format!("not known to be {}", ch.replace(['_', '-'], " ")));
            }
        }
        if let Some(times) = &req.preferences.times {
            let want = times.utc_hours();
            let have = self.hours.get(c.index).copied().unwrap_or_default();
            let overlap: u32 = want
                .iter()
                .zip(have)
                .map(|(a, b)| (a & b).count_ones())
                .sum();
            if overlap > 0 {
                reasons.push(format!(
                    "available {overlap} hour{} a week at your preferred times",
                    if overlap == 1 { "" } else { "s" }
                ));
            } else {
                unmet.push("not available at your preferred times".to_string());
            }
        }
        MatchExplanation {
            clinician: p.id,
            index: c.index,
            display_name: p.display_name.clone(),
            score: c.score,
            reasons,
            unmet,
        }
    }
}

/// Score from specialty and measured outcomes on the elevated domains.
#[inline]
fn outcome_score(c: &Packed, q: &PreparedRequest<'_>) -> u32 {
    let mut s = 0u32;
    for &(bit, w) in &q.top {
        let points = SPECIALTY_POINTS * u32::from(c.specialties & bit != 0)
            + EFFECTIVE_POINTS * u32::from(c.effective & bit != 0)
            + NEUTRAL_POINTS * u32::from(c.neutral & bit != 0);
        s += w * points;
    }
    if q.top_mask != 0 && c.effective & q.top_mask == q.top_mask {
        s += TOP_LEVEL_BONUS;
    }
    s
}

/// Score from the client's preferences (approach, characteristics, times); at most
/// `PreparedRequest::max_rest`.
#[inline]
fn preference_score(i: usize, post: &Posting, q: &PreparedRequest<'_>) -> u32 {
    let mut s = 0u32;
    for a in &q.approaches {
        s += APPROACH_POINTS * u32::from(has_bit(a, i));
    }
    for ch in &q.characteristics {
        s += CHARACTERISTIC_POINTS * u32::from(has_bit(ch, i));
    }
    if let Some(want) = &q.hours {
        let overlap: u32 = want
            .iter()
            .zip(&post.hours)
            .map(|(a, b)| (a & b).count_ones())
            .sum();
        s += overlap.min(MAX_HOUR_POINTS);
    }
    s
}

/// Urgent referrals and clients at moderate or higher risk go only to clinicians who
/// accept risk.
pub fn needs_risk_routing(req: &ClientRequest) -> bool {
    req.urgent || req.risk >= RiskLevel::Moderate
}

/// Inserts into a best-first buffer of at most `k`. Candidates arrive in increasing
/// index order, so an equal score never displaces an earlier clinician.
#[inline]
fn push_top(out: &mut Vec<Candidate>, k: usize, c: Candidate) {
    if out.len() == k {
        match out.last() {
            Some(last) if c.score > last.score => {
                out.pop();
            }
            _ => return,
        }
    }
    let pos = out.partition_point(|x| x.score >= c.score);
    out.insert(pos, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_buffer_keeps_best_and_earliest_on_ties() {
        let mut out = Vec::new();
        for (index, score) in [(0, 5), (1, 9), (2, 5), (3, 9), (4, 7), (5, 9)] {
            push_top(&mut out, 3, Candidate { index, score });
        }
        let got: Vec<_> = out.iter().map(|c| (c.index, c.score)).collect();
        assert_eq!(got, vec![(1, 9), (3, 9), (5, 9)]);
        push_top(&mut out, 3, Candidate { index: 6, score: 9 });
        assert_eq!(out.len(), 3);
        assert_eq!(out.last().map(|c| c.index), Some(5));
    }
}
