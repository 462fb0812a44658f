//! A clinician's matching profile: what they offer, when, to whom, how many new
//! clients they can take, and their measured outcomes per problem domain.
//!
//! Profiles arrive as plain data (serde) and are checked with
//! [`ClinicianProfile::validate`]; every error names the field and the problem.

use crate::ids::ClinicianId;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Completed episodes needed before a clinician is rated on a problem domain
/// (Match-POP rated therapists only on ≥ 15 historical cases).
pub const MIN_EPISODES_FOR_RATING: u32 = 15;

/// z for a two-sided 95 % interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// Codes and display names of the jurisdictions a licence can be held in
/// (ISO 3166-2 style: the 50 US states and DC, Canadian provinces and territories,
/// the UK nations, Ireland). The position in this list is the jurisdiction's index.
pub const JURISDICTIONS: &[(&str, &str)] = &[
    ("US-AL", "Alabama"),
    ("US-AK", "Alaska"),
    ("US-AZ", "Arizona"),
    ("US-AR", "Arkansas"),
    ("US-CA", "California"),
    ("US-CO", "Colorado"),
    ("US-CT", "Connecticut"),
    ("US-DE", "Delaware"),
    ("US-DC", "District of Columbia"),
    ("US-FL", "Florida"),
    ("US-GA", "Georgia"),
    ("US-HI", "Hawaii"),
    ("US-ID", "Idaho"),
    ("US-IL", "Illinois"),
    ("US-IN", "Indiana"),
    ("US-IA", "Iowa"),
    ("US-KS", "Kansas"),
    ("US-KY", "Kentucky"),
    ("US-LA", "Louisiana"),
    ("US-ME", "Maine"),
    ("US-MD", "Maryland"),
    ("US-MA", "Massachusetts"),
    ("US-MI", "Michigan"),
    ("US-MN", "Minnesota"),
    ("US-MS", "Mississippi"),
    ("US-MO", "Missouri"),
    ("US-MT", "Montana"),
    ("US-NE", "Nebraska"),
    ("US-NV", "Nevada"),
    ("US-NH", "New Hampshire"),
    ("US-NJ", "New Jersey"),
    ("US-NM", "New Mexico"),
    ("US-NY", "New York"),
    ("US-NC", "North Carolina"),
    ("US-ND", "North Dakota"),
    ("US-OH", "Ohio"),
    ("US-OK", "Oklahoma"),
    ("US-OR", "Oregon"),
    ("US-PA", "Pennsylvania"),
    ("US-RI", "Rhode Island"),
    ("US-SC", "South Carolina"),
    ("US-SD", "South Dakota"),
    ("US-TN", "Tennessee"),
    ("US-TX", "Texas"),
    ("US-UT", "Utah"),
    ("US-VT", "Vermont"),
    ("US-VA", "Virginia"),
    ("US-WA", "Washington"),
    ("US-WV", "West Virginia"),
    ("US-WI", "Wisconsin"),
    ("US-WY", "Wyoming"),
    ("CA-AB", "Alberta"),
    ("CA-BC", "British Columbia"),
    ("CA-MB", "Manitoba"),
    ("CA-NB", "New Brunswick"),
    ("CA-NL", "Newfoundland and Labrador"),
    ("CA-NS", "Nova Scotia"),
    ("CA-NT", "Northwest Territories"),
    ("CA-NU", "Nunavut"),
    ("CA-ON", "Ontario"),
    ("CA-PE", "Prince Edward Island"),
    ("CA-QC", "Quebec"),
    ("CA-SK", "Saskatchewan"),
    ("CA-YT", "Yukon"),
    ("GB-ENG", "England"),
    ("GB-NIR", "Northern Ireland"),
    ("GB-SCT", "Scotland"),
    ("GB-WLS", "Wales"),
    ("IE", "Ireland"),
];

/// A jurisdiction from [`JURISDICTIONS`], by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jurisdiction(u16);

impl Jurisdiction {
    /// Looks a code up (case-insensitive, e.g. `CA-ON`); `None` if it is not known.
    pub fn from_code(code: &str) -> Option<Self> {
        // Codes are at most 8 bytes; an upper-cased fixed key makes the lookup one
        // hash probe instead of a scan (it runs for every instant match).
        static BY_CODE: std::sync::OnceLock<std::collections::HashMap<[u8; 8], u16>> =
            std::sync::OnceLock::new();
        fn key(code: &str) -> Option<[u8; 8]> {
            let bytes = code.as_bytes();
            let mut k = [0u8; 8];
            k.get_mut(..bytes.len())?.copy_from_slice(bytes);
            k.make_ascii_uppercase();
            Some(k)
        }
        let table = BY_CODE.get_or_init(|| {
            JURISDICTIONS
                .iter()
                .enumerate()
                .filter_map(|(i, (c, _))| Some((key(c)?, u16::try_from(i).ok()?)))
                .collect()
        });
        table.get(&key(code.trim())?).copied().map(Jurisdiction)
    }
    /// Position in [`JURISDICTIONS`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
    pub fn code(self) -> &'static str {
        JURISDICTIONS.get(self.index()).map_or("?", |(c, _)| c)
    }
    /// Display name, e.g. "Ontario".
    pub fn name(self) -> &'static str {
        JURISDICTIONS.get(self.index()).map_or("?", |(_, n)| n)
    }
}

/// How sessions happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Video,
    Phone,
    Chat,
    InPerson,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Video, Format::Phone, Format::Chat, Format::InPerson];
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn label(self) -> &'static str {
        match self {
            Format::Video => "video",
            Format::Phone => "phone",
            Format::Chat => "chat",
            Format::InPerson => "in-person",
        }
    }
}

/// Who a clinician works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Population {
    Children,
    Adolescents,
    Adults,
    OlderAdults,
    Couples,
    Families,
}

impl Population {
    pub const ALL: [Population; 6] = [
        Population::Children,
        Population::Adolescents,
        Population::Adults,
        Population::OlderAdults,
        Population::Couples,
        Population::Families,
    ];
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn label(self) -> &'static str {
        match self {
            Population::Children => "children",
            Population::Adolescents => "adolescents",
            Population::Adults => "adults",
            Population::OlderAdults => "older adults",
            Population::Couples => "couples",
            Population::Families => "families",
        }
    }
}

/// Problem domains a client can be elevated on and a clinician can specialise in and
/// be measured on: the 12 Treatment Outcome Package domains used by Match-POP
/// ("panic/somatic anxiety" is shown as anxiety) plus trauma and eating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemDomain {
    Depression,
    Anxiety,
    QualityOfLife,
    Mania,
    Psychosis,
    SubstanceUse,
    SocialConflict,
    SexualFunctioning,
    Sleep,
    Suicidality,
    Violence,
    WorkFunctioning,
    Trauma,
    Eating,
}

impl ProblemDomain {
    pub const COUNT: usize = 14;
    pub const ALL: [ProblemDomain; Self::COUNT] = [
        ProblemDomain::Depression,
        ProblemDomain::Anxiety,
        ProblemDomain::QualityOfLife,
        ProblemDomain::Mania,
        ProblemDomain::Psychosis,
        ProblemDomain::SubstanceUse,
        ProblemDomain::SocialConflict,
        ProblemDomain::SexualFunctioning,
        ProblemDomain::Sleep,
        ProblemDomain::Suicidality,
        ProblemDomain::Violence,
        ProblemDomain::WorkFunctioning,
        ProblemDomain::Trauma,
        ProblemDomain::Eating,
    ];
    pub fn index(self) -> usize {
        self as usize
    }
    /// This domain's bit in a `u16` domain mask.
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
    pub fn label(self) -> &'static str {
        match self {
            ProblemDomain::Depression => "depression",
            ProblemDomain::Anxiety => "anxiety",
            ProblemDomain::QualityOfLife => "quality of life",
            ProblemDomain::Mania => "mania",
            ProblemDomain::Psychosis => "psychosis",
            ProblemDomain::SubstanceUse => "substance use",
            ProblemDomain::SocialConflict => "social conflict",
            ProblemDomain::SexualFunctioning => "sexual functioning",
            ProblemDomain::Sleep => "sleep",
            ProblemDomain::Suicidality => "suicidality",
            ProblemDomain::Violence => "violence",
            ProblemDomain::WorkFunctioning => "work functioning",
            ProblemDomain::Trauma => "trauma",
            ProblemDomain::Eating => "eating",
        }
    }
}

/// A licence to practise in one jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    /// Jurisdiction code from [`JURISDICTIONS`], e.g. `CA-ON`.
    pub jurisdiction: String,
    pub number: String,
    /// Last day on which the licence is valid.
    pub expires_on: NaiveDate,
}

/// One interval of a weekly timetable, in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyInterval {
    /// 0 = Monday … 6 = Sunday.
    pub day: u8,
    /// Minutes after local midnight, inclusive.
    pub start_minute: u16,
    /// Minutes after local midnight, exclusive; at most 1440.
    pub end_minute: u16,
}

/// Hours of the week in UTC (Monday 00:00 UTC = hour 0 … 167), as a 168-bit set.
pub type WeekHours = [u64; 3];

/// A weekly timetable in the owner's local time. The offset is the UTC offset of the
/// owner's time zone in force for the week being matched (the schedule layer resolves
/// the IANA zone and daylight saving; matching only needs the offset).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WeeklyAvailability {
    /// Local time minus UTC, in minutes (e.g. −300 for US Eastern standard time).
    pub utc_offset_minutes: i32,
    pub intervals: Vec<WeeklyInterval>,
}

const MINUTES_PER_WEEK: i32 = 7 * 24 * 60;

impl WeeklyAvailability {
    /// Checks every interval (day 0–6, start < end ≤ 1440) and that no two overlap.
    /// `field` prefixes the error (e.g. `availability` or `preferences.times`).
    pub fn validate(&self, field: &str) -> Result<(), ProfileError> {
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err(ProfileError::Invalid {
                field: format!("{field}.utc_offset_minutes"),
                problem: format!("{} is outside −840…840 minutes", self.utc_offset_minutes),
            });
        }
        for (i, iv) in self.intervals.iter().enumerate() {
            if iv.day > 6 {
                return Err(ProfileError::Invalid {
                    field: format!("{field}.intervals[{i}].day"),
                    problem: format!("{} is not a weekday 0 (Monday) … 6 (Sunday)", iv.day),
                });
            }
            if iv.start_minute >= iv.end_minute || iv.end_minute > 1440 {
                return Err(ProfileError::Invalid {
                    field: format!("{field}.intervals[{i}]"),
                    problem: format!(
                        "start {} must be before end {} and end at most 1440",
                        iv.start_minute, iv.end_minute
                    ),
                });
            }
        }
        let mut order: Vec<usize> = (0..self.intervals.len()).collect();
        order.sort_by_key(|&i| self.intervals.get(i).map(|iv| week_minute(iv, 0)));
        for pair in order.windows(2) {
            if let [a, b] = *pair {
                if let (Some(x), Some(y)) = (self.intervals.get(a), self.intervals.get(b)) {
                    let x_end = week_minute(x, 0) + i32::from(x.end_minute - x.start_minute);
                    if week_minute(y, 0) < x_end {
                        return Err(ProfileError::OverlappingAvailability {
                            field: field.to_string(),
                            first: a.min(b),
                            second: a.max(b),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The UTC hours of the week that are fully covered by an interval.
    pub fn utc_hours(&self) -> WeekHours {
        let mut hours = [0u64; 3];
        for iv in &self.intervals {
            let start = week_minute(iv, -self.utc_offset_minutes);
            let len = i32::from(iv.end_minute.saturating_sub(iv.start_minute));
            // First whole hour at or after start, last whole hour ending by the end.
            let first = (start + 59).div_euclid(60);
            let last = (start + len).div_euclid(60);
            for h in first..last {
                let h = h.rem_euclid(168);
                if let (Ok(word), Ok(bit)) = (usize::try_from(h / 64), u32::try_from(h % 64)) {
                    if let Some(w) = hours.get_mut(word) {
                        *w |= 1u64 << bit;
                    }
                }
            }
        }
        hours
    }
}

/// Minute of the week of an interval's start, shifted by `shift` minutes, wrapped.
fn week_minute(iv: &WeeklyInterval, shift: i32) -> i32 {
    (i32::from(iv.day) * 1440 + i32::from(iv.start_minute) + shift).rem_euclid(MINUTES_PER_WEEK)
}

/// How many clients a clinician can take. Signed so that a bad value can be named
/// rather than silently wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Most clients the clinician will see at once.
    pub caseload_limit: i32,
    /// Clients currently in their care.
    pub current_load: i32,
    /// Most new clients they take in one week.
    pub new_clients_per_week: i32,
    /// New clients already taken this week.
    #[serde(default)]
    pub new_clients_this_week: i32,
}

impl Capacity {
    /// Slots open now: the smaller of room in the caseload and room this week, never
    /// negative.
    pub fn free_slots(&self) -> u32 {
        let caseload = self.caseload_limit.saturating_sub(self.current_load);
        let week = self
            .new_clients_per_week
            .saturating_sub(self.new_clients_this_week);
        u32::try_from(caseload.min(week)).unwrap_or(0)
    }
}

/// Self-described identity characteristics, shown and matched on only with consent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdentityCharacteristics {
    /// The clinician agreed that these may be shown to clients and used in matching.
    pub consent_to_show: bool,
    /// Lower-case slugs as the clinician describes themself, e.g. `woman`, `lgbtq`.
    pub characteristics: Vec<String>,
}

/// Measured outcomes with one problem domain, from the practice's own completed
/// episodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainOutcome {
    pub domain: ProblemDomain,
    /// Completed episodes in which the domain was elevated at the start (n).
    pub completed_episodes: u32,
    /// Of those, how many showed reliable improvement.
    pub reliably_improved: u32,
}

/// Effective / neutral / ineffective on a domain, or not enough cases to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeRating {
    Effective,
    Neutral,
    Ineffective,
    InsufficientData,
}

impl DomainOutcome {
    /// Reliable-improvement rate, `None` when there are no episodes.
    pub fn rate(&self) -> Option<f64> {
        (self.completed_episodes > 0)
            .then(|| f64::from(self.reliably_improved) / f64::from(self.completed_episodes))
    }

    /// Wilson score 95 % interval for the reliable-improvement rate.
    pub fn wilson_95(&self) -> Option<(f64, f64)> {
        wilson_interval(self.reliably_improved, self.completed_episodes, Z_95)
    }

    /// Rates the clinician against the expected rate for this domain (the practice's
    /// pooled rate, or a normative rate): effective when the whole 95 % interval lies
    /// above it, ineffective when it lies wholly below, neutral otherwise; insufficient
    /// data below [`MIN_EPISODES_FOR_RATING`] episodes.
    pub fn rating(&self, expected_rate: f64) -> OutcomeRating {
        if self.completed_episodes < MIN_EPISODES_FOR_RATING {
            return OutcomeRating::InsufficientData;
        }
        match self.wilson_95() {
            Some((low, _)) if low > expected_rate => OutcomeRating::Effective,
            Some((_, high)) if high < expected_rate => OutcomeRating::Ineffective,
            Some(_) => OutcomeRating::Neutral,
            None => OutcomeRating::InsufficientData,
        }
    }
}

/// Wilson score interval for `successes` out of `n` at normal quantile `z`.
pub fn wilson_interval(successes: u32, n: u32, z: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n {
        return None;
    }
    let n_f = f64::from(n);
    let p = f64::from(successes) / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Expected reliable-improvement rate per problem domain, against which clinicians
/// are rated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutcomeNorms {
    pub expected_rate: [f64; ProblemDomain::COUNT],
}

impl OutcomeNorms {
    /// The practice's own pooled rate per domain over all the given profiles
    /// (0.5 for a domain nobody has data on; then nobody can be rated on it anyway
    /// unless someone has ≥ 15 episodes, which makes the pool non-empty).
    pub fn pooled(profiles: &[ClinicianProfile]) -> Self {
        let mut improved = [0u64; ProblemDomain::COUNT];
        let mut total = [0u64; ProblemDomain::COUNT];
        for o in profiles.iter().flat_map(|p| p.outcomes.iter()) {
            if let (Some(i), Some(t)) = (
                improved.get_mut(o.domain.index()),
                total.get_mut(o.domain.index()),
            ) {
                *i += u64::from(o.reliably_improved.min(o.completed_episodes));
                *t += u64::from(o.completed_episodes);
            }
        }
        let mut expected_rate = [0.5; ProblemDomain::COUNT];
        for (d, rate) in expected_rate.iter_mut().enumerate() {
            if let (Some(&i), Some(&t)) = (improved.get(d), total.get(d)) {
                if t > 0 {
                    *rate = i as f64 / t as f64;
                }
            }
        }
        Self { expected_rate }
    }

    pub fn expected(&self, domain: ProblemDomain) -> f64 {
        self.expected_rate
            .get(domain.index())
            .copied()
            .unwrap_or(0.5)
    }
}

/// Everything matching needs to know about one clinician.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicianProfile {
    pub id: ClinicianId,
    pub display_name: String,
    pub licences: Vec<Licence>,
    /// ISO 639 language codes (`en`, `es`, …).
    pub languages: Vec<String>,
    pub formats: Vec<Format>,
    /// Approaches and techniques they are trained in, as slugs (`cbt`, `emdr`, `act`…).
    pub approaches: Vec<String>,
    /// Problem domains they specialise in.
    pub specialties: Vec<ProblemDomain>,
    pub populations: Vec<Population>,
    #[serde(default)]
    pub identity: Option<IdentityCharacteristics>,
    pub capacity: Capacity,
    pub availability: WeeklyAvailability,
    /// Takes urgent referrals and clients with moderate or higher risk.
    pub accepts_risk: bool,
    #[serde(default)]
    pub outcomes: Vec<DomainOutcome>,
}

/// A profile that cannot be used, with the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("{field}: unknown jurisdiction code '{code}'")]
    UnknownJurisdiction { field: String, code: String },
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("{field}: must not be negative (got {value})")]
    NegativeCapacity { field: &'static str, value: i32 },
    #[error("{field}: intervals {first} and {second} overlap")]
    OverlappingAvailability {
        field: String,
        first: usize,
        second: usize,
    },
    #[error("outcomes: domain '{0}' is listed twice")]
    DuplicateOutcome(&'static str),
}

impl ClinicianProfile {
    /// Checks the whole profile; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.display_name.trim().is_empty() {
            return Err(invalid("display_name", "must not be empty"));
        }
        for (i, l) in self.licences.iter().enumerate() {
            if Jurisdiction::from_code(&l.jurisdiction).is_none() {
                return Err(ProfileError::UnknownJurisdiction {
                    field: format!("licences[{i}].jurisdiction"),
                    code: l.jurisdiction.clone(),
                });
            }
            if l.number.trim().is_empty() {
                return Err(invalid(
                    &format!("licences[{i}].number"),
                    "must not be empty",
                ));
            }
        }
        if self.languages.is_empty() {
            return Err(invalid("languages", "at least one language is required"));
        }
        for (i, code) in self.languages.iter().enumerate() {
            if !is_language_code(code) {
                return Err(invalid(
                    &format!("languages[{i}]"),
                    &format!("'{code}' is not a lower-case ISO 639 code (2–3 letters)"),
                ));
            }
        }
        if self.formats.is_empty() {
            return Err(invalid("formats", "at least one format is required"));
        }
        if self.populations.is_empty() {
            return Err(invalid(
                "populations",
                "at least one population is required",
            ));
        }
        for (i, a) in self.approaches.iter().enumerate() {
            if !is_slug(a) {
                return Err(invalid(
                    &format!("approaches[{i}]"),
                    &format!("'{a}' is not a lower-case slug"),
                ));
            }
        }
        if let Some(identity) = &self.identity {
            for (i, c) in identity.characteristics.iter().enumerate() {
                if !is_slug(c) {
                    return Err(invalid(
                        &format!("identity.characteristics[{i}]"),
                        &format!("'{c}' is not a lower-case slug"),
                    ));
                }
            }
        }
        let c = &self.capacity;
        for (field, value) in [
            ("capacity.caseload_limit", c.caseload_limit),
            ("capacity.current_load", c.current_load),
            ("capacity.new_clients_per_week", c.new_clients_per_week),
            ("capacity.new_clients_this_week", c.new_clients_this_week),
        ] {
            if value < 0 {
                return Err(ProfileError::NegativeCapacity { field, value });
            }
        }
        self.availability.validate("availability")?;
        let mut seen = 0u16;
        for (i, o) in self.outcomes.iter().enumerate() {
            if seen & o.domain.bit() != 0 {
                return Err(ProfileError::DuplicateOutcome(o.domain.label()));
            }
            seen |= o.domain.bit();
            if o.reliably_improved > o.completed_episodes {
                return Err(invalid(
                    &format!("outcomes[{i}].reliably_improved"),
                    &format!(
                        "{} is more than the {} completed episodes",
                        o.reliably_improved, o.completed_episodes
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The licence valid in `jurisdiction` on `date`, if any.
    pub fn valid_licence(&self, jurisdiction: Jurisdiction, date: NaiveDate) -> Option<&Licence> {
        self.licences.iter().find(|l| {
            Jurisdiction::from_code(&l.jurisdiction) == Some(jurisdiction) && l.expires_on >= date
        })
    }

    /// Outcome record for a domain, if any.
    pub fn outcome(&self, domain: ProblemDomain) -> Option<&DomainOutcome> {
        self.outcomes.iter().find(|o| o.domain == domain)
    }

    /// Identity characteristics that may be shown and matched on (empty without consent).
    pub fn shareable_characteristics(&self) -> &[String] {
        match &self.identity {
            Some(i) if i.consent_to_show => &i.characteristics,
            _ => &[],
        }
    }
}

fn invalid(field: &str, problem: &str) -> ProfileError {
    ProfileError::Invalid {
        field: field.to_string(),
        problem: problem.to_string(),
    }
}

/// Lower-case ISO 639 code: 2–3 ASCII letters.
pub fn is_language_code(code: &str) -> bool {
    (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase())
}

/// Lower-case slug: a–z, 0–9, `_` and `-`, 1–64 characters, starting with a letter.
pub fn is_slug(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// English name of a language code, falling back to the code.
pub fn language_name(code: &str) -> &str {
    match code {
        "en" => "English",
        "es" => "Spanish",
        "fr" => "French",
        "de" => "German",
        "pt" => "Portuguese",
        "it" => "Italian",
        "zh" => "Chinese",
        "ar" => "Arabic",
        "hi" => "Hindi",
        "ru" => "Russian",
        "pl" => "Polish",
        "uk" => "Ukrainian",
        "tl" => "Tagalog",
        "vi" => "Vietnamese",
        "ko" => "Korean",
        "ja" => "Japanese",
        "pa" => "Punjabi",
        "ur" => "Urdu",
        "fa" => "Persian",
        "tr" => "Turkish",
        "he" => "Hebrew",
        "ga" => "Irish",
        "cy" => "Welsh",
        "gd" => "Scottish Gaelic",
        "asl" => "American Sign Language",
        "bfi" => "British Sign Language",
        other => other,
    }
}

/// Display label of an approach slug: short slugs are acronyms (`cbt` → `CBT`),
/// others read as words (`schema_therapy` → `schema therapy`).
pub fn approach_label(slug: &str) -> String {
    if slug.len() <= 4 && !slug.contains(['_', '-']) {
        slug.to_ascii_uppercase()
    } else {
        slug.replace(['_', '-'], " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_known_values() {
        // 12 of 24: p = 0.5, Wilson 95 % ≈ (0.314, 0.686).
        let (lo, hi) = wilson_interval(12, 24, Z_95).unwrap();
        assert!((lo - 0.3136).abs() < 1e-3, "{lo}");
        assert!((hi - 0.6864).abs() < 1e-3, "{hi}");
        // All successes: upper bound is 1, lower bound well below.
        let (lo, hi) = wilson_interval(20, 20, Z_95).unwrap();
        assert!((hi - 1.0).abs() < 1e-12 && lo > 0.8 && lo < 0.85, "{lo}");
        assert_eq!(wilson_interval(0, 0, Z_95), None);
        assert_eq!(wilson_interval(3, 2, Z_95), None);
    }

    #[test]
    fn rating_needs_fifteen_episodes() {
        let o = DomainOutcome {
            domain: ProblemDomain::Anxiety,
            completed_episodes: 14,
            reliably_improved: 14,
        };
        assert_eq!(o.rating(0.5), OutcomeRating::InsufficientData);
        let o = DomainOutcome {
            completed_episodes: 15,
            ..o
        };
        assert_eq!(o.rating(0.5), OutcomeRating::Effective);
        let poor = DomainOutcome {
            domain: ProblemDomain::Anxiety,
            completed_episodes: 30,
            reliably_improved: 5,
        };
        assert_eq!(poor.rating(0.6), OutcomeRating::Ineffective);
        let middling = DomainOutcome {
            domain: ProblemDomain::Anxiety,
            completed_episodes: 30,
            reliably_improved: 18,
        };
        assert_eq!(middling.rating(0.6), OutcomeRating::Neutral);
    }

    #[test]
    fn utc_hours_shift_by_offset_and_wrap_the_week() {
        // Monday 00:00–02:00 at UTC−5 is Monday 05:00–07:00 UTC.
        let a = WeeklyAvailability {
            utc_offset_minutes: -300,
            intervals: vec![WeeklyInterval {
                day: 0,
                start_minute: 0,
                end_minute: 120,
            }],
        };
        assert_eq!(a.utc_hours(), [0b110_0000, 0, 0]);
        // Monday 00:00–01:00 at UTC+1 is Sunday 23:00 UTC: hour 167.
        let b = WeeklyAvailability {
            utc_offset_minutes: 60,
            intervals: vec![WeeklyInterval {
                day: 0,
                start_minute: 0,
                end_minute: 60,
            }],
        };
        assert_eq!(b.utc_hours(), [0, 0, 1u64 << (167 - 128)]);
        // Half hours are only counted when the whole UTC hour is covered.
        let c = WeeklyAvailability {
            utc_offset_minutes: 330,
            intervals: vec![WeeklyInterval {
                day: 1,
                start_minute: 600,
                end_minute: 720,
            }],
        };
        // 10:00–12:00 at UTC+5:30 = 04:30–06:30 UTC → only 05:00–06:00 whole.
        assert_eq!(c.utc_hours(), [1u64 << (24 + 5), 0, 0]);
    }

    #[test]
    fn free_slots_is_the_tighter_limit_and_never_negative() {
        let c = Capacity {
            caseload_limit: 20,
            current_load: 18,
            new_clients_per_week: 3,
            new_clients_this_week: 0,
        };
        assert_eq!(c.free_slots(), 2);
        let over = Capacity {
            current_load: 25,
            ..c
        };
        assert_eq!(over.free_slots(), 0);
    }

    #[test]
    fn approach_labels() {
        assert_eq!(approach_label("cbt"), "CBT");
        assert_eq!(approach_label("schema_therapy"), "schema therapy");
    }
}
