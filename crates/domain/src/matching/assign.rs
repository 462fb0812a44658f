//! Batch assignment of a day's waitlist: the optimal assignment under capacities.
//!
//! **Objective (lexicographic).** Match as many clients as possible; among those
//! assignments, maximise the total integer score. A client may only go to a clinician
//! it has an edge to; a clinician takes at most its capacity.
//!
//! **Method.** Min-cost flow on source → client (1) → clinician (edge) → sink
//! (capacity), where every client also has an "unmatched" arc straight to the sink.
//! Edge cost is `max_score − score` (≥ 0) and the unmatched arc costs
//! `D = clients · (max_score − min_score) + 1`, so one more matched client always
//! outweighs any difference in score. Clients are added one at a time (successive
//! shortest paths): each is routed along a shortest augmenting path found by Dijkstra
//! on reduced costs, stopping as soon as the sink is settled; only the nodes it settled
//! get their potential updated (`π(v) += d(v) − d(sink)`), so a client whose best
//! clinician is free costs one heap pass over its own edges. Every client always has
//! the unmatched arc, so after client *i* the assignment of clients 0‥i is optimal for
//! the lexicographic objective, and the final one is the exact optimum. Edges are held
//! in compressed rows (CSR) and each clinician's occupied places in a flat slot array:
//! memory is O(clients + clinicians + edges), work per client is proportional to the
//! part of the graph its shortest path explores — never a dense n × m matrix.
//!
//! **Determinism.** Clients are processed in index order (urgent ones first when
//! priority is on), edges in clinician order, and the heap breaks ties on node index,
//! so the same instance always gives the same assignment.

use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Most clients in one instance.
pub const MAX_CLIENTS: usize = 1_000_000;
/// Most clinicians in one instance.
pub const MAX_CLINICIANS: usize = 1_000_000;
/// Most edges in one instance.
pub const MAX_EDGES: usize = 50_000_000;
/// Largest absolute score.
pub const MAX_ABS_SCORE: i64 = 1_000_000_000;

const NONE: u32 = u32::MAX;

/// An instance that cannot be solved as given; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignInputError {
    #[error("input: not valid JSON: {0}")]
    Json(String),
    #[error("{field}: {problem}")]
    Field { field: String, problem: String },
    #[error("{field}: {value} is more than the limit of {limit}")]
    TooLarge {
        field: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("edges[{first}] and edges[{second}]: duplicate edge from client {client} to clinician {clinician}")]
    DuplicateEdge {
        first: usize,
        second: usize,
        client: u32,
        clinician: u32,
    },
    #[error("options.{field}: {problem}")]
    Option {
        field: &'static str,
        problem: String,
    },
}

fn field_err(field: impl Into<String>, problem: impl Into<String>) -> AssignInputError {
    AssignInputError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// One allowed pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub client: u32,
    pub clinician: u32,
    /// Higher is better.
    pub score: i64,
}

/// A checked batch instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentInstance {
    clients: usize,
    capacities: Vec<u32>,
    edges: Vec<Edge>,
}

/// Options the product API uses on top of the plain instance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AssignOptions {
    /// Clients to match first: matching one more urgent client outweighs any number
    /// of non-urgent ones. Empty means no priority; otherwise one flag per client.
    pub urgent: Vec<bool>,
    /// Fairness cap: no clinician gets more than this share of the day's clients
    /// (at least one place each), so the best-rated are not overloaded. 0 < share ≤ 1.
    pub max_share_per_clinician: Option<f64>,
}

/// The optimal assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Number of clients matched (the maximum possible).
    pub assigned: usize,
    /// Sum of the scores of the chosen edges (the maximum among maximum matchings).
    pub total_score: i64,
    /// Clinician for each client, or `None`.
    pub assignment: Vec<Option<u32>>,
}

impl Assignment {
    pub fn to_json(&self) -> Value {
        json!({
            "assigned": self.assigned,
            "total_score": self.total_score,
            "assignment": self.assignment,
        })
    }
}

impl AssignmentInstance {
    /// Checks sizes, capacities, edge indices and scores (duplicates are found when
    /// the graph is built).
    pub fn new(
        clients: usize,
        capacities: Vec<u32>,
        edges: Vec<Edge>,
    ) -> Result<Self, AssignInputError> {
        check_limit("clients", clients, MAX_CLIENTS)?;
        check_limit("capacities", capacities.len(), MAX_CLINICIANS)?;
        check_limit("edges", edges.len(), MAX_EDGES)?;
        for (k, e) in edges.iter().enumerate() {
            if e.client as usize >= clients {
                return Err(field_err(
                    format!("edges[{k}][0]"),
                    format!(
                        "client {} is out of range 0…{}",
                        e.client,
                        clients as i64 - 1
                    ),
                ));
            }
            if e.clinician as usize >= capacities.len() {
                return Err(field_err(
                    format!("edges[{k}][1]"),
                    format!(
                        "clinician {} is out of range 0…{}",
                        e.clinician,
                        capacities.len() as i64 - 1
                    ),
                ));
            }
            if e.score.abs() > MAX_ABS_SCORE {
                return Err(field_err(
                    format!("edges[{k}][2]"),
                    format!("score {} is beyond ±{MAX_ABS_SCORE}", e.score),
                ));
            }
        }
        Ok(Self {
            clients,
            capacities,
            edges,
        })
    }

    /// Parses `{"clients":N,"capacities":[…],"edges":[[client,clinician,score],…]}`.
    pub fn from_json(text: &str) -> Result<Self, AssignInputError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| AssignInputError::Json(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| field_err("input", "must be a JSON object"))?;
        let clients_v = obj
            .get("clients")
            .ok_or_else(|| field_err("clients", "is missing"))?;
        let clients = as_count(clients_v, "clients")?;
        check_limit("clients", clients, MAX_CLIENTS)?;
        let caps_v = obj
            .get("capacities")
            .and_then(Value::as_array)
            .ok_or_else(|| field_err("capacities", "must be an array of integers"))?;
        check_limit("capacities", caps_v.len(), MAX_CLINICIANS)?;
        let mut capacities = Vec::with_capacity(caps_v.len());
        for (j, c) in caps_v.iter().enumerate() {
            let field = format!("capacities[{j}]");
            match c.as_i64() {
                Some(x) if x < 0 => {
                    return Err(field_err(field, format!("capacity {x} is negative")))
                }
                Some(x) => capacities.push(u32::try_from(x.min(MAX_CLIENTS as i64)).unwrap_or(0)),
                None => return Err(field_err(field, format!("{c} is not an integer"))),
            }
        }
        let edges_v = obj
            .get("edges")
            .and_then(Value::as_array)
            .ok_or_else(|| field_err("edges", "must be an array of [client, clinician, score]"))?;
        check_limit("edges", edges_v.len(), MAX_EDGES)?;
        let mut edges = Vec::with_capacity(edges_v.len());
        for (k, e) in edges_v.iter().enumerate() {
            let triple = match e.as_array() {
                Some(t) if t.len() == 3 => t,
                _ => {
                    return Err(field_err(
                        format!("edges[{k}]"),
                        "must be [client, clinician, score]",
                    ))
                }
            };
            let mut ints = [0i64; 3];
            for (slot, (x, name)) in
                ints.iter_mut()
                    .zip(triple.iter().zip(["client", "clinician", "score"]))
            {
                *slot = x.as_i64().ok_or_else(|| {
                    field_err(
                        format!("edges[{k}] {name}"),
                        format!("{x} is not an integer"),
                    )
                })?;
            }
            let [client, clinician, score] = ints;
            let client = u32::try_from(client).map_err(|_| {
                field_err(
                    format!("edges[{k}] client"),
                    format!("{client} is out of range"),
                )
            })?;
            let clinician = u32::try_from(clinician).map_err(|_| {
                field_err(
                    format!("edges[{k}] clinician"),
                    format!("{clinician} is out of range"),
                )
            })?;
            edges.push(Edge {
                client,
                clinician,
                score,
            });
        }
        Self::new(clients, capacities, edges)
    }

    pub fn clients(&self) -> usize {
        self.clients
    }
    pub fn capacities(&self) -> &[u32] {
        &self.capacities
    }
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }
}

fn check_limit(field: &'static str, value: usize, limit: usize) -> Result<(), AssignInputError> {
    if value > limit {
        return Err(AssignInputError::TooLarge {
            field,
            value: value as u64,
            limit: limit as u64,
        });
    }
    Ok(())
}

fn as_count(v: &Value, field: &str) -> Result<usize, AssignInputError> {
    match v.as_i64() {
        Some(x) if x < 0 => Err(field_err(field, format!("{x} is negative"))),
        Some(x) => usize::try_from(x).map_err(|_| field_err(field, "is too large")),
        None if v.as_u64().is_some() => Err(AssignInputError::TooLarge {
            field: "clients",
            value: v.as_u64().unwrap_or(u64::MAX),
            limit: MAX_CLIENTS as u64,
        }),
        None => Err(field_err(field, format!("{v} is not an integer"))),
    }
}

/// The instance as compressed rows, ready to solve.
#[derive(Debug, Clone)]
pub struct AssignmentGraph {
    clients: usize,
    clinicians: usize,
    /// Edges of client r are `row_start[r]..row_start[r+1]`, sorted by clinician.
    row_start: Vec<u32>,
    col: Vec<u32>,
    score: Vec<i64>,
    /// Capacity clamped to the clinician's number of edges.
    capacity: Vec<u32>,
}

impl AssignmentGraph {
    /// Builds the rows; rejects a duplicate (client, clinician) pair.
    pub fn build(inst: &AssignmentInstance) -> Result<Self, AssignInputError> {
        let n = inst.clients;
        let m = inst.capacities.len();
        let mut row_start = vec![0u32; n + 1];
        for e in &inst.edges {
            if let Some(c) = row_start.get_mut(e.client as usize + 1) {
                *c += 1;
            }
        }
        for r in 0..n {
            let prev = row_start.get(r).copied().unwrap_or(0);
            if let Some(c) = row_start.get_mut(r + 1) {
                *c += prev;
            }
        }
        let total = inst.edges.len();
        let mut fill: Vec<u32> = row_start.clone();
        let mut order = vec![0u32; total];
        for (k, e) in inst.edges.iter().enumerate() {
            if let Some(pos) = fill.get_mut(e.client as usize) {
                if let Some(o) = order.get_mut(*pos as usize) {
                    *o = k as u32;
                }
                *pos += 1;
            }
        }
        let mut in_degree = vec![0u32; m];
        for r in 0..n {
            let (from, to) = (
                row_start.get(r).copied().unwrap_or(0) as usize,
                row_start.get(r + 1).copied().unwrap_or(0) as usize,
            );
            let Some(row) = order.get_mut(from..to) else {
                continue;
            };
            row.sort_unstable_by_key(|&k| {
                let e = inst.edges.get(k as usize);
                (e.map_or(0, |e| e.clinician), k)
            });
            for pair in row.windows(2) {
                if let [a, b] = *pair {
                    let (ea, eb) = (inst.edges.get(a as usize), inst.edges.get(b as usize));
                    if let (Some(ea), Some(eb)) = (ea, eb) {
                        if ea.clinician == eb.clinician {
                            return Err(AssignInputError::DuplicateEdge {
                                first: a as usize,
                                second: b as usize,
                                client: ea.client,
                                clinician: ea.clinician,
                            });
                        }
                    }
                }
            }
        }
        let mut col = Vec::with_capacity(total);
        let mut score = Vec::with_capacity(total);
        for &k in &order {
            if let Some(e) = inst.edges.get(k as usize) {
                col.push(e.clinician);
                score.push(e.score);
                if let Some(d) = in_degree.get_mut(e.clinician as usize) {
                    *d += 1;
                }
            }
        }
        let capacity = inst
            .capacities
            .iter()
            .zip(&in_degree)
            .map(|(&c, &d)| c.min(d))
            .collect();
        Ok(Self {
            clients: n,
            clinicians: m,
            row_start,
            col,
            score,
            capacity,
        })
    }

    /// Applies the fairness cap to the capacities.
    fn with_share_cap(&self, share: f64) -> Result<Self, AssignInputError> {
        if !(share > 0.0 && share <= 1.0) {
            return Err(AssignInputError::Option {
                field: "max_share_per_clinician",
                problem: format!("{share} is not in (0, 1]"),
            });
        }
        let cap = ((share * self.clients as f64).floor() as u32).max(1);
        let mut g = self.clone();
        for c in &mut g.capacity {
            *c = (*c).min(cap);
        }
        Ok(g)
    }

    /// Solves the plain instance: most matched, then highest total score.
    pub fn solve(&self) -> Assignment {
        self.solve_using(SolverMethod::Auto)
    }

    /// Solves the plain instance with a chosen shortest-path engine (both give the
    /// same optimal K and S; exposed for tests and benchmarks).
    pub fn solve_using(&self, method: SolverMethod) -> Assignment {
        let (lo, hi) = self.score_range();
        let big = self.unmatched_penalty(lo, hi);
        let penalty = vec![big; self.clients];
        let order: Vec<u32> = (0..self.clients as u32).collect();
        self.solve_inner(hi, &penalty, &order, method)
    }

    /// Dense enough (≥ half of all pairs are edges) and small enough (≤ 64 M pairs)
    /// for the array-scan engine.
    pub fn is_dense(&self) -> bool {
        let pairs = self.clients as u128 * self.clinicians as u128;
        pairs > 0 && pairs <= DENSE_MAX_PAIRS && 2 * self.col.len() as u128 >= pairs
    }

    /// Solves with the product options (priority for urgent clients, fairness cap).
    pub fn solve_with(&self, opts: &AssignOptions) -> Result<Assignment, AssignInputError> {
        let graph = match opts.max_share_per_clinician {
            Some(share) => self.with_share_cap(share)?,
            None => self.clone(),
        };
        if opts.urgent.is_empty() {
            return Ok(graph.solve());
        }
        if opts.urgent.len() != self.clients {
            return Err(AssignInputError::Option {
                field: "urgent",
                problem: format!(
                    "has {} flags for {} clients",
                    opts.urgent.len(),
                    self.clients
                ),
            });
        }
        let (lo, hi) = graph.score_range();
        let big = graph.unmatched_penalty(lo, hi);
        // One more urgent client matched outweighs every non-urgent penalty together.
        let urgent_big = i128::from(big) * (self.clients as i128 + 1);
        let urgent_big = i64::try_from(urgent_big)
            .ok()
            .filter(|&u| u < i64::MAX / 8)
            .ok_or(AssignInputError::Option {
                field: "urgent",
                problem: "instance too large for priority weighting".to_string(),
            })?;
        let penalty: Vec<i64> = opts
            .urgent
            .iter()
            .map(|&u| if u { urgent_big } else { big })
            .collect();
        let mut order: Vec<u32> = (0..self.clients as u32).collect();
        order.sort_by_key(|&r| !opts.urgent.get(r as usize).copied().unwrap_or(false));
        Ok(graph.solve_inner(hi, &penalty, &order, SolverMethod::Auto))
    }

    fn score_range(&self) -> (i64, i64) {
        let lo = self.score.iter().copied().min().unwrap_or(0);
        let hi = self.score.iter().copied().max().unwrap_or(0);
        (lo, hi)
    }

    /// Greater than any difference in total edge cost between two assignments.
    fn unmatched_penalty(&self, lo: i64, hi: i64) -> i64 {
        // ≤ 1e6 · 2e9 + 1 by the input limits: far inside i64.
        (self.clients as i64)
            .saturating_mul(hi - lo)
            .saturating_add(1)
    }

    fn solve_inner(
        &self,
        max_score: i64,
        penalty: &[i64],
        order: &[u32],
        method: SolverMethod,
    ) -> Assignment {
        let dense = match method {
            SolverMethod::Auto => self.is_dense(),
            SolverMethod::Sparse => false,
            SolverMethod::Dense => true,
        };
        let (row_col, row_score) = if dense {
            let mut s = DenseSolver::new(self, max_score);
            for &r in order {
                s.augment(r, penalty);
            }
            (s.state.row_col, s.state.row_score)
        } else {
            let mut s = Solver::new(self, max_score);
            for &r in order {
                let pen = penalty.get(r as usize).copied().unwrap_or(i64::MAX / 8);
                s.augment(r, penalty, pen);
            }
            (s.row_col, s.row_score)
        };
        let mut assigned = 0;
        let mut total = 0i64;
        let mut assignment = Vec::with_capacity(self.clients);
        for r in 0..self.clients {
            let c = row_col.get(r).copied().unwrap_or(NONE);
            if c == NONE {
                assignment.push(None);
            } else {
                assigned += 1;
                total += row_score.get(r).copied().unwrap_or(0);
                assignment.push(Some(c));
            }
        }
        Assignment {
            assigned,
            total_score: total,
            assignment,
        }
    }
}

/// Which shortest-path engine routes each client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SolverMethod {
    /// Dense engine when [`AssignmentGraph::is_dense`], else the sparse one.
    #[default]
    Auto,
    /// Dijkstra with a binary heap over the compressed rows.
    Sparse,
    /// Array-scan Dijkstra over a dense cost matrix (the Jonker–Volgenant / Crouse
    /// style: O(remaining clinicians) per step, no heap).
    Dense,
}

const DENSE_MAX_PAIRS: u128 = 64 * 1024 * 1024;
const DENSE_MISSING: u32 = u32::MAX;
const INF: i64 = i64::MAX;

/// Who holds which place: shared bookkeeping of the dense engine.
struct Places {
    row_col: Vec<u32>,
    row_score: Vec<i64>,
    slot_start: Vec<u32>,
    used: Vec<u32>,
    slot_row: Vec<u32>,
    slot_cost: Vec<i64>,
}

impl Places {
    fn new(g: &AssignmentGraph) -> Self {
        let mut slot_start = Vec::with_capacity(g.clinicians + 1);
        let mut acc = 0u32;
        for &c in &g.capacity {
            slot_start.push(acc);
            acc += c;
        }
        slot_start.push(acc);
        Places {
            row_col: vec![NONE; g.clients],
            row_score: vec![0; g.clients],
            slot_start,
            used: vec![0; g.clinicians],
            slot_row: vec![NONE; acc as usize],
            slot_cost: vec![0; acc as usize],
        }
    }

    /// Puts `r_in` (reaching `c` at edge cost `cost_in`) into clinician `c`, in the
    /// place of `out_row`, or in a free place when `out_row` is `NONE`.
    fn seat(&mut self, c: usize, r_in: u32, cost_in: i64, out_row: u32, max_score: i64) {
        let base = self.slot_start.get(c).copied().unwrap_or(0) as usize;
        let used = self.used.get(c).copied().unwrap_or(0) as usize;
        let slot = if out_row == NONE {
            if let Some(u) = self.used.get_mut(c) {
                *u += 1;
            }
            Some(base + used)
        } else {
            (base..base + used).find(|&s| self.slot_row.get(s).copied() == Some(out_row))
        };
        if let Some(s) = slot {
            if let (Some(sr), Some(sc)) = (self.slot_row.get_mut(s), self.slot_cost.get_mut(s)) {
                *sr = r_in;
                *sc = cost_in;
            }
        }
        let ri = r_in as usize;
        if let (Some(rc), Some(rs)) = (self.row_col.get_mut(ri), self.row_score.get_mut(ri)) {
            *rc = c as u32;
            *rs = max_score - cost_in;
        }
    }
}

/// Where the shortest path reached the sink from.
#[derive(Clone, Copy)]
enum SinkFrom {
    Nothing,
    /// The client's unmatched arc.
    Client(u32),
    /// A free place of the clinician.
    Clinician(u32),
}

#[derive(Clone, Copy)]
struct ColState {
    dist: i64,
    pot: i64,
    pred: u32,
    /// Has a free place (ends a path).
    free: bool,
}

/// The dense engine: same potentials and path rule as [`Solver`], but distances to
/// clinicians live in a flat array scanned linearly, and costs in a row-major matrix.
struct DenseSolver {
    n: usize,
    m: usize,
    max_score: i64,
    /// Row-major `max_score − score`, `DENSE_MISSING` where there is no edge.
    cost: Vec<u32>,
    capacity: Vec<u32>,
    pot_row: Vec<i64>,
    /// Per clinician: distance this round, potential, predecessor client — together,
    /// so one scan step touches one cache line.
    cols: Vec<ColState>,
    pred_row: Vec<u32>,
    remaining: Vec<u32>,
    settled_rows: Vec<(u32, i64)>,
    settled_cols: Vec<(u32, i64)>,
    state: Places,
}

impl DenseSolver {
    fn new(g: &AssignmentGraph, max_score: i64) -> Self {
        let (n, m) = (g.clients, g.clinicians);
        let mut cost = vec![DENSE_MISSING; n * m];
        for r in 0..n {
            let from = g.row_start.get(r).copied().unwrap_or(0) as usize;
            let to = g.row_start.get(r + 1).copied().unwrap_or(0) as usize;
            for e in from..to {
                let (Some(&c), Some(&s)) = (g.col.get(e), g.score.get(e)) else {
                    continue;
                };
                if let Some(x) = cost.get_mut(r * m + c as usize) {
                    // Fits: scores are within ±1e9, so max_score − s ≤ 2e9 < u32::MAX.
                    *x = u32::try_from(max_score - s).unwrap_or(DENSE_MISSING - 1);
                }
            }
        }
        DenseSolver {
            n,
            m,
            max_score,
            cost,
            capacity: g.capacity.clone(),
            pot_row: vec![0; n],
            cols: g
                .capacity
                .iter()
                .map(|&c| ColState {
                    dist: INF,
                    pot: 0,
                    pred: NONE,
                    free: c > 0,
                })
                .collect(),
            pred_row: vec![NONE; n],
            remaining: Vec::with_capacity(m),
            settled_rows: Vec::new(),
            settled_cols: Vec::new(),
            state: Places::new(g),
        }
    }

    /// Settles client `r` at distance `d`: relaxes its edges to unsettled clinicians
    /// and its unmatched arc, and returns the closest unsettled clinician afterwards
    /// (distance, position in `remaining`) — relaxation and the minimum in one pass.
    fn settle_row(&mut self, r: u32, d: i64, pen: i64, sink: &mut (i64, SinkFrom)) -> (i64, usize) {
        let ri = r as usize;
        self.settled_rows.push((r, d));
        let pr = self.pot_row.get(ri).copied().unwrap_or(0);
        let to_sink = d + pen + pr;
        if to_sink < sink.0 {
            *sink = (to_sink, SinkFrom::Client(r));
        }
        let matched = self.state.row_col.get(ri).copied().unwrap_or(NONE);
        let row = self.cost.get(ri * self.m..(ri + 1) * self.m).unwrap_or(&[]);
        let base = d + pr;
        let mut best = INF;
        let mut best_pos = usize::MAX;
        let mut best_free = false;
        for (pos, &j) in self.remaining.iter().enumerate() {
            let ju = j as usize;
            let c = row.get(ju).copied().unwrap_or(DENSE_MISSING);
            let Some(col) = self.cols.get_mut(ju) else {
                continue;
            };
            if c != DENSE_MISSING && j != matched {
                let nd = base + i64::from(c) - col.pot;
                if nd < col.dist {
                    col.dist = nd;
                    col.pred = r;
                }
            }
            // On a tie, a clinician with a free place ends the path sooner.
            if col.dist < best || (col.dist == best && col.free && !best_free) {
                best = col.dist;
                best_pos = pos;
                best_free = col.free;
            }
        }
        (best, best_pos)
    }

    /// The closest unsettled clinician (first one on ties).
    fn closest(&self) -> (i64, usize) {
        let mut best = INF;
        let mut best_pos = usize::MAX;
        let mut best_free = false;
        for (pos, &j) in self.remaining.iter().enumerate() {
            let Some(col) = self.cols.get(j as usize) else {
                continue;
            };
            if col.dist < best || (col.dist == best && col.free && !best_free) {
                best = col.dist;
                best_pos = pos;
                best_free = col.free;
            }
        }
        (best, best_pos)
    }

    fn augment(&mut self, start: u32, penalty: &[i64]) {
        let pen_of = |r: u32| penalty.get(r as usize).copied().unwrap_or(i64::MAX / 8);
        for c in &mut self.cols {
            c.dist = INF;
        }
        self.remaining.clear();
        self.remaining.extend(0..self.m as u32);
        self.settled_rows.clear();
        self.settled_cols.clear();
        let mut sink = (INF, SinkFrom::Nothing);
        let (mut best, mut best_pos) = self.settle_row(start, 0, pen_of(start), &mut sink);
        loop {
            if best_pos == usize::MAX || best >= sink.0 {
                break;
            }
            let j = self.remaining.swap_remove(best_pos);
            let ju = j as usize;
            self.settled_cols.push((j, best));
            let pc = self.cols.get(ju).map_or(0, |c| c.pot);
            if self.state.used.get(ju) < self.capacity.get(ju) && best + pc < sink.0 {
                sink = (best + pc, SinkFrom::Clinician(j));
            }
            let base = self.state.slot_start.get(ju).copied().unwrap_or(0) as usize;
            let used = self.state.used.get(ju).copied().unwrap_or(0) as usize;
            let d_col = best;
            (best, best_pos) = if used == 0 {
                self.closest()
            } else {
                (INF, usize::MAX)
            };
            for s in base..base + used {
                let r = self.state.slot_row.get(s).copied().unwrap_or(NONE);
                let sc = self.state.slot_cost.get(s).copied().unwrap_or(0);
                let pr = self.pot_row.get(r as usize).copied().unwrap_or(0);
                if let Some(p) = self.pred_row.get_mut(r as usize) {
                    *p = j;
                }
                // Distances only fall, so the last row's minimum is the minimum.
                (best, best_pos) = self.settle_row(r, d_col - sc + pc - pr, pen_of(r), &mut sink);
            }
        }
        let d_sink = sink.0;
        for &(r, d) in &self.settled_rows {
            if let Some(p) = self.pot_row.get_mut(r as usize) {
                *p += (d - d_sink).min(0);
            }
        }
        for &(j, d) in &self.settled_cols {
            if let Some(c) = self.cols.get_mut(j as usize) {
                c.pot += (d - d_sink).min(0);
            }
        }
        // Walk the path back from the sink.
        let (mut col, mut out_row) = match sink.1 {
            SinkFrom::Nothing => return,
            SinkFrom::Clinician(j) => (j, NONE),
            SinkFrom::Client(r) => {
                let old = self.state.row_col.get(r as usize).copied().unwrap_or(NONE);
                if let Some(x) = self.state.row_col.get_mut(r as usize) {
                    *x = NONE;
                }
                if r == start || old == NONE {
                    return;
                }
                (self.pred_row.get(r as usize).copied().unwrap_or(NONE), r)
            }
        };
        while col != NONE {
            let ju = col as usize;
            let r_in = self.cols.get(ju).map_or(NONE, |c| c.pred);
            if r_in == NONE {
                return;
            }
            let cost_in = self
                .cost
                .get(r_in as usize * self.m + ju)
                .map_or(0, |&c| i64::from(c));
            self.state.seat(ju, r_in, cost_in, out_row, self.max_score);
            let free = self.state.used.get(ju) < self.capacity.get(ju);
            if let Some(c) = self.cols.get_mut(ju) {
                c.free = free;
            }
            if r_in == start {
                return;
            }
            out_row = r_in;
            col = self.pred_row.get(r_in as usize).copied().unwrap_or(NONE);
        }
        debug_assert!(self.n > 0);
    }
}

/// Working state of the successive-shortest-path solver.
struct Solver<'g> {
    g: &'g AssignmentGraph,
    n: usize,
    sink: u32,
    max_score: i64,
    pot: Vec<i64>,
    dist: Vec<i64>,
    seen: Vec<u32>,
    done: Vec<u32>,
    pred: Vec<u32>,
    /// For a clinician node: the cost of the edge from its predecessor client.
    pred_cost: Vec<i64>,
    epoch: u32,
    row_col: Vec<u32>,
    row_score: Vec<i64>,
    slot_start: Vec<u32>,
    used: Vec<u32>,
    slot_row: Vec<u32>,
    slot_cost: Vec<i64>,
    heap: BinaryHeap<Reverse<(i64, u32)>>,
    settled: Vec<u32>,
}

impl<'g> Solver<'g> {
    fn new(g: &'g AssignmentGraph, max_score: i64) -> Self {
        let n = g.clients;
        let nodes = n + g.clinicians + 1;
        let mut slot_start = Vec::with_capacity(g.clinicians + 1);
        let mut acc = 0u32;
        for &c in &g.capacity {
            slot_start.push(acc);
            acc += c;
        }
        slot_start.push(acc);
        Solver {
            g,
            n,
            sink: (n + g.clinicians) as u32,
            max_score,
            pot: vec![0; nodes],
            dist: vec![0; nodes],
            seen: vec![0; nodes],
            done: vec![0; nodes],
            pred: vec![NONE; nodes],
            pred_cost: vec![0; nodes],
            epoch: 0,
            row_col: vec![NONE; n],
            row_score: vec![0; n],
            slot_start,
            used: vec![0; g.clinicians],
            slot_row: vec![NONE; acc as usize],
            slot_cost: vec![0; acc as usize],
            heap: BinaryHeap::new(),
            settled: Vec::new(),
        }
    }

    #[inline]
    fn at<T: Copy + Default>(v: &[T], i: usize) -> T {
        v.get(i).copied().unwrap_or_default()
    }

    #[inline]
    fn relax(&mut self, v: u32, nd: i64, from: u32, cost: i64) {
        let vi = v as usize;
        if Self::at(&self.done, vi) == self.epoch {
            return;
        }
        let fresh = Self::at(&self.seen, vi) != self.epoch;
        if fresh || nd < Self::at(&self.dist, vi) {
            if let (Some(s), Some(d), Some(p), Some(pc)) = (
                self.seen.get_mut(vi),
                self.dist.get_mut(vi),
                self.pred.get_mut(vi),
                self.pred_cost.get_mut(vi),
            ) {
                *s = self.epoch;
                *d = nd;
                *p = from;
                *pc = cost;
            }
            self.heap.push(Reverse((nd, v)));
        }
    }

    /// Routes client `start` along a shortest augmenting path.
    fn augment(&mut self, start: u32, penalty: &[i64], start_penalty: i64) {
        self.epoch += 1;
        self.heap.clear();
        self.settled.clear();
        let g = self.g;
        let n = self.n as u32;
        let sink = self.sink;
        self.relax(start, 0, NONE, 0);
        while let Some(Reverse((d, v))) = self.heap.pop() {
            let vi = v as usize;
            if Self::at(&self.done, vi) == self.epoch || d > Self::at(&self.dist, vi) {
                continue;
            }
            if let Some(x) = self.done.get_mut(vi) {
                *x = self.epoch;
            }
            self.settled.push(v);
            if v == sink {
                break;
            }
            let pv = Self::at(&self.pot, vi);
            if v < n {
                // A client: its other edges, and its unmatched arc.
                let matched = Self::at(&self.row_col, vi);
                let from = Self::at(&g.row_start, vi) as usize;
                let to = Self::at(&g.row_start, vi + 1) as usize;
                for e in from..to {
                    let c = Self::at(&g.col, e);
                    if c == matched {
                        continue;
                    }
                    let node = n + c;
                    let cost = self.max_score - Self::at(&g.score, e);
                    let nd = d + cost + pv - Self::at(&self.pot, node as usize);
                    self.relax(node, nd, v, cost);
                }
                let pen = if v == start {
                    start_penalty
                } else {
                    penalty.get(vi).copied().unwrap_or(start_penalty)
                };
                let nd = d + pen + pv - Self::at(&self.pot, sink as usize);
                self.relax(sink, nd, v, 0);
            } else {
                // A clinician: a free place ends the path; else move one of its clients.
                let c = (v - n) as usize;
                let used = Self::at(&self.used, c);
                if used < Self::at(&g.capacity, c) {
                    let nd = d + pv - Self::at(&self.pot, sink as usize);
                    self.relax(sink, nd, v, 0);
                }
                let base = Self::at(&self.slot_start, c) as usize;
                for s in base..base + used as usize {
                    let r = Self::at(&self.slot_row, s);
                    let nd =
                        d - Self::at(&self.slot_cost, s) + pv - Self::at(&self.pot, r as usize);
                    self.relax(r, nd, v, 0);
                }
            }
        }
        let d_sink = Self::at(&self.dist, sink as usize);
        for &v in &self.settled {
            let vi = v as usize;
            let dv = Self::at(&self.dist, vi);
            if let Some(p) = self.pot.get_mut(vi) {
                *p += dv - d_sink;
            }
        }
        self.apply_path(start);
    }

    /// Walks the path back from the sink and moves clients along it.
    fn apply_path(&mut self, start: u32) {
        let n = self.n as u32;
        let mut v = Self::at(&self.pred, self.sink as usize);
        let mut out_row = NONE;
        if v < n {
            // The path ends on an unmatched arc: client v is left unmatched.
            let r = v as usize;
            let old = Self::at(&self.row_col, r);
            if let Some(x) = self.row_col.get_mut(r) {
                *x = NONE;
            }
            if v == start || old == NONE {
                return;
            }
            out_row = v;
            v = Self::at(&self.pred, r);
        }
        while v != NONE && v >= n {
            let c = (v - n) as usize;
            let r_in = Self::at(&self.pred, v as usize);
            let cost_in = Self::at(&self.pred_cost, v as usize);
            let base = Self::at(&self.slot_start, c) as usize;
            let used = Self::at(&self.used, c) as usize;
            let slot = if out_row == NONE {
                if let Some(u) = self.used.get_mut(c) {
                    *u += 1;
                }
                Some(base + used)
            } else {
                (base..base + used).find(|&s| Self::at(&self.slot_row, s) == out_row)
            };
            if let Some(s) = slot {
                if let (Some(sr), Some(sc)) = (self.slot_row.get_mut(s), self.slot_cost.get_mut(s))
                {
                    *sr = r_in;
                    *sc = cost_in;
                }
            }
            let ri = r_in as usize;
            if let (Some(rc), Some(rs)) = (self.row_col.get_mut(ri), self.row_score.get_mut(ri)) {
                *rc = c as u32;
                *rs = self.max_score - cost_in;
            }
            if r_in == start {
                return;
            }
            out_row = r_in;
            v = Self::at(&self.pred, ri);
        }
    }
}

/// Solves a checked instance exactly.
pub fn solve(inst: &AssignmentInstance) -> Result<Assignment, AssignInputError> {
    Ok(AssignmentGraph::build(inst)?.solve())
}

/// The `tapestry match assign --input instance.json --json` contract: instance JSON
/// in, `{"assigned":K,"total_score":S,"assignment":[clinician|null,…]}` out.
pub fn assign_command(json_text: &str) -> Result<Value, AssignInputError> {
    let inst = AssignmentInstance::from_json(json_text)?;
    Ok(solve(&inst)?.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(clients: usize, caps: &[u32], edges: &[(u32, u32, i64)]) -> AssignmentInstance {
        AssignmentInstance::new(
            clients,
            caps.to_vec(),
            edges
                .iter()
                .map(|&(client, clinician, score)| Edge {
                    client,
                    clinician,
                    score,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn later_client_with_higher_score_displaces_earlier() {
        // Both want clinician 0 (one place); client 1 scores far higher.
        let a = solve(&inst(2, &[1], &[(0, 0, 1), (1, 0, 100)])).unwrap();
        assert_eq!(a.assigned, 1);
        assert_eq!(a.total_score, 100);
        assert_eq!(a.assignment, vec![None, Some(0)]);
    }

    #[test]
    fn cardinality_beats_score() {
        // Client 0 could take 0 (score 100), but then client 1 is unmatched.
        let a = solve(&inst(2, &[1, 1], &[(0, 0, 100), (0, 1, 0), (1, 0, 0)])).unwrap();
        assert_eq!(a.assigned, 2);
        assert_eq!(a.total_score, 0);
        assert_eq!(a.assignment, vec![Some(1), Some(0)]);
    }

    #[test]
    fn capacity_above_one_and_chains() {
        let a = solve(&inst(
            4,
            &[2, 1],
            &[(0, 0, 5), (1, 0, 5), (2, 0, 5), (2, 1, 1), (3, 1, 9)],
        ))
        .unwrap();
        // Only 3 places: clinician 0 takes two of 0,1,2; clinician 1 takes 3 (9).
        assert_eq!(a.assigned, 3);
        assert_eq!(a.total_score, 19);
    }

    #[test]
    fn priority_matches_urgent_client_first() {
        let g = AssignmentGraph::build(&inst(2, &[1], &[(0, 0, 100), (1, 0, 1)])).unwrap();
        let plain = g.solve();
        assert_eq!(plain.assignment, vec![Some(0), None]);
        let urgent = g
            .solve_with(&AssignOptions {
                urgent: vec![false, true],
                max_share_per_clinician: None,
            })
            .unwrap();
        assert_eq!(urgent.assignment, vec![None, Some(0)]);
    }

    #[test]
    fn fairness_cap_limits_each_clinician() {
        let g = AssignmentGraph::build(&inst(
            4,
            &[4, 4],
            &[
                (0, 0, 9),
                (1, 0, 9),
                (2, 0, 9),
                (3, 0, 9),
                (2, 1, 1),
                (3, 1, 1),
            ],
        ))
        .unwrap();
        assert_eq!(g.solve().assignment, vec![Some(0); 4]);
        let fair = g
            .solve_with(&AssignOptions {
                urgent: Vec::new(),
                max_share_per_clinician: Some(0.5),
            })
            .unwrap();
        assert_eq!(fair.assigned, 4);
        assert_eq!(fair.assignment.iter().filter(|c| **c == Some(0)).count(), 2);
        assert!(g
            .solve_with(&AssignOptions {
                urgent: Vec::new(),
                max_share_per_clinician: Some(0.0),
            })
            .is_err());
    }
}
