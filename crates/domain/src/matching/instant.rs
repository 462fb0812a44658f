//! Instant match: one client, right after intake, against every clinician.
//!
//! A [`MatchIndex`] is built once from the clinicians' profiles. For each jurisdiction
//! it keeps the clinicians licensed there, in profile order, as bit planes (one bit per
//! clinician, 64 per word): one per format, population, language, approach, consented
//! characteristic and UTC hour of the week, risk acceptance, a free place, and three
//! per problem domain (specialty and a two-bit rating); plus the licences' last valid
//! days in order. A match reads only the client's jurisdiction (about 4 % of
//! clinicians), 64 at a time: it ANDs the filter planes, counting what each filter
//! left (the funnel, for "what could not be met"), sums every eligible clinician's
//! score bit-sliced with a carry-save network, clears expired licences, and finds the
//! best `k` with a radix selection over the score slices. Taking a place flips the
//! clinician's "free place" bit in each of their lists.
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
    #[error("{field}: at most {MAX_PREFERENCES} entries (got {count})")]
    TooManyPreferences { field: &'static str, count: usize },
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
/// free place, and per problem domain [`DOMAIN_PLANES`] adjacent planes: specialty,
/// and the rating in two bits (neutral 01, effective 10, ineffective 11, too few
/// cases 00). Three planes hold all eight states, so a match reads three planes per
/// elevated domain (not four outcome-point slices plus an "ineffective" plane): less
/// memory to bring in for a jurisdiction that is not in cache.
const FORMAT_PLANE: usize = 0;
const POPULATION_PLANE: usize = FORMAT_PLANE + Format::ALL.len();
const RISK_PLANE: usize = POPULATION_PLANE + Population::ALL.len();
const PLACE_PLANE: usize = RISK_PLANE + 1;
const DOMAIN_PLANE: usize = PLACE_PLANE + 1;
const DOMAIN_PLANES: usize = 3;
const FIXED_PLANES: usize = DOMAIN_PLANE + DOMAIN_PLANES * ProblemDomain::COUNT;
/// Bits of a domain's unweighted outcome points (at most 4 + 6 = 10).
const POINT_BITS: usize = 4;
/// "Rated effective" is bit 1 of the outcome points: set in 6 and 4 + 6, clear in
/// 0, 1, 4 and 4 + 1.
const EFFECTIVE_POINT_BIT: usize = 1;
// [`ElevatedPlanes::points`] decodes the points from specialty and rating with
// these values (0, 1, 4, 5, 6, 10).
const _: () = assert!(SPECIALTY_POINTS == 4 && EFFECTIVE_POINTS == 6 && NEUTRAL_POINTS == 1);
const HOURS_PER_WEEK: usize = 168;

/// The clinicians licensed in one jurisdiction, in profile order (one entry per
/// clinician; with two licences there, the later expiry), as a struct of arrays: every
/// hard filter is a bit plane, so a match ANDs a few words per 64 clinicians and
/// touches per-clinician data only for the eligible ones.
#[derive(Debug, Clone, Default)]
struct JurisdictionList {
    /// Entry → clinician index.
    clinician: Vec<u32>,
    /// (last valid day of the licence in days from CE, entry), ordered by day: the
    /// expired ones on a date are a prefix. Day and entry side by side, so the scan
    /// reads one array.
    expiry: Vec<(i32, u32)>,
    fixed: Planes,
    /// One plane per language id of the index.
    languages: Planes,
    /// One plane per approach id.
    approaches: Planes,
    /// One plane per consented characteristic id.
    characteristics: Planes,
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
    /// The elevated domains the match used and where each came from (filled in
    /// by the caller that knows: the intake team's request, or the intake).
    #[serde(default)]
    pub elevated: Vec<super::elevation::ElevatedDomain>,
}

/// The planes of one of the client's most elevated domains (its rank gives the
/// weight, see [`RANK_WEIGHTS`]).
#[derive(Debug, Clone, Copy, Default)]
struct ElevatedPlanes<'a> {
    specialty: &'a [u64],
    /// Rating bit 0: neutral or ineffective.
    rating_lo: &'a [u64],
    /// Rating bit 1: effective or ineffective.
    rating_hi: &'a [u64],
}

impl ElevatedPlanes<'_> {
    /// Word `w`'s "rated ineffective".
    #[inline(always)]
    fn ineffective(&self, w: usize) -> u64 {
        word(self.rating_lo, w) & word(self.rating_hi, w)
    }

    /// Word `w`'s unweighted outcome points as [`POINT_BITS`] bit slices:
    /// specialty `s` (4), effective `e` (6), neutral `n` (1) give
    /// 0, 1, 4, 5, 6 or 10: bit 0 = n, bit 1 = e, bit 2 = s xor e, bit 3 = s and e.
    #[inline(always)]
    fn points(&self, w: usize) -> [u64; POINT_BITS] {
        let (s, lo, hi) = (
            word(self.specialty, w),
            word(self.rating_lo, w),
            word(self.rating_hi, w),
        );
        let (n, e) = (lo & !hi, hi & !lo);
        [n, e, s ^ e, s & e]
    }
}

/// Most entries in each preference list of a request (approaches, characteristics):
/// keeps every score within [`SCORE_BITS`] bits.
pub const MAX_PREFERENCES: usize = 64;
/// Bit slices of a score: the largest possible score, 70 for the outcomes, 10 for
/// the times and 9 per listed preference, is below 2^10.
const SCORE_BITS: usize = 10;

/// A request resolved against an index: the planes to AND, weights to add. Built
/// with one allocation.
#[derive(Debug, Clone)]
pub struct PreparedRequest<'a> {
    date_days: i32,
    list: &'a JurisdictionList,
    format: &'a [u64],
    population: &'a [u64],
    /// Present when the client must go to a clinician accepting risk.
    risk: Option<&'a [u64]>,
    place: &'a [u64],
    /// The (up to three) most elevated domains, most elevated first.
    top: [ElevatedPlanes<'a>; ELEVATED_DOMAINS_CONSIDERED],
    top_len: usize,
    /// Every other plane the request reads, in this order: the client's languages
    /// (one in common is enough), preferred approaches, preferred characteristics,
    /// and the client's preferred UTC hours. Unknown keys read as all zeros.
    planes: Vec<&'a [u64]>,
    languages_end: usize,
    approaches_end: usize,
    characteristics_end: usize,
    /// The client gave preferred times (the hour planes may still be empty).
    has_times: bool,
    /// How many score bit slices this request needs.
    score_bits: usize,
}

impl<'a> PreparedRequest<'a> {
    /// How many elevated domains the score looks at (at most three).
    pub fn top_len(&self) -> usize {
        self.top_len
    }

    fn group(&self, from: usize, to: usize) -> &[&'a [u64]] {
        self.planes.get(from..to).unwrap_or(&[])
    }
    fn languages(&self) -> &[&'a [u64]] {
        self.group(0, self.languages_end)
    }
    fn approaches(&self) -> &[&'a [u64]] {
        self.group(self.languages_end, self.approaches_end)
    }
    fn characteristics(&self) -> &[&'a [u64]] {
        self.group(self.approaches_end, self.characteristics_end)
    }
    fn hours(&self) -> &[&'a [u64]] {
        self.group(self.characteristics_end, self.planes.len())
    }
    fn elevated(&self) -> &[ElevatedPlanes<'a>] {
        self.top.get(..self.top_len).unwrap_or(&[])
    }
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
                let (Some(p), Some(&[spec, eff, neu, inef])) =
                    (profiles.get(ci), outcome_masks.get(ci))
                else {
                    continue;
                };
                if let Some(c) = copies.get_mut(ci) {
                    c.push((j as u16, e as u32));
                }
                list.clinician.push(i);
                list.expiry.push((last_day, e as u32));
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
                    let bit = d.bit();
                    let first = DOMAIN_PLANE + d.index() * DOMAIN_PLANES;
                    list.fixed.set(first, e, spec & bit != 0);
                    list.fixed.set(first + 1, e, (neu | inef) & bit != 0);
                    list.fixed.set(first + 2, e, (eff | inef) & bit != 0);
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
            list.expiry.sort_unstable();
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
            expiry: Vec::new(),
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
        for (index, code) in req.languages.iter().enumerate() {
            if !is_language_code(code) {
                return Err(InstantMatchError::InvalidLanguage {
                    index,
                    code: code.clone(),
                });
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
            if values.len() > MAX_PREFERENCES {
                return Err(InstantMatchError::TooManyPreferences {
                    field,
                    count: values.len(),
                });
            }
            for (i, v) in values.iter().enumerate() {
                if !is_slug(v) {
                    return Err(InstantMatchError::InvalidPreference {
                        field: format!("{field}[{i}]"),
                        value: v.clone(),
                    });
                }
            }
        }
        let want_hours = match &req.preferences.times {
            Some(times) => {
                times
                    .validate("preferences.times")
                    .map_err(InstantMatchError::InvalidTimes)?;
                Some(times.utc_hours())
            }
            None => None,
        };
        let prefs = &req.preferences;
        let hour_count: usize = want_hours.map_or(0, |h| {
            h.iter().map(|w| w.count_ones() as usize).sum::<usize>()
        });
        let mut planes = Vec::with_capacity(
            req.languages.len() + prefs.approaches.len() + prefs.characteristics.len() + hour_count,
        );
        let lookup = |ids: &HashMap<String, usize>, planes: &'a Planes, key: &String| {
            ids.get(key).map_or(&[][..], |&id| planes.plane(id))
        };
        for code in &req.languages {
            planes.push(lookup(&self.language_ids, &list.languages, code));
        }
        let languages_end = planes.len();
        for a in &prefs.approaches {
            planes.push(lookup(&self.approach_ids, &list.approaches, a));
        }
        let approaches_end = planes.len();
        for c in &prefs.characteristics {
            planes.push(lookup(&self.characteristic_ids, &list.characteristics, c));
        }
        let characteristics_end = planes.len();
        for (wi, &bits) in want_hours.unwrap_or_default().iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                planes.push(list.hours.plane(wi * 64 + bits.trailing_zeros() as usize));
                bits &= bits - 1;
            }
        }
        let mut top = [ElevatedPlanes::default(); ELEVATED_DOMAINS_CONSIDERED];
        let mut top_len = 0;
        for (slot, d) in top.iter_mut().zip(&req.elevated_domains) {
            let first = DOMAIN_PLANE + d.index() * DOMAIN_PLANES;
            *slot = ElevatedPlanes {
                specialty: list.fixed.plane(first),
                rating_lo: list.fixed.plane(first + 1),
                rating_hi: list.fixed.plane(first + 2),
            };
            top_len += 1;
        }
        let max_score = RANK_WEIGHTS.iter().take(top_len).sum::<u32>()
            * (SPECIALTY_POINTS + EFFECTIVE_POINTS)
            + if top_len > 0 { TOP_LEVEL_BONUS } else { 0 }
            + APPROACH_POINTS * prefs.approaches.len() as u32
            + CHARACTERISTIC_POINTS * prefs.characteristics.len() as u32
            + if want_hours.is_some() {
                MAX_HOUR_POINTS
            } else {
                0
            };
        Ok(PreparedRequest {
            date_days: date_days(req.date),
            list,
            format: list.fixed.plane(FORMAT_PLANE + req.format.index()),
            population: list.fixed.plane(POPULATION_PLANE + req.population.index()),
            risk: needs_risk_routing(req).then(|| list.fixed.plane(RISK_PLANE)),
            place: list.fixed.plane(PLACE_PLANE),
            top,
            top_len,
            planes,
            languages_end,
            approaches_end,
            characteristics_end,
            has_times: want_hours.is_some(),
            score_bits: ((u32::BITS - max_score.leading_zeros()) as usize).min(SCORE_BITS),
        })
    }

    /// Applies the hard filters and keeps the best `k` clinicians in `out` (cleared
    /// first), best first; ties go to the lower index. Returns the filter funnel.
    ///
    /// Everything works on 64 clinicians at a time: pass 1 ANDs the filter planes
    /// (counting what each filter leaves) and adds the weighted score planes into a
    /// bit-sliced score per clinician; licences expired on the match date are then
    /// cleared; a radix selection over the score slices finds the `k`-th best score,
    /// and only the `k` chosen clinicians are ever looked at one by one.
    pub fn rank(&self, q: &PreparedRequest<'_>, k: usize, out: &mut Vec<Candidate>) -> Funnel {
        out.clear();
        let list = q.list;
        let (mut language_n, mut format_n, mut population_n, mut capacity_n) = (0u32, 0, 0, 0);
        let (mut risk_n, mut outcomes_n) = (0u32, 0);
        let words = list.fixed.words;
        let bits = q.score_bits;
        let scorer: fn(&ScorePlanes<'_>, usize, &mut [u64; SCORE_BITS]) = match bits {
            0..=6 => score_word::<6>,
            7 => score_word::<7>,
            8 => score_word::<8>,
            9 => score_word::<9>,
            _ => score_word::<SCORE_BITS>,
        };
        let planes = ScorePlanes::of(q);
        let mut block = vec![ScoreWord::default(); words];
        for (w, slot) in block.iter_mut().enumerate() {
            let language = q.languages().iter().fold(0, |m, l| m | word(l, w));
            let format = language & word(q.format, w);
            let population = format & word(q.population, w);
            let capacity = population & word(q.place, w);
            let risk = q.risk.map_or(capacity, |r| capacity & word(r, w));
            let ineffective = q.elevated().iter().fold(0, |m, d| m | d.ineffective(w));
            let outcomes = risk & !ineffective;
            language_n += language.count_ones();
            format_n += format.count_ones();
            population_n += population.count_ones();
            capacity_n += capacity.count_ones();
            risk_n += risk.count_ones();
            outcomes_n += outcomes.count_ones();
            slot.eligible = outcomes;
            if outcomes != 0 {
                scorer(&planes, w, &mut slot.score);
            }
        }
        // Licences expired on the match date are a prefix of the expiry order.
        let mut expired_n = 0u32;
        // A forward scan (the expired are few, and the days sequential in memory)
        // instead of a binary search's scattered reads.
        for &(_, e) in list.expiry.iter().take_while(|&&(d, _)| d < q.date_days) {
            let e = e as usize;
            if let Some(slot) = block.get_mut(e / 64) {
                let bit = 1u64 << (e % 64);
                expired_n += u32::from(slot.eligible & bit != 0);
                slot.eligible &= !bit;
            }
        }
        let eligible_n = outcomes_n - expired_n;
        select_top(&mut block, bits, k, eligible_n, out);
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
            licence_current: eligible_n,
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
            elevated: Vec::new(),
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

/// 64 clinicians of a list during a match: who is eligible, and each one's score as
/// bit slices (`score[b]` holds bit `b` of every clinician's score).
#[derive(Debug, Clone, Copy, Default)]
struct ScoreWord {
    eligible: u64,
    chosen: u64,
    score: [u64; SCORE_BITS],
}

/// Adds the bit-sliced number `x`, times 2^`shift`, to the bit-sliced `acc` (its
/// low `B` slices): a ripple-carry adder over 64 clinicians at once, branch-free
/// (with constant `shift` it unrolls completely).
#[inline(always)]
fn add_shifted<const N: usize, const B: usize>(
    acc: &mut [u64; SCORE_BITS],
    x: &[u64; N],
    shift: usize,
) {
    let mut carry = 0u64;
    // Plain counted loops over constants: the compiler unrolls them and drops the
    // bounds checks (iterator adaptors here kept a loop with state on the stack).
    for i in shift..B {
        let b = match x.get(i - shift) {
            Some(&b) => b,
            None => 0,
        };
        if let Some(slot) = acc.get_mut(i) {
            let a = *slot;
            let sum = a ^ b;
            *slot = sum ^ carry;
            carry = (a & b) | (carry & sum);
        }
    }
}

/// Adds `weight` to the bit-sliced number of every clinician set in `x` (tests).
#[cfg(test)]
fn add_weighted(acc: &mut [u64; SCORE_BITS], x: u64, weight: u32) {
    let mut weight = weight;
    while weight != 0 {
        let shift = weight.trailing_zeros() as usize;
        add_shifted::<1, SCORE_BITS>(acc, &[x], shift);
        weight &= weight - 1;
    }
}

// The scorer adds the constant weights as fixed shifts.
const _: () = assert!(
    RANK_WEIGHTS[0] == 0b11
        && RANK_WEIGHTS[1] == 0b10
        && RANK_WEIGHTS[2] == 0b01
        && TOP_LEVEL_BONUS == 0b1010
        && APPROACH_POINTS == 0b101
        && CHARACTERISTIC_POINTS == 0b100
        && MAX_HOUR_POINTS == 0b1010
);

/// Full adder over 64 clinicians at once: the sum bit and the carry bit of `a + b + c`.
#[inline(always)]
fn full_add(a: u64, b: u64, c: u64) -> (u64, u64) {
    let ab = a ^ b;
    (ab ^ c, (a & b) | (c & ab))
}

/// Half adder over 64 clinicians at once: the sum bit and the carry bit of `a + b`.
#[inline(always)]
fn half_add(a: u64, b: u64) -> (u64, u64) {
    (a ^ b, a & b)
}

/// Adds one, for every clinician set in `x`, to the `B`-bit bit-sliced counter
/// `count` from its slice `from` up (a half-adder ripple).
#[inline(always)]
fn count_at<const B: usize>(count: &mut [u64; 8], x: u64, from: usize) {
    let mut carry = x;
    for i in from..B {
        if let Some(c) = count.get_mut(i) {
            let next = *c & carry;
            *c ^= carry;
            carry = next;
        }
    }
}

/// Counts, per clinician, the planes of `planes` set at word `w` into a `B`-bit
/// bit-sliced counter. Planes are taken two at a time: one full adder folds them
/// into the ones slice, and only its carry ripples upwards (about half the work of
/// adding them one by one).
#[inline(always)]
fn count_planes<const B: usize>(planes: &[&[u64]], w: usize) -> [u64; 8] {
    let mut count = [0u64; 8];
    let mut pairs = planes.chunks_exact(2);
    for pair in &mut pairs {
        if let [x, y] = pair {
            let (ones, carry) = full_add(count[0], word(x, w), word(y, w));
            count[0] = ones;
            count_at::<B>(&mut count, carry, 1);
        }
    }
    for x in pairs.remainder() {
        count_at::<B>(&mut count, word(x, w), 0);
    }
    count
}

/// The score of 64 clinicians as a carry-save network, bit-sliced (at most
/// 3·10 + 2·10 + 10 + 10 + 5 + 4 + 15 = 94: seven slices):
/// 3·`a` + 2·`b` + `d` + 10·`e` + 5·`x5` + 4·`x4` + `h`, where `a`, `b`, `d` are the
/// outcome points on the domains ranked 1, 2, 3, `e` marks the top-level bonus,
/// `x5` the first preferred approach, `x4` the first shared characteristic and `h`
/// the (capped) preferred-hour points. The addends' bits are summed column by
/// column with full adders (each removes one bit, five operations), so no carry
/// ripples through the whole width once per addend. The sequence of adders was
/// laid out by hand from the column lists in the comments.
#[inline(always)]
fn score_network(
    a: [u64; POINT_BITS],
    b: [u64; POINT_BITS],
    d: [u64; POINT_BITS],
    e: u64,
    x5: u64,
    x4: u64,
    h: [u64; 4],
) -> [u64; 7] {
    let [a0, a1, a2, a3] = a;
    let [b0, b1, b2, b3] = b;
    let [d0, d1, d2, d3] = d;
    let [h0, h1, h2, h3] = h;
    // Column 0: a0, d0, x5, h0.
    let (s1, k1) = full_add(a0, d0, x5);
    let (r0, k2) = half_add(h0, s1);
    // Column 1: a1, a0, b0, d1, e, h1, k1, k2.
    let (s3, k3) = full_add(a1, a0, b0);
    let (s4, k4) = full_add(d1, e, h1);
    let (s5, k5) = full_add(k1, k2, s3);
    let (r1, k6) = half_add(s4, s5);
    // Column 2: a2, a1, b1, d2, x5, x4, h2, k3, k4, k5, k6.
    let (s7, k7) = full_add(a2, a1, b1);
    let (s8, k8) = full_add(d2, x5, x4);
    let (s9, k9) = full_add(h2, k3, k4);
    let (s10, k10) = full_add(k5, k6, s7);
    let (s11, k11) = full_add(s8, s9, s10);
    // Column 3: a3, a2, b2, d3, e, h3, k7, k8, k9, k10, k11.
    let (s12, k12) = full_add(a3, a2, b2);
    let (s13, k13) = full_add(d3, e, h3);
    let (s14, k14) = full_add(k7, k8, k9);
    let (s15, k15) = full_add(k10, k11, s12);
    let (s16, k16) = full_add(s13, s14, s15);
    // Column 4: a3, b3, k12, k13, k14, k15, k16.
    let (s17, k17) = full_add(a3, b3, k12);
    let (s18, k18) = full_add(k13, k14, k15);
    let (s19, k19) = full_add(k16, s17, s18);
    // Column 5: k17, k18, k19.
    let (s20, k20) = full_add(k17, k18, k19);
    // Column 6: k20.
    [r0, r1, s11, s16, s19, s20, k20]
}

/// What the scorer reads, resolved once per match: the three elevated domains'
/// point planes (empty planes read as zeros when fewer are given), and the masks
/// that make the "effective on all of them" bonus ignore the missing ones.
struct ScorePlanes<'p> {
    top: [ElevatedPlanes<'p>; ELEVATED_DOMAINS_CONSIDERED],
    /// All ones for a domain that is not given (it does not block the bonus).
    absent: [u64; ELEVATED_DOMAINS_CONSIDERED],
    /// All ones when at least one domain is given (no domains, no bonus).
    any: u64,
    approaches: &'p [&'p [u64]],
    characteristics: &'p [&'p [u64]],
    hours: Option<&'p [&'p [u64]]>,
}

impl<'p> ScorePlanes<'p> {
    fn of(q: &'p PreparedRequest<'p>) -> Self {
        ScorePlanes {
            top: q.top,
            absent: std::array::from_fn(|i| if i < q.top_len { 0 } else { !0 }),
            any: if q.top_len > 0 { !0 } else { 0 },
            approaches: q.approaches(),
            characteristics: q.characteristics(),
            hours: q.has_times.then(|| q.hours()),
        }
    }
}

/// The score of word `w`'s 64 clinicians, bit-sliced into `score` (zero on entry,
/// `B` bits): for the elevated domains ranked 1, 2, 3 (weights 3, 2, 1) the outcome
/// points (specialty 4, effective 6, neutral 1); effective on all of them +10; each
/// preferred approach +5; each shared characteristic +4; one per overlapping
/// preferred hour, at most 10.
fn score_word<const B: usize>(p: &ScorePlanes<'_>, w: usize, score: &mut [u64; SCORE_BITS]) {
    let [t0, t1, t2] = &p.top;
    let (p0, p1, p2) = (t0.points(w), t1.points(w), t2.points(w));
    let [a0, a1, a2] = p.absent;
    let all_effective = p.any
        & (p0[EFFECTIVE_POINT_BIT] | a0)
        & (p1[EFFECTIVE_POINT_BIT] | a1)
        & (p2[EFFECTIVE_POINT_BIT] | a2);
    // The first approach and characteristic and the hours go into the network;
    // further approaches and characteristics (rare) are added after it.
    let first = |planes: &[&[u64]]| planes.first().map_or(0, |p| word(p, w));
    let hours = match p.hours {
        Some(hour_planes) => {
            // Count the overlapping hours (at most 168: 8 bits), then cap at 10.
            let count = if hour_planes.len() < 16 {
                count_planes::<4>(hour_planes, w)
            } else {
                count_planes::<8>(hour_planes, w)
            };
            // count ≥ 10 = 0b1010: any bit above 3, or bit 3 with bit 1 or bit 2.
            let [c0, c1, c2, c3, c4, c5, c6, c7] = count;
            let capped = c4 | c5 | c6 | c7 | (c3 & (c1 | c2));
            [
                c0 & !capped,
                (c1 & !capped) | capped,
                c2 & !capped,
                (c3 & !capped) | capped,
            ]
        }
        None => [0; 4],
    };
    let sum = score_network(
        p0,
        p1,
        p2,
        all_effective,
        first(p.approaches),
        first(p.characteristics),
        hours,
    );
    // `score` is zero on entry: the network fills its first seven slices.
    for (slot, bits) in score.iter_mut().zip(sum) {
        *slot = bits;
    }
    for a in p.approaches.iter().skip(1) {
        let x = [word(a, w)];
        add_shifted::<1, B>(score, &x, 0);
        add_shifted::<1, B>(score, &x, 2);
    }
    for c in p.characteristics.iter().skip(1) {
        add_shifted::<1, B>(score, &[word(c, w)], 2);
    }
}

/// Keeps in `out` the best `k` eligible entries of `block` (score descending, then
/// entry ascending): a radix selection from the top score bit finds the `k`-th best
/// score `t`; the entries above `t` are all in, and the earliest of those at `t`
/// fill the rest. `out` receives entry positions and their scores. Uses the
/// `eligible` and `chosen` words of `block` as scratch.
fn select_top(
    block: &mut [ScoreWord],
    bits: usize,
    k: usize,
    eligible_n: u32,
    out: &mut Vec<Candidate>,
) {
    // `eligible` comes to mean "tied with the k-th best on the bits decided so far";
    // `chosen`: known to be strictly better than the k-th best (fewer than k).
    // Each pass applies the previous bit's decision and counts the next bit.
    let mut take_tied = k;
    let mut pending: Option<(usize, Decision)> = None;
    if eligible_n as usize > k {
        let mut above = 0usize;
        let mut tied_n = eligible_n as usize;
        for b in (0..bits).rev() {
            if above + tied_n == k {
                // Exactly k left: every tied entry is in, whatever its lower bits.
                break;
            }
            let mut ones = 0usize;
            for s in block.iter_mut() {
                if let Some((pb, decision)) = pending {
                    s.decide(pb, decision);
                }
                ones += (s.eligible & slice(s, b)).count_ones() as usize;
            }
            pending = if above + ones >= k {
                tied_n = ones;
                Some((b, Decision::KthHasBit))
            } else if ones > 0 {
                above += ones;
                tied_n -= ones;
                Some((b, Decision::KthLacksBit))
            } else {
                None
            };
        }
        take_tied = k - above;
    }
    for (w, s) in block.iter_mut().enumerate() {
        if let Some((pb, decision)) = pending {
            s.decide(pb, decision);
        }
        // The earliest `take_tied` tied entries are in.
        let mut rest = s.eligible;
        while rest != 0 && take_tied > 0 {
            rest &= rest - 1;
            take_tied -= 1;
        }
        let mut lanes = s.chosen | (s.eligible & !rest);
        while lanes != 0 {
            let lane = lanes.trailing_zeros();
            lanes &= lanes - 1;
            let score = s
                .score
                .iter()
                .enumerate()
                .fold(0u32, |acc, (b, sl)| acc | (((sl >> lane) & 1) as u32) << b);
            out.push(Candidate {
                index: w * 64 + lane as usize,
                score,
            });
        }
    }
    out.sort_unstable_by(|a, b| b.score.cmp(&a.score).then(a.index.cmp(&b.index)));
}

/// What one bit of the k-th best score turned out to be.
#[derive(Debug, Clone, Copy)]
enum Decision {
    /// Set: the tied entries without the bit are out.
    KthHasBit,
    /// Clear: the tied entries with the bit are in.
    KthLacksBit,
}

impl ScoreWord {
    #[inline]
    fn decide(&mut self, b: usize, decision: Decision) {
        let with = self.eligible & slice(self, b);
        match decision {
            Decision::KthHasBit => self.eligible = with,
            Decision::KthLacksBit => {
                self.chosen |= with;
                self.eligible &= !with;
            }
        }
    }
}

#[inline]
fn slice(s: &ScoreWord, b: usize) -> u64 {
    s.score.get(b).copied().unwrap_or(0)
}

/// Urgent referrals and clients at moderate or higher risk go only to clinicians who
/// accept risk.
pub fn needs_risk_routing(req: &ClientRequest) -> bool {
    req.urgent || req.risk >= RiskLevel::Moderate
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// Builds a block from plain (eligible, score) entries.
    fn block_of(entries: &[(bool, u32)]) -> Vec<ScoreWord> {
        let mut block = vec![ScoreWord::default(); entries.len().div_ceil(64)];
        for (e, &(eligible, score)) in entries.iter().enumerate() {
            let s = &mut block[e / 64];
            s.eligible |= u64::from(eligible) << (e % 64);
            add_weighted(&mut s.score, 1 << (e % 64), score);
        }
        block
    }

    fn lane_score(block: &[ScoreWord], e: usize) -> u32 {
        (0..SCORE_BITS)
            .map(|b| ((block[e / 64].score[b] >> (e % 64) & 1) as u32) << b)
            .sum()
    }

    #[test]
    fn bit_sliced_sums_add_up_per_clinician() {
        // Three clinicians in one word: weights added only where their bit is set.
        let mut score = [0u64; SCORE_BITS];
        add_weighted(&mut score, 0b011, 12);
        add_weighted(&mut score, 0b110, 18);
        add_weighted(&mut score, 0b111, 3);
        add_weighted(&mut score, 0, 500); // nobody: nothing changes
        let block = [ScoreWord {
            eligible: 0b111,
            chosen: 0,
            score,
        }];
        assert_eq!(lane_score(&block, 0), 15);
        assert_eq!(lane_score(&block, 1), 33);
        assert_eq!(lane_score(&block, 2), 21);
        assert_eq!(lane_score(&block, 3), 0);
    }

    #[test]
    fn selection_breaks_ties_by_earlier_entry_and_skips_ineligible() {
        // Entry 1 is the best but not eligible; 0, 2, 3 tie; 4 is better.
        let mut block = block_of(&[(true, 7), (false, 99), (true, 7), (true, 7), (true, 9)]);
        let mut out = Vec::new();
        select_top(&mut block, SCORE_BITS, 3, 4, &mut out);
        let got: Vec<_> = out.iter().map(|c| (c.index, c.score)).collect();
        assert_eq!(got, vec![(4, 9), (0, 7), (2, 7)]);
    }

    #[test]
    fn selection_of_an_empty_or_small_list_returns_what_there_is() {
        let mut out = Vec::new();
        select_top(&mut [], SCORE_BITS, 5, 0, &mut out);
        assert!(out.is_empty());
        let mut block = block_of(&[(true, 0), (false, 3)]);
        select_top(&mut block, SCORE_BITS, 5, 1, &mut out);
        assert_eq!(out, vec![Candidate { index: 0, score: 0 }]);
    }

    /// Reads clinician `lane`'s number from bit slices.
    fn lane_value(slices: &[u64], lane: u32) -> u32 {
        slices
            .iter()
            .enumerate()
            .map(|(b, s)| ((s >> lane & 1) as u32) << b)
            .sum()
    }

    proptest! {
        /// The carry-save network equals 3·a + 2·b + d + 10·e + 5·x5 + 4·x4 + h
        /// per clinician, for every combination of 4-bit inputs (up to 94).
        #[test]
        fn score_network_equals_plain_arithmetic(
            a in any::<[u64; POINT_BITS]>(),
            b in any::<[u64; POINT_BITS]>(),
            d in any::<[u64; POINT_BITS]>(),
            e in any::<u64>(),
            x5 in any::<u64>(),
            x4 in any::<u64>(),
            h in any::<[u64; 4]>(),
        ) {
            let sum = score_network(a, b, d, e, x5, x4, h);
            for lane in 0..64 {
                let bit = |x: u64| (x >> lane & 1) as u32;
                let want = 3 * lane_value(&a, lane)
                    + 2 * lane_value(&b, lane)
                    + lane_value(&d, lane)
                    + 10 * bit(e)
                    + 5 * bit(x5)
                    + 4 * bit(x4)
                    + lane_value(&h, lane);
                prop_assert_eq!(lane_value(&sum, lane), want);
            }
        }

        /// Counting planes two at a time equals counting each clinician's set bits,
        /// for no planes, an odd number, and more than 15 (the 8-bit counter).
        #[test]
        fn plane_counts_equal_plain_counts(
            planes in proptest::collection::vec(any::<u64>(), 0..40),
        ) {
            let refs: Vec<&[u64]> = planes.iter().map(std::slice::from_ref).collect();
            let count = count_planes::<8>(&refs, 0);
            for lane in 0..64 {
                let want = planes.iter().filter(|p| *p >> lane & 1 == 1).count() as u32;
                prop_assert_eq!(lane_value(&count, lane), want);
            }
            if planes.len() < 16 {
                prop_assert_eq!(count_planes::<4>(&refs, 0), count);
            }
        }
    }

    proptest! {
        /// The radix selection equals sorting every eligible entry (score
        /// descending, entry ascending) and keeping the first k, across word
        /// boundaries, with many ties and scores up to the largest possible.
        #[test]
        fn selection_equals_a_full_sort(
            entries in proptest::collection::vec((any::<bool>(), prop_oneof![0u32..8, 0u32..1024]), 0..300),
            k in 1usize..60,
        ) {
            let mut block = block_of(&entries);
            for (e, &(_, score)) in entries.iter().enumerate() {
                prop_assert_eq!(lane_score(&block, e), score);
            }
            let eligible_n = entries.iter().filter(|x| x.0).count() as u32;
            let mut out = Vec::new();
            select_top(&mut block, SCORE_BITS, k, eligible_n, &mut out);
            let mut want: Vec<(usize, u32)> = entries
                .iter()
                .enumerate()
                .filter(|(_, x)| x.0)
                .map(|(e, x)| (e, x.1))
                .collect();
            want.sort_by_key(|&(e, s)| (std::cmp::Reverse(s), e));
            want.truncate(k);
            let got: Vec<(usize, u32)> = out.iter().map(|c| (c.index, c.score)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
