//! Clinicians' measured outcomes by **presenting problem**: each finished episode
//! counts once, for the problem domain it was about, as reliably improved or not.
//!
//! The domain comes from the episode's presenting problem (the primary problem of the
//! client's case formulation, a vocabulary id such as `ptsd`), falling back to the
//! domain of the instrument that measured the episode when no formulation names one
//! (PHQ-9 → depression, GAD-7 → anxiety, PCL-5 → trauma, ISI → sleep, AUDIT-C →
//! substance use). The change that decides "reliably improved" is read on the
//! instrument for that domain when the episode has one, otherwise on a general
//! distress measure (CORE-10, K10), otherwise on the first measure with a result.
//!
//! The vocabulary-to-domain map is a Tapestry design choice (the vocabulary's
//! problems are finer than the Treatment Outcome Package domains Match-POP used).

use super::profile::{DomainOutcome, ProblemDomain};
use crate::change::ReliableChange;
use std::collections::HashMap;
use std::hash::Hash;

/// The problem domain of a formulation vocabulary problem id (`content/vocabulary.toml`).
pub fn domain_of_problem(problem: &str) -> Option<ProblemDomain> {
    use ProblemDomain::*;
    Some(match problem {
        "depression" | "grief" | "low-self-esteem" => Depression,
        "generalized-anxiety" | "panic" | "social-anxiety" => Anxiety,
        "ptsd" => Trauma,
        "insomnia" => Sleep,
        "relationship-difficulties" => SocialConflict,
        "stress-burnout" => WorkFunctioning,
        "emotion-dysregulation" => Suicidality,
        "alcohol-misuse" => SubstanceUse,
        _ => return None,
    })
}

/// The problem domain an instrument measures, if it measures one.
pub fn domain_of_instrument(instrument: &str) -> Option<ProblemDomain> {
    use ProblemDomain::*;
    Some(match instrument {
        "phq9" | "phq8" | "phq2" => Depression,
        "gad7" | "gad2" => Anxiety,
        "pcl5" => Trauma,
        "isi" => Sleep,
        "audit_c" => SubstanceUse,
        "wsas" => WorkFunctioning,
        _ => return None,
    })
}

/// General distress measures, used when the episode has no measure for its domain.
const GENERAL_MEASURES: [&str; 2] = ["core10", "k10"];

/// What is known about one finished episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedEpisode {
    /// The primary presenting problem (vocabulary id), when a formulation names one.
    pub presenting_problem: Option<String>,
    /// First-to-last change per instrument, in the order the measures were listed.
    pub changes: Vec<(String, ReliableChange)>,
}

/// The domain an episode counts for and whether it reliably improved; `None` when
/// no domain can be found or nothing was measured.
pub fn episode_outcome(e: &FinishedEpisode) -> Option<(ProblemDomain, bool)> {
    let domain = e
        .presenting_problem
        .as_deref()
        .and_then(domain_of_problem)
        .or_else(|| e.changes.iter().find_map(|(i, _)| domain_of_instrument(i)))?;
    let change = e
        .changes
        .iter()
        .find(|(i, _)| domain_of_instrument(i) == Some(domain))
        .or_else(|| {
            e.changes
                .iter()
                .find(|(i, _)| GENERAL_MEASURES.contains(&i.as_str()))
        })
        .or_else(|| e.changes.first())?;
    Some((domain, change.1 == ReliableChange::Improved))
}

/// Per clinician (any key), completed episodes and reliable improvements by domain,
/// each list sorted by domain.
pub fn tally<K: Eq + Hash>(
    episodes: impl IntoIterator<Item = (K, FinishedEpisode)>,
) -> HashMap<K, Vec<DomainOutcome>> {
    let mut counts: HashMap<K, [(u32, u32); ProblemDomain::COUNT]> = HashMap::new();
    for (clinician, e) in episodes {
        let Some((domain, improved)) = episode_outcome(&e) else {
            continue;
        };
        let row = counts
            .entry(clinician)
            .or_insert([(0, 0); ProblemDomain::COUNT]);
        if let Some(c) = row.get_mut(domain.index()) {
            c.0 += 1;
            c.1 += u32::from(improved);
        }
    }
    counts
        .into_iter()
        .map(|(k, row)| {
            let list = ProblemDomain::ALL
                .iter()
                .zip(row)
                .filter(|(_, (n, _))| *n > 0)
                .map(|(&domain, (n, improved))| DomainOutcome {
                    domain,
                    completed_episodes: n,
                    reliably_improved: improved,
                })
                .collect();
            (k, list)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::profile::OutcomeRating;
    use ReliableChange::*;

    fn ep(problem: Option<&str>, changes: &[(&str, ReliableChange)]) -> FinishedEpisode {
        FinishedEpisode {
            presenting_problem: problem.map(str::to_string),
            changes: changes.iter().map(|(i, c)| (i.to_string(), *c)).collect(),
        }
    }

    #[test]
    fn presenting_problem_decides_the_domain_and_its_instrument_the_change() {
        // Panic disorder measured with PHQ-9 (no change) and GAD-7 (improved): it
        // counts for anxiety, judged on GAD-7.
        let e = ep(
            Some("panic"),
            &[("phq9", NoReliableChange), ("gad7", Improved)],
        );
        assert_eq!(episode_outcome(&e), Some((ProblemDomain::Anxiety, true)));
        // PTSD without a PCL-5: judged on the general measure, not on PHQ-9.
        let e = ep(
            Some("ptsd"),
            &[("phq9", Improved), ("core10", Deteriorated)],
        );
        assert_eq!(episode_outcome(&e), Some((ProblemDomain::Trauma, false)));
        // Nothing fitting: the first measure decides.
        let e = ep(Some("insomnia"), &[("phq9", Improved)]);
        assert_eq!(episode_outcome(&e), Some((ProblemDomain::Sleep, true)));
    }

    #[test]
    fn without_a_formulation_the_instrument_gives_the_domain() {
        let e = ep(None, &[("core10", Improved), ("gad7", Improved)]);
        assert_eq!(episode_outcome(&e), Some((ProblemDomain::Anxiety, true)));
        // An unknown presenting problem also falls back to the instrument.
        let e = ep(Some("sadness"), &[("phq9", NoReliableChange)]);
        assert_eq!(
            episode_outcome(&e),
            Some((ProblemDomain::Depression, false))
        );
        // Only a general measure and no problem: no domain, not counted.
        assert_eq!(episode_outcome(&ep(None, &[("core10", Improved)])), None);
        // Nothing measured: not counted, even with a problem.
        assert_eq!(episode_outcome(&ep(Some("depression"), &[])), None);
    }

    #[test]
    fn every_vocabulary_problem_has_a_domain() {
        let vocab = crate::content::embedded_under("vocabulary.toml");
        let text = &vocab.first().unwrap().text;
        let v: toml::Value = toml::from_str(text).unwrap();
        for p in v["problems"].as_array().unwrap() {
            let id = p["id"].as_str().unwrap();
            assert!(domain_of_problem(id).is_some(), "{id} has no domain");
        }
    }

    #[test]
    fn tally_counts_each_episode_once_and_rates_only_from_fifteen() {
        // 24 anxiety episodes (18 improved) and 14 depression episodes for one clinician.
        let mut episodes = Vec::new();
        for i in 0..24 {
            let c = if i < 18 { Improved } else { NoReliableChange };
            episodes.push(("a", ep(Some("social-anxiety"), &[("gad7", c), ("phq9", c)])));
        }
        for _ in 0..14 {
            episodes.push(("a", ep(Some("depression"), &[("phq9", Improved)])));
        }
        episodes.push(("b", ep(None, &[])));
        let t = tally(episodes);
        assert!(
            !t.contains_key("b"),
            "an episode without a domain is not counted"
        );
        let a = &t["a"];
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].domain, ProblemDomain::Depression);
        assert_eq!((a[0].completed_episodes, a[0].reliably_improved), (14, 14));
        assert_eq!(a[1].domain, ProblemDomain::Anxiety);
        assert_eq!((a[1].completed_episodes, a[1].reliably_improved), (24, 18));
        // 14 perfect episodes are still too few to rate; 24 at 75 % against an
        // expected 40 % is effective (Wilson interval wholly above).
        assert_eq!(a[0].rating(0.4), OutcomeRating::InsufficientData);
        assert_eq!(a[1].rating(0.4), OutcomeRating::Effective);
        assert!(tally(Vec::<(u8, FinishedEpisode)>::new()).is_empty());
    }
}
