//! The knowledge base shipped in `content/`, embedded at build time.
//!
//! Loaders in [`crate::instrument`], [`crate::knowledge`] and elsewhere take
//! `(path, text)` pairs, so a site can hand them files read at run time instead;
//! this module only supplies the built-in set.

include!(concat!(env!("OUT_DIR"), "/embedded_content.rs"));

/// One content file: its path relative to `content/` and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentFile {
    pub path: String,
    pub text: String,
}

/// All embedded files whose path starts with `prefix` (e.g. `"instruments/"`).
pub fn embedded_under(prefix: &str) -> Vec<ContentFile> {
    EMBEDDED
        .iter()
        .filter(|(path, _)| path.starts_with(prefix))
        .map(|(path, text)| ContentFile {
            path: (*path).to_string(),
            text: (*text).to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_paths_are_relative_and_sorted() {
        for (path, _) in EMBEDDED {
            assert!(!path.starts_with('/'), "{path}");
        }
        let paths: Vec<_> = EMBEDDED.iter().map(|(p, _)| *p).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
    }
}
