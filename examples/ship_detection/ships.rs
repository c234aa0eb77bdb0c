//! Ships as a port analyst counts them: instances (connected components of
//! a ship mask), matched to the true ships at IoU ≥ [`MATCH_IOU`]; ship
//! precision/recall/F1 per day; and arrivals
//! and departures between consecutive valid observations.
//!
//! **Matching.** Pairs of (predicted, true) instances are taken by
//! decreasing IoU, each instance used once, while the IoU is at least the
//! threshold (the greedy assignment COCO-style evaluations use; at
//! IoU ≥ 0.5 it is the only one, at 0.3 it keeps the best overlaps first).
//!
//! **Arrivals and departures.** Ships are followed from one *valid
//! observation* of a place to the next (days without one — no scene,
//! opaque cloud over the tile — are skipped: whatever happened there is
//! "unknown", reported on the next valid day with the gap it spans). A
//! ship of day `d` that overlaps no ship of the previous valid day (IoU
//! below the threshold) has **arrived**; a ship of the previous valid day
//! that overlaps none of day `d` has **departed**. A moored ship keeps its
//! pixels from day to day, so a ship that stays is neither; two ships
//! swapping a berth on one day are a departure and an arrival. Predicted
//! and true events match when they are of the same kind, reported on the
//! same day, and their ships overlap at IoU ≥ the threshold; the truth is
//! followed over the same valid days as the prediction, so both sides
//! see the same gaps.

use std::collections::BTreeMap;

/// The IoU at which a predicted ship is the true one (issue 32).
pub(crate) const MATCH_IOU: f64 = 0.3;

/// A ship: its pixels (row-major indexes into the tile), sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ship {
    pub(crate) pixels: Vec<u32>,
}

impl Ship {
    /// The ship's pixels shared with `other` over their union.
    pub(crate) fn iou(&self, other: &Ship) -> f64 {
        let (mut i, mut j, mut inter) = (0, 0, 0usize);
        while i < self.pixels.len() && j < other.pixels.len() {
            match self.pixels[i].cmp(&other.pixels[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    inter += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        let union = self.pixels.len() + other.pixels.len() - inter;
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    }
}

/// The ships of a `width`-wide ship mask: its 8-connected components of at
/// least `min_pixels` pixels, in order of their first pixel.
pub(crate) fn ships(mask: &[bool], width: usize, min_pixels: usize) -> Vec<Ship> {
    let width = width.max(1);
    let height = mask.len() / width;
    let mut seen = vec![false; mask.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..width * height {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut pixels = Vec::new();
        while let Some(p) = stack.pop() {
            pixels.push(p as u32);
            let (y, x) = ((p / width) as isize, (p % width) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (ny, nx) = (y + dy, x + dx);
                    if ny < 0 || nx < 0 || ny >= height as isize || nx >= width as isize {
                        continue;
                    }
                    let q = ny as usize * width + nx as usize;
                    if mask[q] && !seen[q] {
                        seen[q] = true;
                        stack.push(q);
                    }
                }
            }
        }
        if pixels.len() >= min_pixels {
            pixels.sort_unstable();
            out.push(Ship { pixels });
        }
    }
    out
}

/// Greedy one-to-one matching of `pred` to `truth` at IoU ≥ `min_iou`, best
/// overlaps first: the matched `(pred, truth)` index pairs.
pub(crate) fn match_ships(pred: &[Ship], truth: &[Ship], min_iou: f64) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, p) in pred.iter().enumerate() {
        for (j, t) in truth.iter().enumerate() {
            let iou = p.iou(t);
            if iou >= min_iou && iou > 0.0 {
                pairs.push((iou, i, j));
            }
        }
    }
    // decreasing IoU; ties in index order, so the result is deterministic
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut used_p, mut used_t) = (vec![false; pred.len()], vec![false; truth.len()]);
    let mut out = Vec::new();
    for (_, i, j) in pairs {
        if !used_p[i] && !used_t[j] {
            used_p[i] = true;
            used_t[j] = true;
            out.push((i, j));
        }
    }
    out
}

/// Matched, predicted-only and true-only counts: ship (or event) level
/// precision, recall and F1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Matches {
    pub(crate) tp: u64,
    pub(crate) fp: u64,
    pub(crate) fn_: u64,
}

impl Matches {
    pub(crate) fn add(&mut self, other: Matches) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }

    /// The counts of `n_pred` predictions and `n_true` truths with
    /// `matched` pairs.
    pub(crate) fn of(matched: usize, n_pred: usize, n_true: usize) -> Matches {
        Matches {
            tp: matched as u64,
            fp: n_pred.saturating_sub(matched) as u64,
            fn_: n_true.saturating_sub(matched) as u64,
        }
    }

    pub(crate) fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            return if self.fn_ == 0 { 1.0 } else { 0.0 };
        }
        self.tp as f64 / (self.tp + self.fp) as f64
    }

    pub(crate) fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            return if self.fp == 0 { 1.0 } else { 0.0 };
        }
        self.tp as f64 / (self.tp + self.fn_) as f64
    }

    /// F1; 1 when there was nothing to find and nothing was found.
    pub(crate) fn f1(&self) -> f64 {
        let d = 2 * self.tp + self.fp + self.fn_;
        if d == 0 {
            1.0
        } else {
            2.0 * self.tp as f64 / d as f64
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "precision": self.precision(), "recall": self.recall(), "f1": self.f1(),
            "tp": self.tp, "fp": self.fp, "fn": self.fn_,
        })
    }
}

/// Ship-level counts of one day.
pub(crate) fn day_matches(pred: &[Ship], truth: &[Ship]) -> Matches {
    Matches::of(
        match_ships(pred, truth, MATCH_IOU).len(),
        pred.len(),
        truth.len(),
    )
}

/// Arrival or departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Arrival,
    Departure,
}

/// A ship that arrived or departed between two valid observations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) kind: Kind,
    /// The day (index) it was seen: the first valid day with (arrival) or
    /// without (departure) the ship. It happened after the previous valid
    /// day, on or before this one; days between are unknown.
    pub(crate) day: usize,
    /// The ship: as seen on `day` (arrival) or on the previous valid day
    /// (departure).
    pub(crate) ship: Ship,
}

/// The arrivals and departures of a sequence of days: `days[d]` is `None`
/// where day `d` has no valid observation, else that day's ships. The
/// first valid day starts the record (no events on it).
pub(crate) fn events(days: &[Option<Vec<Ship>>]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut prev: Option<&Vec<Ship>> = None;
    for (d, ships) in days.iter().enumerate() {
        let Some(ships) = ships else { continue };
        if let Some(before) = prev {
            for s in ships {
                if !before.iter().any(|b| b.iou(s) >= MATCH_IOU) {
                    out.push(Event {
                        kind: Kind::Arrival,
                        day: d,
                        ship: s.clone(),
                    });
                }
            }
            for b in before {
                if !ships.iter().any(|s| s.iou(b) >= MATCH_IOU) {
                    out.push(Event {
                        kind: Kind::Departure,
                        day: d,
                        ship: b.clone(),
                    });
                }
            }
        }
        prev = Some(ships);
    }
    out
}

/// Predicted against true events: matched one to one when of the same kind
/// and day and their ships overlap at IoU ≥ [`MATCH_IOU`].
pub(crate) fn event_matches(pred: &[Event], truth: &[Event]) -> Matches {
    let mut groups: BTreeMap<(Kind, usize), (Vec<Ship>, Vec<Ship>)> = BTreeMap::new();
    for e in pred {
        groups
            .entry((e.kind, e.day))
            .or_default()
            .0
            .push(e.ship.clone());
    }
    for e in truth {
        groups
            .entry((e.kind, e.day))
            .or_default()
            .1
            .push(e.ship.clone());
    }
    let mut m = Matches::default();
    for (p, t) in groups.values() {
        m.add(day_matches(p, t));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`-wide mask from rows of `#` (set) and `.`.
    fn mask(rows: &[&str]) -> (Vec<bool>, usize) {
        let w = rows[0].len();
        (
            rows.iter()
                .flat_map(|r| r.chars().map(|c| c == '#'))
                .collect(),
            w,
        )
    }

    fn ship_of(rows: &[&str]) -> Vec<Ship> {
        let (m, w) = mask(rows);
        ships(&m, w, 1)
    }

    #[test]
    fn components_are_eight_connected_and_small_ones_dropped() {
        let (m, w) = mask(&["##...#", ".#....", "..#..#", "......"]);
        let s = ships(&m, w, 1);
        // the diagonal chain is one ship; the right column two singles
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].pixels, vec![0, 1, 7, 14]);
        assert_eq!(s[1].pixels, vec![5]);
        assert_eq!(s[2].pixels, vec![17]);
        assert_eq!(ships(&m, w, 2).len(), 1);
    }

    #[test]
    fn matching_takes_best_overlaps_once_each() {
        let truth = ship_of(&["####....", "........", "......##"]);
        // predictions covering half of each true ship (IoU 0.5), and a
        // false alarm
        let pred = ship_of(&["##......", "...#....", ".......#"]);
        assert_eq!(truth.len(), 2);
        assert_eq!(pred.len(), 3);
        assert!((pred[0].iou(&truth[0]) - 0.5).abs() < 1e-12);
        let m = match_ships(&pred, &truth, MATCH_IOU);
        assert_eq!(m, vec![(0, 0), (2, 1)]);
        let c = day_matches(&pred, &truth);
        assert_eq!(
            c,
            Matches {
                tp: 2,
                fp: 1,
                fn_: 0
            }
        );
        assert!((c.f1() - 0.8).abs() < 1e-12);
        // below the threshold nothing matches
        assert!(match_ships(&pred, &truth, 0.6).is_empty());
        // nothing to find, nothing found: a perfect day
        assert_eq!(day_matches(&[], &[]).f1(), 1.0);
        assert_eq!(day_matches(&pred, &[]).precision(), 0.0);
    }

    #[test]
    fn arrivals_and_departures_between_valid_days_with_unknown_gaps() {
        let a = ship_of(&["##......"]).remove(0);
        let b = ship_of(&[".....##."]).remove(0);
        let b_shifted = ship_of(&["......##"]).remove(0); // IoU 1/3: the same ship
        let c = ship_of(&["....#..."]).remove(0);
        let days = vec![
            Some(vec![a.clone()]),            // 0: start of the record
            Some(vec![a.clone(), b.clone()]), // 1: b arrives
            None,                             // 2: cloud: unknown
            None,                             // 3: no scene
            Some(vec![b_shifted.clone()]),    // 4: a left during 2-4; b stays
            Some(vec![c.clone()]),            // 5: b leaves, c arrives (same day)
            Some(vec![c.clone()]),            // 6: nothing
        ];
        let ev = events(&days);
        let got: Vec<(Kind, usize)> = ev.iter().map(|e| (e.kind, e.day)).collect();
        assert_eq!(
            got,
            vec![
                (Kind::Arrival, 1),
                (Kind::Departure, 4),
                (Kind::Arrival, 5),
                (Kind::Departure, 5),
            ]
        );
        assert_eq!(ev[1].ship, a);
        assert_eq!(ev[3].ship, b_shifted);
        // no valid day, or one: no events
        assert!(events(&[None, None]).is_empty());
        assert!(events(&[None, Some(vec![a.clone()])]).is_empty());

        // a prediction that misses b's departure, reports c's arrival a day
        // late (a wrong day is no match) and sees a's departure right
        let pred_days = vec![
            Some(vec![a.clone()]),
            Some(vec![a.clone(), b.clone()]),
            None,
            None,
            Some(vec![b.clone()]),
            Some(vec![b.clone()]),
            Some(vec![b.clone(), c.clone()]),
        ];
        let pred = events(&pred_days);
        let m = event_matches(&pred, &ev);
        // matched: b's arrival, a's departure; missed: c's arrival on day 5,
        // b's departure; false: c's arrival on day 6
        assert_eq!(
            m,
            Matches {
                tp: 2,
                fp: 1,
                fn_: 2
            }
        );
    }
}
