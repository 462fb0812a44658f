//! Matching: the right clinician for a client, explained, outcome-informed.
//!
//! * [`profile`] — what a clinician offers (licences, languages, formats, approaches,
//!   specialties, populations, capacity, availability) and how well they have done,
//!   measured, per problem domain (Match-POP style report card).
//! * [`instant`] — one client, right after intake: hard filters, then a small integer
//!   score, the top choices and the plain-language reasons for each.
//! * [`assign`] — a day's waitlist at once: the optimal assignment under capacities
//!   (most clients matched first, then the highest total score), solved exactly by a
//!   sparse successive-shortest-path min-cost-flow solver.
//!
//! * [`elevation`] — the client's most elevated problem domains from the intake
//!   measures and their own words (mapping as unverified data).
//! * [`outcomes`] — each finished episode counted once, for its presenting problem's
//!   domain, as reliably improved or not (the clinician's report card).
//! * [`rematch`] — early low session feedback with the current clinician suggests
//!   offering a free switch (thresholds as unverified data).
//! * [`waitlist`] — people waiting keep being measured and re-screened; risk and
//!   reliable deterioration alert the intake team and move them up.
//!
//! Everything here is pure. Holding a capacity slot under concurrent sign-ups is the
//! store's job; these functions only say who fits and who is best.

pub mod assign;
pub mod elevation;
pub mod instant;
pub mod outcomes;
pub mod profile;
pub mod rematch;
pub mod waitlist;
