//! Sleep diary: Tapestry's own form (not a validated instrument; no copyrighted wording). One
//! night's entry gives the standard CBT-I metrics (instruments.md §1.5):
//!
//! - time in bed (TIB) = out of bed − into bed;
//! - sleep-onset latency (SOL) as reported;
//! - wake after sleep onset (WASO) as reported;
//! - total sleep time (TST) = (final wake − lights out) − SOL − WASO;
//! - sleep efficiency (SE) = TST / TIB × 100.
//!
//! Times are clock times; each later event is taken to be the next occurrence of that clock time
//! at or after the previous event, so a night that crosses midnight (bed 23:30, wake 06:45) works
//! without dates. A whole entry must span less than 24 hours.

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

/// One night as the client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SleepDiaryEntry {
    /// Got into bed.
    pub bedtime: NaiveTime,
    /// Lights out / started trying to sleep.
    pub lights_out: NaiveTime,
    /// Minutes to fall asleep.
    pub sleep_onset_latency_min: u32,
    /// Number of awakenings (reported; not used in the arithmetic).
    pub awakenings: u32,
    /// Minutes awake after first falling asleep, before the final awakening.
    pub waso_min: u32,
    /// Final awakening.
    pub final_wake: NaiveTime,
    /// Got out of bed for the day.
    pub out_of_bed: NaiveTime,
}

/// Derived metrics, in minutes (efficiency in percent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SleepMetrics {
    pub time_in_bed_min: u32,
    pub total_sleep_time_min: u32,
    pub sleep_onset_latency_min: u32,
    pub wake_after_sleep_onset_min: u32,
    pub awakenings: u32,
    /// TST / TIB × 100, one decimal. `None` when time in bed is zero.
    pub sleep_efficiency_pct: Option<f64>,
}

/// Why an entry cannot be computed; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SleepDiaryError {
    #[error("sleep_onset_latency_min + waso_min ({awake} min) exceed the time from lights_out to final_wake ({window} min)")]
    AwakeExceedsWindow { awake: u32, window: u32 },
    #[error("{field}: the entry spans 24 hours or more; check the times")]
    TooLong { field: &'static str },
    #[error("{field}: `{text}` is not a time (HH:MM)")]
    BadTime { field: &'static str, text: String },
}

const DAY_MIN: u32 = 24 * 60;

fn minutes(t: NaiveTime) -> u32 {
    use chrono::Timelike;
    t.hour() * 60 + t.minute()
}

/// Minutes from `a` forward to the next occurrence of `b` (0 if equal).
fn forward(a: NaiveTime, b: NaiveTime) -> u32 {
    (minutes(b) + DAY_MIN - minutes(a)) % DAY_MIN
}

/// Parses "HH:MM" for `field`.
pub fn parse_time(field: &'static str, text: &str) -> Result<NaiveTime, SleepDiaryError> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").map_err(|_| SleepDiaryError::BadTime {
        field,
        text: text.chars().take(16).collect(),
    })
}

/// Computes the metrics of one night.
pub fn compute(entry: &SleepDiaryEntry) -> Result<SleepMetrics, SleepDiaryError> {
    let to_lights = forward(entry.bedtime, entry.lights_out);
    let window = forward(entry.lights_out, entry.final_wake);
    let to_out = forward(entry.final_wake, entry.out_of_bed);
    let span = to_lights + window + to_out;
    if span >= DAY_MIN {
        return Err(SleepDiaryError::TooLong {
            field: "out_of_bed",
        });
    }
    let awake = entry.sleep_onset_latency_min.saturating_add(entry.waso_min);
    if awake > window {
        return Err(SleepDiaryError::AwakeExceedsWindow { awake, window });
    }
    let tst = window - awake;
    let tib = span;
    let se = (tib > 0).then(|| (f64::from(tst) / f64::from(tib) * 1000.0).round() / 10.0);
    Ok(SleepMetrics {
        time_in_bed_min: tib,
        total_sleep_time_min: tst,
        sleep_onset_latency_min: entry.sleep_onset_latency_min,
        wake_after_sleep_onset_min: entry.waso_min,
        awakenings: entry.awakenings,
        sleep_efficiency_pct: se,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveTime {
        parse_time("t", s).unwrap()
    }

    #[test]
    fn night_across_midnight() {
        // Bed 22:45, lights out 23:15, 30 min to fall asleep, 2 awakenings totalling 40 min,
        // final wake 06:15, up 06:45. TIB 22:45→06:45 = 480; window 23:15→06:15 = 420;
        // TST = 420 − 30 − 40 = 350; SE = 350/480 = 72.9 %.
        let m = compute(&SleepDiaryEntry {
            bedtime: t("22:45"),
            lights_out: t("23:15"),
            sleep_onset_latency_min: 30,
            awakenings: 2,
            waso_min: 40,
            final_wake: t("06:15"),
            out_of_bed: t("06:45"),
        })
        .unwrap();
        assert_eq!(m.time_in_bed_min, 480);
        assert_eq!(m.total_sleep_time_min, 350);
        assert_eq!(m.sleep_efficiency_pct, Some(72.9));
    }

    #[test]
    fn bedtime_after_midnight_and_impossible_entries() {
        // Bed 00:30, lights 00:40, SOL 20, WASO 0, wake 07:00, up 07:00: TIB 390, TST 360, SE 92.3.
        let m = compute(&SleepDiaryEntry {
            bedtime: t("00:30"),
            lights_out: t("00:40"),
            sleep_onset_latency_min: 20,
            awakenings: 0,
            waso_min: 0,
            final_wake: t("07:00"),
            out_of_bed: t("07:00"),
        })
        .unwrap();
        assert_eq!((m.time_in_bed_min, m.total_sleep_time_min), (390, 360));
        assert_eq!(m.sleep_efficiency_pct, Some(92.3));
        let err = compute(&SleepDiaryEntry {
            bedtime: t("23:00"),
            lights_out: t("23:00"),
            sleep_onset_latency_min: 300,
            awakenings: 1,
            waso_min: 300,
            final_wake: t("06:00"),
            out_of_bed: t("06:00"),
        })
        .unwrap_err();
        assert!(err.to_string().contains("waso_min"), "{err}");
        assert!(parse_time("bedtime", "25:99")
            .unwrap_err()
            .to_string()
            .contains("bedtime"));
    }
}
