//! The client's most elevated problem domains, from the intake: the intake measures
//! first (a score at or above the instrument's cut-off, ranked by how far into the
//! range above it the score lies), then the domains the client named in their own
//! words ("what would you like help with?"), in the order first mentioned.
//!
//! The mapping is data (`content/matching/elevated_domains.toml`, every entry
//! `verified = false`: choosing these cut-offs and words for matching is Tapestry's
//! judgement). The result feeds [`crate::matching::instant::ClientRequest`]'s
//! `elevated_domains` (the hard constraint "not rated ineffective on them", specialty
//! fit and outcomes use its first three).

use super::profile::ProblemDomain;
use serde::{Deserialize, Serialize};

/// Where the embedded mapping lives under `content/`.
pub const MAPPING_PATH: &str = "matching/elevated_domains.toml";

/// How an instrument's intake score shows an elevated domain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MeasureRule {
    /// Instrument id, e.g. `phq9`.
    pub instrument: String,
    pub domain: ProblemDomain,
    /// A score at or above this is elevated.
    pub elevated_at: f64,
    /// Highest possible score.
    pub max: f64,
    pub source: String,
    pub verified: bool,
}

/// Word stems in the client's own description that point to a domain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WordRule {
    pub domain: ProblemDomain,
    /// Lower-case stems, matched at the start of a word.
    pub stems: Vec<String>,
    pub verified: bool,
}

/// The whole mapping.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainMapping {
    #[serde(default)]
    pub measure: Vec<MeasureRule>,
    #[serde(default)]
    pub words: Vec<WordRule>,
}

/// A mapping file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainMappingError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: measure[{index}] ({instrument}): {problem}")]
    Measure {
        path: String,
        index: usize,
        instrument: String,
        problem: &'static str,
    },
    #[error("{path}: words[{index}]: {problem}")]
    Words {
        path: String,
        index: usize,
        problem: &'static str,
    },
    #[error("{0}: no domain mapping file")]
    Missing(&'static str),
}

/// One intake measure's total.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeScore {
    pub instrument: String,
    pub score: f64,
}

/// Where one of the client's elevated domains came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DomainSource {
    /// An intake measure's score at or above the instrument's cut-off.
    IntakeMeasure { instrument: String },
    /// The client's own description of what they would like help with.
    ClientWords,
    /// Named by the intake team in the match request.
    IntakeTeam,
}

/// One elevated domain with its source and a plain-language reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElevatedDomain {
    pub domain: ProblemDomain,
    pub source: DomainSource,
    pub reason: String,
}

impl DomainMapping {
    /// Reads and checks a mapping file (`path` names it in errors).
    pub fn from_toml(path: &str, text: &str) -> Result<Self, DomainMappingError> {
        let mapping: DomainMapping =
            toml::from_str(text).map_err(|e| DomainMappingError::Parse {
                path: path.to_string(),
                message: e.to_string(),
            })?;
        for (index, m) in mapping.measure.iter().enumerate() {
            let bad = |problem| DomainMappingError::Measure {
                path: path.to_string(),
                index,
                instrument: m.instrument.clone(),
                problem,
            };
            if m.instrument.trim().is_empty() {
                return Err(bad("instrument: must not be empty"));
            }
            if !m.elevated_at.is_finite() || !m.max.is_finite() || m.max <= m.elevated_at {
                return Err(bad("max: must be a number above elevated_at"));
            }
            if mapping
                .measure
                .iter()
                .take(index)
                .any(|o| o.instrument == m.instrument)
            {
                return Err(bad("instrument: listed twice"));
            }
        }
        for (index, w) in mapping.words.iter().enumerate() {
            let bad = |problem| DomainMappingError::Words {
                path: path.to_string(),
                index,
                problem,
            };
            if w.stems.is_empty() {
                return Err(bad("stems: at least one is required"));
            }
            if w.stems
                .iter()
                .any(|s| s.trim().is_empty() || s.chars().any(|c| c.is_uppercase()))
            {
                return Err(bad("stems: each must be non-empty and lower-case"));
            }
        }
        Ok(mapping)
    }

    /// The mapping shipped in `content/` (a site may supply its own file instead).
    pub fn embedded() -> Result<Self, DomainMappingError> {
        let file = crate::content::embedded_under(MAPPING_PATH)
            .into_iter()
            .next()
            .ok_or(DomainMappingError::Missing(MAPPING_PATH))?;
        Self::from_toml(&file.path, &file.text)
    }

    /// The client's elevated domains, most elevated first, each once: measured
    /// elevations ranked by how far above the cut-off the score lies (ties: the
    /// order of the mapping), then the domains named in `concern`, in order of first
    /// mention. Unknown instruments and non-finite scores are ignored; an empty
    /// concern and no measures give an empty list.
    pub fn elevated_domains(&self, concern: &str, scores: &[IntakeScore]) -> Vec<ProblemDomain> {
        self.explain(concern, scores)
            .into_iter()
            .map(|e| e.domain)
            .collect()
    }

    /// [`Self::elevated_domains`] with where each domain came from, in the same
    /// order: an intake measure at or above its cut-off, or the client's own words.
    pub fn explain(&self, concern: &str, scores: &[IntakeScore]) -> Vec<ElevatedDomain> {
        let mut measured: Vec<(f64, usize, ElevatedDomain)> = Vec::new();
        for s in scores.iter().filter(|s| s.score.is_finite()) {
            let Some((order, rule)) = self
                .measure
                .iter()
                .enumerate()
                .find(|(_, m)| m.instrument == s.instrument)
            else {
                continue;
            };
            if s.score >= rule.elevated_at {
                let depth = (s.score - rule.elevated_at) / (rule.max - rule.elevated_at);
                measured.push((
                    depth,
                    order,
                    ElevatedDomain {
                        domain: rule.domain,
                        source: DomainSource::IntakeMeasure {
                            instrument: rule.instrument.clone(),
                        },
                        reason: format!(
                            "{} intake score {} is at or above {} (of {})",
                            rule.instrument, s.score, rule.elevated_at, rule.max
                        ),
                    },
                ));
            }
        }
        measured.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out: Vec<ElevatedDomain> = Vec::new();
        for (_, _, e) in measured {
            if !out.iter().any(|o| o.domain == e.domain) {
                out.push(e);
            }
        }
        for d in self.mentioned(concern) {
            if !out.iter().any(|o| o.domain == d) {
                out.push(ElevatedDomain {
                    domain: d,
                    source: DomainSource::ClientWords,
                    reason: "named in the client's own words at intake".to_string(),
                });
            }
        }
        out
    }

    /// Domains named in the client's words, in order of first mention.
    pub fn mentioned(&self, concern: &str) -> Vec<ProblemDomain> {
        let text = concern.to_lowercase();
        let mut hits: Vec<(usize, ProblemDomain)> = Vec::new();
        for w in &self.words {
            let first = w
                .stems
                .iter()
                .filter_map(|stem| first_word_start(&text, stem))
                .min();
            if let Some(at) = first {
                hits.push((at, w.domain));
            }
        }
        hits.sort_by_key(|&(at, _)| at);
        let mut out = Vec::new();
        for (_, d) in hits {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }
}

/// Byte position of the first occurrence of `stem` in `text` that starts a word.
fn first_word_start(text: &str, stem: &str) -> Option<usize> {
    text.match_indices(stem).map(|(i, _)| i).find(|&i| {
        text.get(..i)
            .and_then(|before| before.chars().next_back())
            .is_none_or(|c| !c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mapping() -> DomainMapping {
        DomainMapping::embedded().unwrap()
    }

    fn score(instrument: &str, score: f64) -> IntakeScore {
        IntakeScore {
            instrument: instrument.to_string(),
            score,
        }
    }

    #[test]
    fn embedded_mapping_loads_and_is_marked_unverified() {
        let m = mapping();
        assert!(m.measure.len() >= 4);
        assert!(m
            .measure
            .iter()
            .all(|r| !r.verified && !r.source.is_empty()));
        assert!(m.words.iter().all(|w| !w.verified));
    }

    #[test]
    fn measures_rank_by_depth_above_the_cut_off() {
        // PHQ-9 15 is (15-10)/17 = 0.29 above; GAD-7 18 is (18-10)/11 = 0.73 above:
        // anxiety is the most elevated although its raw score is lower than PCL-5's.
        let got = mapping().elevated_domains(
            "",
            &[
                score("phq9", 15.0),
                score("gad7", 18.0),
                score("pcl5", 20.0),
            ],
        );
        assert_eq!(got, vec![ProblemDomain::Anxiety, ProblemDomain::Depression]);
    }

    #[test]
    fn each_domain_says_whether_a_measure_or_the_clients_words_raised_it() {
        let got = mapping().explain("I can't sleep and I feel anxious", &[score("phq9", 18.0)]);
        let first = got.first().unwrap();
        assert_eq!(first.domain, ProblemDomain::Depression);
        assert_eq!(
            first.source,
            DomainSource::IntakeMeasure {
                instrument: "phq9".into()
            }
        );
        assert_eq!(
            first.reason,
            "phq9 intake score 18 is at or above 10 (of 27)"
        );
        assert!(got
            .iter()
            .skip(1)
            .all(|e| e.source == DomainSource::ClientWords));
        let domains: Vec<ProblemDomain> = got.iter().map(|e| e.domain).collect();
        assert_eq!(
            domains,
            mapping().elevated_domains("I can't sleep and I feel anxious", &[score("phq9", 18.0)])
        );
        assert!(mapping().explain("", &[]).is_empty());
    }

    #[test]
    fn a_score_at_the_cut_off_is_elevated_and_one_below_is_not() {
        let m = mapping();
        assert_eq!(
            m.elevated_domains("", &[score("phq9", 10.0)]),
            vec![ProblemDomain::Depression]
        );
        assert!(m.elevated_domains("", &[score("phq9", 9.0)]).is_empty());
    }

    #[test]
    fn own_words_follow_the_measures_in_order_of_mention() {
        let got = mapping().elevated_domains(
            "I can't sleep, I worry all the time and my drinking got worse. Sleep!",
            &[score("phq9", 20.0)],
        );
        assert_eq!(
            got,
            vec![
                ProblemDomain::Depression,
                ProblemDomain::Sleep,
                ProblemDomain::Anxiety,
                ProblemDomain::SubstanceUse,
            ]
        );
    }

    #[test]
    fn stems_match_only_at_the_start_of_a_word() {
        // "network" contains "work" but not at a word start; "Worried" is upper case.
        let m = mapping();
        assert_eq!(m.mentioned("my network"), Vec::<ProblemDomain>::new());
        assert_eq!(m.mentioned("Worried"), vec![ProblemDomain::Anxiety]);
    }

    #[test]
    fn a_domain_both_measured_and_named_appears_once_at_its_measured_place() {
        let got = mapping().elevated_domains(
            "anxiety and low mood",
            &[score("gad7", 21.0), score("gad7", 21.0)],
        );
        assert_eq!(got, vec![ProblemDomain::Anxiety, ProblemDomain::Depression]);
    }

    #[test]
    fn empty_unknown_and_malformed_input_give_nothing() {
        let m = mapping();
        assert!(m.elevated_domains("", &[]).is_empty());
        assert!(m
            .elevated_domains(
                "   ",
                &[
                    score("nope", 99.0),
                    score("phq9", f64::NAN),
                    score("gad7", f64::INFINITY)
                ]
            )
            .is_empty());
    }

    #[test]
    fn bad_mapping_files_name_the_entry_and_field() {
        let e = DomainMapping::from_toml(
            "site/map.toml",
            "[[measure]]\ninstrument = \"phq9\"\ndomain = \"depression\"\nelevated_at = 10\nmax = 5\nsource = \"x\"\nverified = false\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "site/map.toml: measure[0] (phq9): max: must be a number above elevated_at"
        );
        let e = DomainMapping::from_toml(
            "site/map.toml",
            "[[words]]\ndomain = \"sleep\"\nstems = [\"Sleep\"]\nverified = false\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("site/map.toml: words[0]: stems"), "{e}");
        let e = DomainMapping::from_toml(
            "site/map.toml",
            "[[words]]\ndomain = \"moods\"\nstems = [\"x\"]\nverified = false\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("site/map.toml: "), "{e}");
    }

    proptest! {
        /// Whatever the text and scores (huge, duplicated, odd), every domain appears
        /// at most once, and each measured elevation comes before every domain
        /// known only from the client's words.
        #[test]
        fn domains_are_unique_and_measures_come_first(
            text in "\\PC{0,300}",
            raw in proptest::collection::vec((0usize..7, -5.0f64..100.0), 0..20),
        ) {
            let m = mapping();
            let names = ["phq9", "gad7", "pcl5", "isi", "audit_c", "wsas", "other"];
            let scores: Vec<IntakeScore> =
                raw.iter().map(|&(i, s)| score(names[i], s)).collect();
            let got = m.elevated_domains(&text, &scores);
            let mut seen = std::collections::HashSet::new();
            prop_assert!(got.iter().all(|d| seen.insert(*d)));
            let measured = m.elevated_domains("", &scores);
            prop_assert_eq!(&got[..measured.len()], &measured[..]);
        }
    }
}
