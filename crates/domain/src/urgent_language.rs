//! Urgent-language screening of secure messages.
//!
//! A transparent phrase list (`content/safety/urgent-language.toml`) is
//! matched against a normalised message. A match raises a risk task for the
//! care team, exactly like a risk answer on a questionnaire. Negation is not
//! attempted ("I would never kill myself" is flagged): the list errs on the
//! side of flagging, because a person reading one extra message costs little.
//! This is not a risk assessment and never replaces clinical judgement.

use crate::content::ContentFile;
use crate::ids::UserId;
use chrono::NaiveDate;
use serde::Deserialize;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

/// The embedded phrase list's path under `content/`.
pub const PHRASE_LIST_PATH: &str = "safety/urgent-language.toml";

/// What is wrong with a phrase list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrgentLanguageError {
    #[error("{path}: not valid TOML for a phrase list: {problem}")]
    Parse { path: String, problem: String },
    #[error("{path}: phrase {index}: text is empty after normalisation")]
    EmptyPhrase { path: String, index: usize },
    #[error("{path}: phrase '{phrase}' is listed twice")]
    Duplicate { path: String, phrase: String },
    #[error("{path}: category of phrase '{phrase}' is empty")]
    EmptyCategory { path: String, phrase: String },
    #[error("{0}: the phrase list is empty")]
    Empty(String),
    #[error("phrase: '{0}' is not on the practice's list")]
    NotListed(String),
    #[error("phrase: '{0}' is already on the practice's list")]
    AlreadyListed(String),
    #[error("phrase: text is empty after normalisation")]
    EmptyText,
    #[error("phrase: longer than {MAX_PHRASE_CHARS} characters")]
    TooLong,
    #[error("category: must not be empty")]
    EmptyPracticeCategory,
    #[error("phrase: the practice's list already holds {MAX_PRACTICE_PHRASES} phrases of its own")]
    TooMany,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    review_status: String,
    version: u32,
    phrase: Vec<PhraseShape>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhraseShape {
    text: String,
    category: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// One phrase, stored normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    pub text: String,
    pub category: String,
}

/// A loaded, validated phrase list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseList {
    pub review_status: String,
    pub version: u32,
    pub phrases: Vec<Phrase>,
}

/// One phrase found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrgentMatch {
    pub phrase: String,
    pub category: String,
}

/// Lower case, compatibility form, apostrophes dropped, other punctuation
/// and symbols turned into spaces, whitespace collapsed, with one space at
/// each end (so whole-word matching is a substring test).
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.nfkc().flat_map(char::to_lowercase) {
        if matches!(c, '\'' | '’' | '‘' | 'ʼ' | '`') {
            continue;
        }
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

impl PhraseList {
    /// Parses and validates one phrase-list file.
    pub fn parse(file: &ContentFile) -> Result<Self, UrgentLanguageError> {
        let shape: FileShape =
            toml::from_str(&file.text).map_err(|e| UrgentLanguageError::Parse {
                path: file.path.clone(),
                problem: e.message().to_string(),
            })?;
        if shape.phrase.is_empty() {
            return Err(UrgentLanguageError::Empty(file.path.clone()));
        }
        let mut phrases: Vec<Phrase> = Vec::new();
        for (i, p) in shape.phrase.iter().enumerate() {
            let text = normalise(&p.text).trim().to_string();
            if text.is_empty() {
                return Err(UrgentLanguageError::EmptyPhrase {
                    path: file.path.clone(),
                    index: i + 1,
                });
            }
            if p.category.trim().is_empty() {
                return Err(UrgentLanguageError::EmptyCategory {
                    path: file.path.clone(),
                    phrase: text,
                });
            }
            if phrases.iter().any(|q| q.text == text) {
                return Err(UrgentLanguageError::Duplicate {
                    path: file.path.clone(),
                    phrase: text,
                });
            }
            phrases.push(Phrase {
                text,
                category: p.category.trim().to_string(),
            });
        }
        Ok(Self {
            review_status: shape.review_status,
            version: shape.version,
            phrases,
        })
    }

    /// The list shipped in `content/`.
    pub fn embedded() -> Result<Self, UrgentLanguageError> {
        let file = crate::content::embedded_under(PHRASE_LIST_PATH)
            .into_iter()
            .next()
            .ok_or_else(|| UrgentLanguageError::Empty(PHRASE_LIST_PATH.to_string()))?;
        Self::parse(&file)
    }

    /// Every listed phrase found in `message`, in list order, each once.
    /// Empty when nothing matched (then no risk task is raised).
    pub fn screen(&self, message: &str) -> Vec<UrgentMatch> {
        let text = normalise(message);
        self.phrases
            .iter()
            .filter(|p| text.contains(&format!(" {} ", p.text)))
            .map(|p| UrgentMatch {
                phrase: p.text.clone(),
                category: p.category.clone(),
            })
            .collect()
    }
}

/// The longest practice-specific phrase (characters, normalised).
pub const MAX_PHRASE_CHARS: usize = 200;

/// The most practice-specific phrases one practice may add (a list far
/// longer than the shipped one is a sign of pasting, not of review).
pub const MAX_PRACTICE_PHRASES: usize = 300;

/// Who reviewed a practice's list, and when (shown as "reviewed by X on
/// date"; the review itself is audited by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListReview {
    pub by: UserId,
    pub by_name: String,
    pub on: NaiveDate,
}

/// A practice's own urgent-language list: the shipped phrases minus those
/// its clinical lead removed, plus its own. Any change clears the review,
/// and only a reviewed list is used for screening (until then, the shipped
/// draft list is: erring on the side of flagging).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PracticePhraseList {
    /// Practice-specific phrases (normalised).
    pub added: Vec<PracticePhrase>,
    /// Shipped phrases the practice removed (normalised text).
    pub removed: Vec<String>,
    pub reviewed: Option<ListReview>,
}

/// One practice-specific phrase (normalised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PracticePhrase {
    pub text: String,
    pub category: String,
}

impl PracticePhraseList {
    /// The phrases this practice's list holds, shipped ones first.
    pub fn effective(&self, shipped: &PhraseList) -> PhraseList {
        let mut phrases: Vec<Phrase> = shipped
            .phrases
            .iter()
            .filter(|p| !self.removed.contains(&p.text))
            .cloned()
            .collect();
        phrases.extend(self.added.iter().map(|p| Phrase {
            text: p.text.clone(),
            category: p.category.clone(),
        }));
        PhraseList {
            review_status: match &self.reviewed {
                Some(r) => format!("reviewed by {} on {}", r.by_name, r.on),
                None => "practice changes awaiting review".to_string(),
            },
            version: shipped.version,
            phrases,
        }
    }

    /// Adds a practice-specific phrase (or restores a removed shipped one).
    /// Clears the review.
    pub fn add(
        &mut self,
        shipped: &PhraseList,
        text: &str,
        category: &str,
    ) -> Result<(), UrgentLanguageError> {
        let text = normalise(text).trim().to_string();
        if text.is_empty() {
            return Err(UrgentLanguageError::EmptyText);
        }
        if text.chars().count() > MAX_PHRASE_CHARS {
            return Err(UrgentLanguageError::TooLong);
        }
        let category = category.trim();
        if category.is_empty() {
            return Err(UrgentLanguageError::EmptyPracticeCategory);
        }
        if self
            .effective(shipped)
            .phrases
            .iter()
            .any(|p| p.text == text)
        {
            return Err(UrgentLanguageError::AlreadyListed(text));
        }
        if self.removed.contains(&text) {
            self.removed.retain(|r| *r != text);
        } else if self.added.len() >= MAX_PRACTICE_PHRASES {
            return Err(UrgentLanguageError::TooMany);
        } else {
            self.added.push(PracticePhrase {
                text,
                category: category.to_string(),
            });
        }
        self.reviewed = None;
        Ok(())
    }

    /// Removes a phrase (a practice one, or a shipped one for this
    /// practice). Clears the review.
    pub fn remove(&mut self, shipped: &PhraseList, text: &str) -> Result<(), UrgentLanguageError> {
        let text = normalise(text).trim().to_string();
        if self.added.iter().any(|p| p.text == text) {
            self.added.retain(|p| p.text != text);
        } else if shipped.phrases.iter().any(|p| p.text == text) && !self.removed.contains(&text) {
            self.removed.push(text);
        } else {
            return Err(UrgentLanguageError::NotListed(text));
        }
        self.reviewed = None;
        Ok(())
    }

    /// Records that `by` reviewed the list as it stands on `on`.
    pub fn record_review(&mut self, by: UserId, by_name: &str, on: NaiveDate) {
        self.reviewed = Some(ListReview {
            by,
            by_name: by_name.trim().chars().take(120).collect(),
            on,
        });
    }
}

/// The list a practice's messages are screened with: its own list once
/// reviewed, else the shipped (draft) list.
pub fn list_for(shipped: &PhraseList, practice: Option<&PracticePhraseList>) -> PhraseList {
    match practice {
        Some(p) if p.reviewed.is_some() => p.effective(shipped),
        _ => shipped.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> PhraseList {
        PhraseList::embedded().unwrap()
    }

    fn phrases(m: &str) -> Vec<String> {
        list().screen(m).into_iter().map(|m| m.phrase).collect()
    }

    #[test]
    fn the_shipped_list_loads_and_says_its_review_status() {
        let l = list();
        assert!(l.phrases.len() >= 20);
        assert!(!l.review_status.is_empty());
    }

    #[test]
    fn case_punctuation_and_apostrophes_do_not_hide_a_phrase() {
        assert_eq!(phrases("I want to END IT ALL!!"), vec!["end it all"]);
        assert_eq!(phrases("I just can't go on."), vec!["cant go on"]);
        assert_eq!(phrases("thinking about self-harm again"), vec!["self harm"]);
        assert_eq!(phrases("I  want\tto\n die"), vec!["want to die"]);
        assert_eq!(phrases("ＫＩＬＬ ＭＹＳＥＬＦ"), vec!["kill myself"]); // full-width
    }

    #[test]
    fn whole_words_only() {
        assert!(phrases("my friend it all went well").is_empty());
        assert!(phrases("the overdosed plant").is_empty());
    }

    #[test]
    fn negation_is_not_attempted_it_errs_on_flagging() {
        assert_eq!(phrases("I would never kill myself"), vec!["kill myself"]);
    }

    #[test]
    fn several_phrases_are_all_returned_once_with_categories() {
        let m = list().screen("suicide, suicide. I feel suicidal and cut myself");
        let got: Vec<(&str, &str)> = m
            .iter()
            .map(|m| (m.phrase.as_str(), m.category.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("suicide", "suicide"),
                ("suicidal", "suicide"),
                ("cut myself", "self_harm")
            ]
        );
    }

    #[test]
    fn empty_and_huge_messages() {
        assert!(phrases("").is_empty());
        assert!(phrases("   !!! ").is_empty());
        let huge = "all good here. ".repeat(20_000) + "better off dead";
        assert_eq!(phrases(&huge), vec!["better off dead"]);
    }

    #[test]
    fn a_practice_list_is_used_only_once_reviewed() {
        let shipped = list();
        let lead = UserId::random();
        let on = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let mut mine = PracticePhraseList::default();
        // Unreviewed: the shipped list screens; the practice phrase does not.
        mine.add(&shipped, "  Going to Jump  ", "suicide").unwrap();
        mine.remove(&shipped, "Kill myself!").unwrap();
        let used = list_for(&shipped, Some(&mine));
        assert_eq!(used, shipped);
        assert!(used.screen("I am going to jump").is_empty());
        // Reviewed: the practice's list screens.
        mine.record_review(lead, "Dr Lead", on);
        let used = list_for(&shipped, Some(&mine));
        assert_eq!(used.review_status, "reviewed by Dr Lead on 2026-11-21");
        assert_eq!(used.screen("I am GOING to jump.").len(), 1);
        assert!(used.screen("I would kill myself").is_empty());
        assert_eq!(used.phrases.len(), shipped.phrases.len());
        // Any change clears the review (the shipped list screens again).
        mine.add(&shipped, "kill myself", "suicide").unwrap();
        assert!(mine.reviewed.is_none() && mine.removed.is_empty());
        assert_eq!(list_for(&shipped, Some(&mine)), shipped);
        assert_eq!(list_for(&shipped, None), shipped);
    }

    #[test]
    fn practice_list_edits_name_the_problem() {
        let shipped = list();
        let mut mine = PracticePhraseList::default();
        assert_eq!(
            mine.add(&shipped, " !! ", "x"),
            Err(UrgentLanguageError::EmptyText)
        );
        assert_eq!(
            mine.add(&shipped, "jump", " "),
            Err(UrgentLanguageError::EmptyPracticeCategory)
        );
        // Duplicates of shipped or practice phrases, in any spelling.
        assert!(matches!(
            mine.add(&shipped, "KILL MYSELF", "suicide"),
            Err(UrgentLanguageError::AlreadyListed(_))
        ));
        mine.add(&shipped, "jump off", "suicide").unwrap();
        assert!(mine.add(&shipped, "Jump, off", "suicide").is_err());
        // Removing what is not listed (or removed twice).
        assert!(matches!(
            mine.remove(&shipped, "lovely weather"),
            Err(UrgentLanguageError::NotListed(_))
        ));
        mine.remove(&shipped, "suicide").unwrap();
        assert!(mine.remove(&shipped, "suicide").is_err());
        mine.remove(&shipped, "jump off").unwrap();
        assert!(mine.added.is_empty());
        assert_eq!(
            mine.add(&shipped, "x".repeat(10_000).as_str(), "long"),
            Err(UrgentLanguageError::TooLong)
        );
        assert!(mine.added.is_empty());
    }

    #[test]
    fn a_practice_adds_at_most_the_limit_and_a_refused_add_changes_nothing() {
        let shipped = list();
        let mut mine = PracticePhraseList::default();
        for i in 0..MAX_PRACTICE_PHRASES {
            mine.add(&shipped, &format!("phrase number {i}"), "other")
                .unwrap();
        }
        let before = mine.clone();
        assert_eq!(
            mine.add(&shipped, "one phrase too many", "other"),
            Err(UrgentLanguageError::TooMany)
        );
        assert_eq!(mine, before);
        // Restoring a removed shipped phrase is not a new phrase: allowed.
        mine.remove(&shipped, "suicide").unwrap();
        mine.add(&shipped, "suicide", "suicide").unwrap();
        assert!(mine.removed.is_empty());
        assert!(UrgentLanguageError::TooMany
            .to_string()
            .starts_with("phrase:"));
    }

    #[test]
    fn malformed_lists_name_the_problem() {
        let f = |text: &str| ContentFile {
            path: "x.toml".into(),
            text: text.into(),
        };
        let dup = "review_status='d'\nversion=1\n[[phrase]]\ntext='Kill Myself'\ncategory='s'\n[[phrase]]\ntext='kill myself!'\ncategory='s'\n";
        assert!(matches!(
            PhraseList::parse(&f(dup)),
            Err(UrgentLanguageError::Duplicate { .. })
        ));
        let empty = "review_status='d'\nversion=1\n[[phrase]]\ntext='!!'\ncategory='s'\n";
        assert!(matches!(
            PhraseList::parse(&f(empty)),
            Err(UrgentLanguageError::EmptyPhrase { index: 1, .. })
        ));
        assert!(matches!(
            PhraseList::parse(&f("review_status='d'\nversion=1\nphrase=[]")),
            Err(UrgentLanguageError::Empty(_))
        ));
        assert!(PhraseList::parse(&f("nonsense"))
            .unwrap_err()
            .to_string()
            .starts_with("x.toml:"));
    }
}
