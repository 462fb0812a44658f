//! Urgent-language screening of secure messages.
//!
//! A transparent phrase list (`content/safety/urgent-language.toml`) is
//! matched against a normalised message. A match raises a risk task for the
//! care team, exactly like a risk answer on a questionnaire. Negation is not
//! attempted ("I would never kill myself" is flagged): the list errs on the
//! side of flagging, because a person reading one extra message costs little.
//! This is not a risk assessment and never replaces clinical judgement.

use crate::content::ContentFile;
use serde::Deserialize;
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
