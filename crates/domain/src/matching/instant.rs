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

/// Bit planes over a list of clinicians: plane `p` holds `words` 64-bit words, bit `i`
/// set when entry `i` has the property. A plane id past the end reads as all zeros.
#[derive(Debug, Clone, Default)]
struct Planes {
    words: usize,
    data: Vec<u64>,
}

impl Planes {
    fn new(planes: usize, words: usize) -> Self {
        Planes {
            words,
            data: vec![0; planes * words],
        }
    }

    #[inline]
    fn plane(&self, p: usize) -> &[u64] {
        self.data
            .get(p * self.words..(p + 1) * self.words)
            .unwrap_or(&[])
    }

    fn set(&mut self, p: usize, i: usize, on: bool) {
        if let Some(w) = self.data.get_mut(p * self.words + i / 64) {
            if on {
                *w |= 1u64 << (i % 64);
            } else {
                *w &= !(1u64 << (i % 64));
            }
        }
    }
}

/// Fixed planes of a jurisdiction's list: formats, populations, risk acceptance, a
/// free place, and "rated ineffective" and "rated effective" per problem domain.
const FORMAT_PLANE: usize = 0;
const POPULATION_PLANE: usize = FORMAT_PLANE + Format::ALL.len();
const RISK_PLANE: usize = POPULATION_PLANE + Population::ALL.len();
const PLACE_PLANE: usize = RISK_PLANE + 1;
const INEFFECTIVE_PLANE: usize = PLACE_PLANE + 1;
const EFFECTIVE_PLANE: usize = INEFFECTIVE_PLANE + ProblemDomain::COUNT;
const FIXED_PLANES: usize = EFFECTIVE_PLANE + ProblemDomain::COUNT;
const HOURS_PER_WEEK: usize = 168;

/// The clinicians licensed in one jurisdiction, in profile order (one entry per
/// clinician; with two licences there, the later expiry), as a struct of arrays: every
/// hard filter is a bit plane, so a match ANDs a few words per 64 clinicians and
/// touches per-clinician data only for the eligible ones.
#[derive(Debug, Clone, Default)]
struct JurisdictionList {
    /// Entry → clinician index.
    clinician: Vec<u32>,
    /// Entry → last valid day of the licence (days from CE).
    last_day: Vec<i32>,
    /// Entries ordered by `last_day` (ascending): the expired ones on a date are a prefix.
    by_expiry: Vec<u32>,
    fixed: Planes,
    /// One plane per language id of the index.
    languages: Planes,
    /// One plane per approach id.
    approaches: Planes,
    /// One plane per consented characteristic id.
    characteristics: Planes,
    /// Domain-major: `points[d * len + e]` = the unweighted outcome points of entry `e`
    /// on domain `d` (specialty 4 + effective 6 or neutral 1).
    points: Vec<u8>,
    /// One plane per UTC hour of the week (168): who is available then. A match
    /// reads only the planes of the client's preferred hours.
    hours: Planes,
}

impl JurisdictionList {
    fn len(&self) -> usize {
        self.clinician.len()
    }
}

/// Precomputed, scan-friendly view of all clinicians for instant matching, built once
/// when the profiles load.
#[derive(Debug, Clone)]
pub struct MatchIndex {
    profiles: Vec<ClinicianProfile>,
    norms: OutcomeNorms,
    lists: Vec<JurisdictionList>,
    /// Free places per clinician (the lists hold a "has a place" bit).
    free: Vec<u32>,
    /// Where each clinician appears: (jurisdiction, entry).
    copies: Vec<Vec<(u16, u32)>>,
    language_ids: HashMap<String, usize>,
    approach_ids: HashMap<String, usize>,
    characteristic_ids: HashMap<String, usize>,
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

/// A request resolved against an index: the planes to AND, weights to add.
#[derive(Debug, Clone)]
pub struct PreparedRequest<'a> {
    date_days: i32,
    list: &'a JurisdictionList,
    /// The planes of the client's languages (one in common is enough).
    languages: Vec<&'a [u64]>,
    format: &'a [u64],
    population: &'a [u64],
    /// Present when the client must go to a clinician accepting risk.
    risk: Option<&'a [u64]>,
    place: &'a [u64],
    /// "Rated ineffective" planes of the most elevated domains.
    ineffective: Vec<&'a [u64]>,
    /// (outcome points of the domain, weight) for the most elevated domains.
    top: Vec<(&'a [u8], u32)>,
    /// "Rated effective" planes of the two most elevated domains: the clinicians worth
    /// scoring first.
    promising: Vec<&'a [u64]>,
    /// Most outcome points a clinician outside `promising` can have.
    rest_bound: u32,
    approaches: Vec<&'a [u64]>,
    characteristics: Vec<&'a [u64]>,
    /// The planes of the client's preferred UTC hours (`None`: no preferred times).
    hours: Option<Vec<&'a [u64]>>,
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

#[inline]
fn word(bits: &[u64], w: usize) -> u64 {
    bits.get(w).copied().unwrap_or(0)
}

/// Gives `key` the next free id in `ids` (or its existing one).
fn intern(ids: &mut HashMap<String, usize>, key: &str) -> usize {
    let next = ids.len();
    *ids.entry(key.to_string()).or_insert(next)
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
        let mut language_ids = HashMap::new();
        let mut approach_ids = HashMap::new();
        let mut characteristic_ids = HashMap::new();
        // Pass 1: validate, give every language, approach and characteristic an id,
        // and collect each jurisdiction's entries (clinician, last valid day).
        let mut entries: Vec<Vec<(u32, i32)>> = vec![Vec::new(); JURISDICTIONS.len()];
        for (i, p) in profiles.iter().enumerate() {
            p.validate()
                .map_err(|source| InstantMatchError::InvalidProfile { index: i, source })?;
            for code in &p.languages {
                intern(&mut language_ids, code);
            }
            for a in &p.approaches {
                intern(&mut approach_ids, a);
            }
            for c in p.shareable_characteristics() {
                intern(&mut characteristic_ids, c);
            }
            for l in &p.licences {
                let Some(list) = Jurisdiction::from_code(&l.jurisdiction)
                    .and_then(|j| entries.get_mut(j.index()))
                else {
                    continue;
                };
                let last_day = date_days(l.expires_on);
                match list.last_mut() {
                    // Two licences in one jurisdiction: keep the later expiry.
                    Some(prev) if prev.0 == i as u32 => prev.1 = prev.1.max(last_day),
                    _ => list.push((i as u32, last_day)),
                }
            }
        }
        // Per clinician: the packed outcome masks and UTC week.
        let mut outcome_masks = Vec::with_capacity(n);
        let mut hours = Vec::with_capacity(n);
        let mut free = Vec::with_capacity(n);
        for p in &profiles {
            let (mut eff, mut neu, mut inef) = (0u16, 0u16, 0u16);
            for o in &p.outcomes {
                match o.rating(norms.expected(o.domain)) {
                    OutcomeRating::Effective => eff |= o.domain.bit(),
                    OutcomeRating::Neutral => neu |= o.domain.bit(),
                    OutcomeRating::Ineffective => inef |= o.domain.bit(),
                    OutcomeRating::InsufficientData => {}
                }
            }
            let spec = p.specialties.iter().fold(0u16, |m, d| m | d.bit());
            outcome_masks.push([spec, eff, neu, inef]);
            hours.push(p.availability.utc_hours());
            free.push(p.capacity.free_slots());
        }
        // Pass 2: one struct-of-arrays list per jurisdiction.
        let mut copies = vec![Vec::new(); n];
        let mut lists = Vec::with_capacity(entries.len());
        for (j, list_entries) in entries.iter().enumerate() {
            let words = list_entries.len().div_ceil(64);
            let mut list = JurisdictionList {
                fixed: Planes::new(FIXED_PLANES, words),
                languages: Planes::new(language_ids.len(), words),
                approaches: Planes::new(approach_ids.len(), words),
                characteristics: Planes::new(characteristic_ids.len(), words),
                hours: Planes::new(HOURS_PER_WEEK, words),
                ..JurisdictionList::default()
            };
            for (e, &(i, last_day)) in list_entries.iter().enumerate() {
                let ci = i as usize;
                let (Some(p), Some(&[_, eff, _, inef])) = (profiles.get(ci), outcome_masks.get(ci))
                else {
                    continue;
                };
                if let Some(c) = copies.get_mut(ci) {
                    c.push((j as u16, e as u32));
                }
                list.clinician.push(i);
                list.last_day.push(last_day);
                let week = hours.get(ci).copied().unwrap_or_default();
                for (wi, &bits) in week.iter().enumerate() {
                    let mut bits = bits;
                    while bits != 0 {
                        list.hours
                            .set(wi * 64 + bits.trailing_zeros() as usize, e, true);
                        bits &= bits - 1;
                    }
                }
                for f in &p.formats {
                    list.fixed.set(FORMAT_PLANE + f.index(), e, true);
                }
                for pop in &p.populations {
                    list.fixed.set(POPULATION_PLANE + pop.index(), e, true);
                }
                list.fixed.set(RISK_PLANE, e, p.accepts_risk);
                list.fixed
                    .set(PLACE_PLANE, e, free.get(ci).is_some_and(|&f| f > 0));
                for d in ProblemDomain::ALL {
                    list.fixed
                        .set(INEFFECTIVE_PLANE + d.index(), e, inef & d.bit() != 0);
                    list.fixed
                        .set(EFFECTIVE_PLANE + d.index(), e, eff & d.bit() != 0);
                }
                for code in &p.languages {
                    if let Some(&id) = language_ids.get(code) {
                        list.languages.set(id, e, true);
                    }
                }
                for a in &p.approaches {
                    if let Some(&id) = approach_ids.get(a) {
                        list.approaches.set(id, e, true);
                    }
                }
                for c in p.shareable_characteristics() {
                    if let Some(&id) = characteristic_ids.get(c) {
                        list.characteristics.set(id, e, true);
                    }
                }
            }
            let len = list.len();
            list.points = vec![0; ProblemDomain::COUNT * len];
            for (e, &(i, _)) in list_entries.iter().enumerate() {
                let Some(&[spec, eff, neu, _]) = outcome_masks.get(i as usize) else {
                    continue;
                };
                for d in ProblemDomain::ALL {
                    let bit = d.bit();
                    let points = SPECIALTY_POINTS * u32::from(spec & bit != 0)
                        + EFFECTIVE_POINTS * u32::from(eff & bit != 0)
                        + NEUTRAL_POINTS * u32::from(neu & bit != 0);
                    if let Some(slot) = list.points.get_mut(d.index() * len + e) {
                        *slot = points as u8;
                    }
                }
            }
            let mut by_expiry: Vec<u32> = (0..list.len() as u32).collect();
            by_expiry.sort_by_key(|&e| list.last_day.get(e as usize).copied());
            list.by_expiry = by_expiry;
            lists.push(list);
        }
        Ok(MatchIndex {
            profiles,
            norms,
            lists,
            free,
            copies,
            language_ids,
            approach_ids,
            characteristic_ids,
            hours,
        })
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
        self.free.get(index).copied()
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
        let free = self
            .free
            .get_mut(index)
            .ok_or(InstantMatchError::UnknownClinician(index))?;
        if *free == 0 {
            return Err(InstantMatchError::NoFreePlace(index));
        }
        *free -= 1;
        let left = *free;
        self.sync_place(index, left > 0);
        Ok(left)
    }

    fn sync_place(&mut self, index: usize, has_place: bool) {
        for &(j, e) in self.copies.get(index).map_or(&[][..], |c| c.as_slice()) {
            if let Some(list) = self.lists.get_mut(usize::from(j)) {
                list.fixed.set(PLACE_PLANE, e as usize, has_place);
            }
        }
    }

    /// Gives a place back (a client switched or withdrew).
    pub fn release(&mut self, index: usize) -> Result<u32, InstantMatchError> {
        let free = self
            .free
            .get_mut(index)
            .ok_or(InstantMatchError::UnknownClinician(index))?;
        *free = free.saturating_add(1);
        let left = *free;
        self.sync_place(index, true);
        Ok(left)
    }

    /// Checks a request and resolves it against the index.
    pub fn prepare<'a>(
        &'a self,
        req: &ClientRequest,
    ) -> Result<PreparedRequest<'a>, InstantMatchError> {
        static EMPTY_LIST: JurisdictionList = JurisdictionList {
            clinician: Vec::new(),
            last_day: Vec::new(),
            by_expiry: Vec::new(),
            fixed: Planes {
                words: 0,
                data: Vec::new(),
            },
            languages: Planes {
                words: 0,
                data: Vec::new(),
            },
            approaches: Planes {
                words: 0,
                data: Vec::new(),
            },
            characteristics: Planes {
                words: 0,
                data: Vec::new(),
            },
            points: Vec::new(),
            hours: Planes {
                words: 0,
                data: Vec::new(),
            },
        };
        let jurisdiction = Jurisdiction::from_code(&req.jurisdiction)
            .ok_or_else(|| InstantMatchError::UnknownJurisdiction(req.jurisdiction.clone()))?;
        let list = self.lists.get(jurisdiction.index()).unwrap_or(&EMPTY_LIST);
        if req.languages.is_empty() {
            return Err(InstantMatchError::NoLanguage);
        }
        let mut languages = Vec::with_capacity(req.languages.len());
        for (index, code) in req.languages.iter().enumerate() {
            if !is_language_code(code) {
                return Err(InstantMatchError::InvalidLanguage {
                    index,
                    code: code.clone(),
                });
            }
            if let Some(&id) = self.language_ids.get(code) {
                languages.push(list.languages.plane(id));
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
        let planes = |ids: &HashMap<String, usize>, planes: &'a Planes, keys: &[String]| {
            keys.iter()
                .map(|key| ids.get(key).map_or(&[][..], |&id| planes.plane(id)))
                .collect::<Vec<&'a [u64]>>()
        };
        let domains: Vec<ProblemDomain> = req
            .elevated_domains
            .iter()
            .take(ELEVATED_DOMAINS_CONSIDERED)
            .copied()
            .collect();
        let len = list.len();
        let top = domains
            .iter()
            .zip(RANK_WEIGHTS)
            .map(|(d, w)| {
                let points = list
                    .points
                    .get(d.index() * len..(d.index() + 1) * len)
                    .unwrap_or(&[]);
                (points, w)
            })
            .collect();
        // Outside `promising` (not effective on the first two domains) a clinician
        // gets at most specialty + neutral there, the full points on the third, and
        // never the top-level bonus.
        let rest_bound = RANK_WEIGHTS
            .iter()
            .take(domains.len())
            .enumerate()
            .map(|(i, w)| {
                w * if i < 2 {
                    SPECIALTY_POINTS + NEUTRAL_POINTS
                } else {
                    SPECIALTY_POINTS + EFFECTIVE_POINTS
                }
            })
            .sum();
        Ok(PreparedRequest {
            date_days: date_days(req.date),
            list,
            languages,
            format: list.fixed.plane(FORMAT_PLANE + req.format.index()),
            population: list.fixed.plane(POPULATION_PLANE + req.population.index()),
            risk: needs_risk_routing(req).then(|| list.fixed.plane(RISK_PLANE)),
            place: list.fixed.plane(PLACE_PLANE),
            ineffective: domains
                .iter()
                .map(|d| list.fixed.plane(INEFFECTIVE_PLANE + d.index()))
                .collect(),
            promising: domains
                .iter()
                .take(2)
                .map(|d| list.fixed.plane(EFFECTIVE_PLANE + d.index()))
                .collect(),
            rest_bound,
            top,
            approaches: planes(
                &self.approach_ids,
                &list.approaches,
                &req.preferences.approaches,
            ),
            characteristics: planes(
                &self.characteristic_ids,
                &list.characteristics,
                &req.preferences.characteristics,
            ),
            hours: req.preferences.times.as_ref().map(|t| {
                let mut planes = Vec::new();
                for (wi, &bits) in t.utc_hours().iter().enumerate() {
                    let mut bits = bits;
                    while bits != 0 {
                        planes.push(list.hours.plane(wi * 64 + bits.trailing_zeros() as usize));
                        bits &= bits - 1;
                    }
                }
                planes
            }),
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
        let list = q.list;
        // Pass 1, 64 clinicians per step: AND the filter planes in order, count what
        // each filter leaves (the funnel), keep the survivors' word.
        let (mut language_n, mut format_n, mut population_n, mut capacity_n) = (0u32, 0, 0, 0);
        let (mut risk_n, mut outcomes_n) = (0u32, 0);
        let words = list.fixed.words;
        let mut eligible = vec![0u64; words];
        for (w, slot) in eligible.iter_mut().enumerate() {
            let language = q.languages.iter().fold(0, |m, l| m | word(l, w));
            let format = language & word(q.format, w);
            let population = format & word(q.population, w);
            let capacity = population & word(q.place, w);
            let risk = q.risk.map_or(capacity, |r| capacity & word(r, w));
            let ineffective = q.ineffective.iter().fold(0, |m, p| m | word(p, w));
            let outcomes = risk & !ineffective;
            language_n += language.count_ones();
            format_n += format.count_ones();
            population_n += population.count_ones();
            capacity_n += capacity.count_ones();
            risk_n += risk.count_ones();
            outcomes_n += outcomes.count_ones();
            *slot = outcomes;
        }
        // Licences expired on the match date are a prefix of the expiry order.
        let mut expired_n = 0u32;
        for &e in &list.by_expiry {
            let e = e as usize;
            if list.last_day.get(e).is_none_or(|&d| d >= q.date_days) {
                break;
            }
            if let Some(w) = eligible.get_mut(e / 64) {
                let bit = 1u64 << (e % 64);
                expired_n += u32::from(*w & bit != 0);
                *w &= !bit;
            }
        }
        // Pass 2: score the eligible ones, outcomes first, the promising ones
        // (effective on one of the two most elevated domains) before the rest; skip
        // the preference part when even its maximum cannot beat the current k-th
        // choice, and the whole rest when its bound cannot.
        // The k-th choice so far as (score, entry); entries are in profile order, so
        // comparing entries compares profiles.
        let mut kth: Option<(u32, usize)> = None;
        let beats = |kth: Option<(u32, usize)>, score: u32, e: usize| {
            kth.is_none_or(|(s, ke)| score > s || (score == s && e < ke))
        };
        let hour_points = if q.hours.is_some() {
            MAX_HOUR_POINTS
        } else {
            0
        };
        for promising_pass in [true, false] {
            if !promising_pass && !beats(kth, q.rest_bound + q.max_rest, 0) {
                break;
            }
            for (w, &bits) in eligible.iter().enumerate() {
                let promising = q.promising.iter().fold(0, |m, p| m | word(p, w));
                let mut bits = if promising_pass {
                    bits & promising
                } else {
                    bits & !promising
                };
                while bits != 0 {
                    let e = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let base = outcome_score(e, q);
                    if !beats(kth, base + q.max_rest, e) {
                        continue;
                    }
                    // Approaches and characteristics come from the planes (cheap);
                    // the week is read only when it can still make a difference.
                    let mut score = base + bit_preference_score(e, q);
                    if !beats(kth, score + hour_points, e) {
                        continue;
                    }
                    score += hour_score(e, q);
                    if !beats(kth, score, e) {
                        continue;
                    }
                    // During the scan `index` holds the entry (same order).
                    push_top(out, k, Candidate { index: e, score });
                    if out.len() == k {
                        kth = out.last().map(|c| (c.score, c.index));
                    }
                }
            }
        }
        for c in out.iter_mut() {
            c.index = list.clinician.get(c.index).copied().unwrap_or(0) as usize;
        }
        Funnel {
            total: self.profiles.len() as u32,
            licensed: list.len() as u32,
            language: language_n,
            format: format_n,
            population: population_n,
            capacity: capacity_n,
            risk: risk_n,
            outcomes: outcomes_n,
            licence_current: outcomes_n - expired_n,
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

/// Score from specialty and measured outcomes on the elevated domains for entry `e`.
#[inline]
fn outcome_score(e: usize, q: &PreparedRequest<'_>) -> u32 {
    let mut s = 0u32;
    let mut all_effective = !q.top.is_empty();
    for &(points, w) in &q.top {
        let p = u32::from(points.get(e).copied().unwrap_or(0));
        s += w * p;
        all_effective &= p >= EFFECTIVE_POINTS;
    }
    if all_effective {
        s += TOP_LEVEL_BONUS;
    }
    s
}

/// Score from the client's preferred approaches and characteristics for entry `e`.
#[inline]
fn bit_preference_score(e: usize, q: &PreparedRequest<'_>) -> u32 {
    let mut s = 0u32;
    for a in &q.approaches {
        s += APPROACH_POINTS * u32::from(has_bit(a, e));
    }
    for ch in &q.characteristics {
        s += CHARACTERISTIC_POINTS * u32::from(has_bit(ch, e));
    }
    s
}

/// Score from the overlap with the client's preferred times for entry `e` (whole
/// hours, at most `MAX_HOUR_POINTS`).
#[inline]
fn hour_score(e: usize, q: &PreparedRequest<'_>) -> u32 {
    let Some(want) = &q.hours else {
        return 0;
    };
    let mut overlap = 0;
    for plane in want {
        overlap += u32::from(has_bit(plane, e));
        if overlap == MAX_HOUR_POINTS {
            break;
        }
    }
    overlap
}

/// Urgent referrals and clients at moderate or higher risk go only to clinicians who
/// accept risk.
pub fn needs_risk_routing(req: &ClientRequest) -> bool {
    req.urgent || req.risk >= RiskLevel::Moderate
}

impl Candidate {
    /// Whether a clinician with `score` at `index` ranks above this one: a higher
    /// score, or an equal score and an earlier profile.
    #[inline]
    fn beaten_by(&self, score: u32, index: usize) -> bool {
        score > self.score || (score == self.score && index < self.index)
    }
}

/// Inserts into a best-first buffer of at most `k` (best score first, then the
/// earlier profile). Candidates may arrive in any order.
#[inline]
fn push_top(out: &mut Vec<Candidate>, k: usize, c: Candidate) {
    if out.len() == k {
        match out.last() {
            Some(last) if last.beaten_by(c.score, c.index) => {
                out.pop();
            }
            _ => return,
        }
    }
    let pos = out.partition_point(|x| !x.beaten_by(c.score, c.index));
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

    #[test]
    fn top_buffer_order_does_not_depend_on_arrival() {
        // The same candidates in reverse index order give the same buffer: equal
        // scores still go to the earlier profile.
        let mut out = Vec::new();
        for (index, score) in [(5, 9), (4, 7), (3, 9), (2, 5), (1, 9), (0, 5)] {
            push_top(&mut out, 3, Candidate { index, score });
        }
        let got: Vec<_> = out.iter().map(|c| (c.index, c.score)).collect();
        assert_eq!(got, vec![(1, 9), (3, 9), (5, 9)]);
    }
}
