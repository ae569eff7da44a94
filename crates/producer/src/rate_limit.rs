//! Per-shard pacing: a producer that sends a shard no faster than the shard
//! takes records does not throttle itself into retry storms.
//!
//! Kinesis limits each shard, not each producer: many producers (one per
//! host) that share a stream share each shard's 1,000 records and 1 MiB a
//! second, and none of them knows how many others there are. So the rate a
//! producer may send a shard is learnt from the shard's own answers, with
//! no coordination between producers:
//!
//! - A shard is not paced until it throttles (or until a fixed
//!   `rate_limit_percent` paces every shard from the start, as the KPL's
//!   `RateLimit` does). An unthrottled producer pays nothing for pacing.
//! - When entries bound for a shard are throttled, the shard's rate is cut
//!   to [`CUT_TO_DELIVERED`] of what the shard took from this producer over
//!   the last second, and to at most [`CUT_FACTOR`] of its rate before:
//!   each producer falls back to its own share of what the shard gave out,
//!   so the producers together fall just under the shard's capacity in one
//!   step, however many they are. The measure starts with the first
//!   request answered, so a producer that has just begun is measured over
//!   its own time; a shard that took nothing from it starts from
//!   [`FLOOR_SHARE`] and probes quickly.
//!   A producer cuts a shard at most once per [`CUT_INTERVAL`], only for
//!   a request sent after its last cut (the answers of requests already on
//!   their way say nothing about the new rate), and not before it can tell
//!   whether the last cut helped (below). The shard's tokens are emptied,
//!   so its records wait before they go again: the backoff is timed per
//!   shard, not per request.
//! - While a paced shard holds records back, its rate grows by
//!   [`GROWTH_PER_SECOND`] of itself per second right after a cut, twice
//!   that [`GROWTH_DOUBLING`] later, and so on up to
//!   [`MAX_GROWTH_PER_SECOND`]: the producers together probe a shard by the
//!   same few percent a second near the rate that throttled, whatever their
//!   number (a fixed step per producer would grow a shard shared by a
//!   hundred hosts a hundred times faster), and faster when capacity has
//!   been free for a while (another producer left, the stream was
//!   resharded).
//! - A shard made by a reshard (a split or a merge) starts at the pace of
//!   the paced shards whose hash keys it takes over, the fastest of them
//!   if several, as if it had just been cut to it: each producer's share
//!   of the old shard is a fair share of the new one, which has the same
//!   capacity and fewer keys. Started unpaced, every producer sent each
//!   new shard as fast as its backlog allowed until it throttled (the
//!   scale-out bench's reshard run: 0.17 throttled entries per delivered
//!   one, against 0.05–0.08 without a reshard).
//! - A shard paced at [`RELEASE_SHARE`] of a shard's capacity that has not
//!   throttled for [`RELEASE_AFTER`] is no longer paced.
//! - Cuts stop when they do not help: when [`FUTILE_CUTS`] cuts in a row
//!   leave more than [`FUTILE_SHARE`] of the share of entries the shard
//!   refused (counting the requests sent in the second after the one the
//!   cut came in, when the service no longer counts what went before it,
//!   and over [`JUDGED_ENTRIES`] at least; a shard sent fewer in that
//!   second is cut after it unjudged), the refusals are not about this
//!   producer's rate (a fault; other producers that do not slow down), and
//!   slowing further would only delay everything: the shard is not cut
//!   again for [`FUTILE_PAUSE`], and its rate grows back meanwhile by
//!   [`GROWTH_PER_SECOND`], never faster (a shard still throttling has no
//!   free capacity to find). Then it is cut once more, and if that does not
//!   help either, not again for as long.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shardline_partition_key::ShardRange;

/// Records a shard takes per second.
/// <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>
pub const SHARD_RECORDS_PER_SECOND: f64 = 1_000.0;
/// Bytes a shard takes per second (1 MiB), partition keys included.
/// <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>
pub const SHARD_BYTES_PER_SECOND: f64 = 1_048_576.0;

/// A throttled shard is cut to this share of what it took from the
/// producer over the last second: just under the producer's share of the
/// shard, so that all the producers together end up just under its
/// capacity, and their next probe starts close to it.
pub const CUT_TO_DELIVERED: f64 = 0.9;
/// ... and to at most this share of its rate before the throttle: every cut
/// lowers the rate, even when the last second's deliveries were a burst.
pub const CUT_FACTOR: f64 = 0.9;
/// A producer cuts a shard's rate at most once this often: the service
/// counts its limits over a second, so throttling goes on for up to a
/// second after every producer has slowed down.
pub const CUT_INTERVAL: Duration = Duration::from_secs(1);
/// A paced shard's rate grows by this share of itself per second while it
/// holds records back, right after a cut (5%: a shard cut to 90% of its
/// capacity is probed again after about two seconds) ...
pub const GROWTH_PER_SECOND: f64 = 0.05;
/// ... doubling every this long without a throttle ...
pub const GROWTH_DOUBLING: Duration = Duration::from_secs(2);
/// ... up to this share of itself per second (doubling each second).
pub const MAX_GROWTH_PER_SECOND: f64 = 1.0;
/// The lowest rate a shard is paced at, as a share of a shard's capacity
/// (10 records/s): a producer never stops sending a shard altogether.
pub const FLOOR_SHARE: f64 = 0.01;
/// A cut that leaves more than this share of the refusals did not help ...
pub const FUTILE_SHARE: f64 = 0.75;
/// ... and after this many such cuts in a row a producer stops cutting:
/// with many producers, one or two may be unlucky (the others had not
/// slowed down yet); three, each judged a second after the last, are a
/// pattern. Stopping too early is the costly mistake: a producer that
/// keeps its rate while the others slow down takes their share in a storm.
pub const FUTILE_CUTS: u32 = 3;
/// Entries answered after a cut before whether it helped is judged: a
/// share refused of fewer says little (one refusal in ten is 10%, two are
/// 20%). A shard sent fewer in the second they are counted over is cut
/// again after that second, unjudged.
pub const JUDGED_ENTRIES: f64 = 30.0;
/// After cuts that did not help, a producer does not cut the shard again
/// for this long: refusals it cannot change cost little in that time, and
/// a shard it does come to send too fast is cut again soon after.
pub const FUTILE_PAUSE: Duration = Duration::from_secs(10);
/// A paced shard whose rate has grown back to this share of a shard's
/// capacity (the KPL's default `RateLimit`, 150%) ...
pub const RELEASE_SHARE: f64 = 1.5;
/// ... and that has not throttled for this long is no longer paced.
pub const RELEASE_AFTER: Duration = Duration::from_secs(30);
/// How soon to look again after records were held back: each request then
/// carries about this long's worth of a paced shard's rate, rather than a
/// record or two.
pub(crate) const PACE_INTERVAL: Duration = Duration::from_millis(50);
/// Deliveries are measured over this window, in [`SLOTS`] slots.
const MEASURE_WINDOW: Duration = Duration::from_secs(1);
const SLOTS: usize = 10;

/// Records and bytes delivered over the last [`MEASURE_WINDOW`].
#[derive(Debug, Clone)]
struct Delivered {
    /// Records, bytes and refused entries per slot.
    slots: [(f64, f64, f64); SLOTS],
    /// When the oldest request measured was sent: a measure younger than
    /// the window is divided by its own age, so that a producer that has
    /// just begun to send is not measured over the time before.
    since: Option<Instant>,
    /// The start of the current slot, and its index.
    slot_start: Instant,
    current: usize,
}

impl Delivered {
    fn new(now: Instant) -> Self {
        Delivered {
            slots: [(0.0, 0.0, 0.0); SLOTS],
            since: None,
            slot_start: now,
            current: 0,
        }
    }

    fn slot() -> Duration {
        MEASURE_WINDOW / SLOTS as u32
    }

    fn advance(&mut self, now: Instant) {
        let mut elapsed = now.saturating_duration_since(self.slot_start);
        let mut steps = 0;
        while elapsed >= Self::slot() && steps < SLOTS {
            self.current = (self.current + 1) % SLOTS;
            if let Some(slot) = self.slots.get_mut(self.current) {
                *slot = (0.0, 0.0, 0.0);
            }
            self.slot_start += Self::slot();
            elapsed -= Self::slot();
            steps += 1;
        }
        if elapsed >= Self::slot() {
            // Idle for more than the window: everything in it is old.
            self.slot_start = now;
            self.since = None;
        }
    }

    fn add(&mut self, records: f64, bytes: f64, sent: Instant, now: Instant) {
        self.advance(now);
        self.sent(sent);
        if let Some(slot) = self.slots.get_mut(self.current) {
            slot.0 += records;
            slot.1 += bytes;
        }
    }

    fn refused(&mut self, sent: Instant, now: Instant) {
        self.advance(now);
        self.sent(sent);
        if let Some(slot) = self.slots.get_mut(self.current) {
            slot.2 += 1.0;
        }
    }

    fn sent(&mut self, sent: Instant) {
        self.since = Some(self.since.map_or(sent, |since| since.min(sent)));
    }

    /// The share of entries refused over the window.
    fn refused_share(&mut self, now: Instant) -> f64 {
        self.advance(now);
        let (taken, refused) = self
            .slots
            .iter()
            .fold((0.0, 0.0), |(t, r), &(st, _, sr)| (t + st, r + sr));
        if taken + refused > 0.0 {
            refused / (taken + refused)
        } else {
            0.0
        }
    }

    /// The share of a shard's capacity delivered over the window: records
    /// or bytes, whichever is the larger share (`None`: nothing measured).
    fn share(&mut self, now: Instant) -> Option<f64> {
        self.advance(now);
        let (records, bytes) = self
            .slots
            .iter()
            .fold((0.0, 0.0), |(r, b), &(sr, sb, _)| (r + sr, b + sb));
        let seconds = now
            .saturating_duration_since(self.since?)
            .clamp(Self::slot(), MEASURE_WINDOW)
            .as_secs_f64();
        Some(
            (records / seconds / SHARD_RECORDS_PER_SECOND)
                .max(bytes / seconds / SHARD_BYTES_PER_SECOND),
        )
    }
}

/// One shard's pace: its rate as a share of a shard's capacity, and the
/// two token buckets (records and bytes) that hold it to that rate.
#[derive(Debug, Clone)]
struct Shard {
    id: String,
    /// The hash keys it holds, first and last.
    keys: (u128, u128),
    paced: bool,
    share: f64,
    records: f64,
    bytes: f64,
    refilled: Instant,
    /// When it was last cut; the growth speeds up from then.
    cut: Option<Instant>,
    /// When a throttle was last judged (a cut, or none because cuts did
    /// not help) ...
    judged: Instant,
    /// ... and the entries the shard took and refused of the requests sent
    /// in the [`CUT_INTERVAL`] after the next one (or until
    /// [`JUDGED_ENTRIES`] were): whether a cut helped shows there, once
    /// the service's count of the second before the cut has passed, and
    /// before the rate grows again.
    after_judged: (f64, f64),
    /// The share of entries refused over the second before the last cut.
    refused_at_cut: f64,
    /// Cuts in a row that left more than [`FUTILE_SHARE`] of that share.
    futile: u32,
    /// Growth is timed from here: the last cut, or long before it when the
    /// cut had no measure to go by.
    probe_from: Instant,
    /// Records were held back since the rate last grew.
    held_back: bool,
    grown: Instant,
    delivered: Delivered,
}

impl Shard {
    fn new(range: &ShardRange, ceiling: Option<f64>, now: Instant) -> Self {
        let share = ceiling.unwrap_or(RELEASE_SHARE);
        Shard {
            id: range.shard_id.clone(),
            keys: (range.starting_hash_key, range.ending_hash_key),
            paced: ceiling.is_some(),
            share,
            records: share * SHARD_RECORDS_PER_SECOND,
            bytes: share * SHARD_BYTES_PER_SECOND,
            refilled: now,
            cut: None,
            judged: now,
            after_judged: (0.0, 0.0),
            refused_at_cut: 0.0,
            futile: 0,
            probe_from: now,
            held_back: false,
            grown: now,
            delivered: Delivered::new(now),
        }
    }

    /// A shard made by a reshard, taking over keys from `parents` (the
    /// shards before it whose hash keys it overlaps): paced at the fastest
    /// paced parent's rate, as if just cut to it; unpaced if none was.
    fn inherit<'a>(
        range: &ShardRange,
        parents: impl Iterator<Item = &'a Shard>,
        ceiling: Option<f64>,
        now: Instant,
    ) -> Self {
        let mut shard = Shard::new(range, ceiling, now);
        let fastest = parents
            .filter(|p| p.paced && p.cut.is_some())
            .map(|p| p.share)
            .reduce(f64::max);
        if let Some(share) = fastest {
            shard.paced = true;
            shard.share = share;
            shard.records = share * SHARD_RECORDS_PER_SECOND;
            shard.bytes = share * SHARD_BYTES_PER_SECOND;
            shard.cut = Some(now);
            // No cut was judged: whatever it refuses next is not counted
            // against one (see `FUTILE_SHARE`).
            shard.refused_at_cut = 1.0;
        }
        shard
    }

    fn overlaps(&self, range: &ShardRange) -> bool {
        self.keys.0 <= range.ending_hash_key && range.starting_hash_key <= self.keys.1
    }

    /// Refills the buckets for the time since the last refill; each holds
    /// at most a second's worth.
    fn refill(&mut self, now: Instant) {
        let (records_cap, bytes_cap) = self.caps();
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.records = (self.records + elapsed * records_cap).min(records_cap);
        self.bytes = (self.bytes + elapsed * bytes_cap).min(bytes_cap);
        self.refilled = now;
    }

    /// Whether a request sent at `sent` went within [`CUT_INTERVAL`]
    /// after the last judgment, or before [`JUDGED_ENTRIES`] were answered.
    fn just_after_judged(&self, sent: Instant) -> bool {
        let (taken, refused) = self.after_judged;
        let since = sent.saturating_duration_since(self.judged);
        since >= CUT_INTERVAL && (since < CUT_INTERVAL * 2 || taken + refused < JUDGED_ENTRIES)
    }

    fn caps(&self) -> (f64, f64) {
        (
            self.share * SHARD_RECORDS_PER_SECOND,
            self.share * SHARD_BYTES_PER_SECOND,
        )
    }
}

/// What became of a throttled entry's shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Throttle {
    /// The shard's rate was cut to this share of a shard's capacity.
    Cut(f64),
    /// The shard is paced already and was cut recently, or cuts do not
    /// help: its rate stays.
    Paced,
}

/// The pace of every shard of the stream, by shard index in the shard map.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// A fixed `rate_limit_percent`: every shard paced from the start,
    /// never above it.
    ceiling: Option<f64>,
    shards: Vec<Shard>,
    /// All shards' deliveries, for a shard throttled before its own were
    /// measured.
    total: Delivered,
}

impl Pacer {
    /// A pacer for `shard_ids` (the shard map's order); `ceiling_percent`
    /// paces every shard from the start at that share of its capacity.
    pub(crate) fn new(ceiling_percent: Option<u32>, now: Instant) -> Self {
        Pacer {
            ceiling: ceiling_percent.map(|p| f64::from(p) / 100.0),
            shards: Vec::new(),
            total: Delivered::new(now),
        }
    }

    /// A new shard map (its open shards, in its order): shards that stay
    /// keep their pace; new ones start at the pace of the shards whose
    /// keys they take over, or unpaced (at the fixed ceiling) if those
    /// were not paced.
    pub(crate) fn set_shards(&mut self, ranges: &[ShardRange], now: Instant) {
        let before = std::mem::take(&mut self.shards);
        let by_id: HashMap<&str, &Shard> = before
            .iter()
            .map(|shard| (shard.id.as_str(), shard))
            .collect();
        self.shards = ranges
            .iter()
            .map(|range| match by_id.get(range.shard_id.as_str()) {
                Some(&kept) => kept.clone(),
                None => Shard::inherit(
                    range,
                    before.iter().filter(|old| old.overlaps(range)),
                    self.ceiling,
                    now,
                ),
            })
            .collect();
    }

    /// Whether any shard is paced: records then need their shard worked out
    /// before they go.
    pub(crate) fn is_active(&self) -> bool {
        self.shards.iter().any(|s| s.paced)
    }

    /// The shards paced now.
    pub(crate) fn paced_shards(&self) -> usize {
        self.shards.iter().filter(|s| s.paced).count()
    }

    /// Takes `records` records and `bytes` bytes from `shard`'s buckets if
    /// both have them, at `now`. An unpaced shard always has them.
    pub(crate) fn try_take(
        &mut self,
        shard: usize,
        records: f64,
        bytes: f64,
        now: Instant,
    ) -> bool {
        let Some(shard) = self.shards.get_mut(shard).filter(|s| s.paced) else {
            return true;
        };
        shard.refill(now);
        let (_, bytes_cap) = shard.caps();
        // A record larger than a whole bucket may go once the bucket is full.
        let bytes_needed = bytes.min(bytes_cap);
        if shard.records >= records && shard.bytes >= bytes_needed {
            shard.records -= records;
            shard.bytes -= bytes_needed;
            true
        } else {
            shard.held_back = true;
            false
        }
    }

    /// `shard` took an entry of `bytes` bytes, sent at `sent`, at `now`.
    pub(crate) fn delivered(&mut self, shard: usize, bytes: f64, sent: Instant, now: Instant) {
        self.total.add(1.0, bytes, sent, now);
        if let Some(shard) = self.shards.get_mut(shard) {
            shard.delivered.add(1.0, bytes, sent, now);
            if shard.just_after_judged(sent) {
                shard.after_judged.0 += 1.0;
            }
        }
    }

    /// `entries` entries of `bytes` bytes in all, sent at `sent`, were
    /// taken at `now` by shards not worked out (no shard was paced when
    /// they went): the whole stream's measure only, added once per answer.
    pub(crate) fn delivered_unmapped(
        &mut self,
        entries: f64,
        bytes: f64,
        sent: Instant,
        now: Instant,
    ) {
        self.total.add(entries, bytes, sent, now);
    }

    /// `shard` refused an entry sent at `sent`, at `now`. Every refusal of
    /// an answer is told before any is judged ([`Pacer::throttled`]), so
    /// that the share refused is the answer's whole.
    pub(crate) fn refused(&mut self, shard: usize, sent: Instant, now: Instant) {
        if let Some(shard) = self.shards.get_mut(shard) {
            shard.delivered.refused(sent, now);
            if shard.just_after_judged(sent) {
                shard.after_judged.1 += 1.0;
            }
        }
    }

    /// An entry bound for `shard`, in a request sent at `sent`, was
    /// throttled at `now`: the shard is paced from now on, its rate cut
    /// unless it was cut recently or cutting does not help.
    pub(crate) fn throttled(&mut self, shard: usize, sent: Instant, now: Instant) -> Throttle {
        let shards = self.shards.len().max(1) as f64;
        let fallback = self.total.share(now).map(|total| total / shards);
        let ceiling = self.ceiling.unwrap_or(RELEASE_SHARE);
        let Some(shard) = self.shards.get_mut(shard) else {
            return Throttle::Paced;
        };
        let cut_before = shard.paced && shard.cut.is_some();
        if cut_before {
            if sent <= shard.judged || now.saturating_duration_since(shard.judged) < CUT_INTERVAL {
                return Throttle::Paced;
            }
            if shard.futile >= FUTILE_CUTS {
                // Cuts did not help: none for a while. Then one, and if that
                // does not help either, none for a while again.
                if now.saturating_duration_since(shard.judged) < FUTILE_PAUSE {
                    return Throttle::Paced;
                }
                shard.futile = FUTILE_CUTS - 1;
            } else {
                // Whether the last cut helped: the share refused of the
                // requests sent in the second after the one it came in,
                // once enough were answered to tell. A shard sent too few
                // entries (aggregates) to tell in that second is simply
                // cut after it.
                let (taken, refused_after) = shard.after_judged;
                let judged = taken + refused_after >= JUDGED_ENTRIES;
                if !judged && now.saturating_duration_since(shard.judged) < CUT_INTERVAL * 2 {
                    return Throttle::Paced;
                }
                if judged {
                    if refused_after / (taken + refused_after) > shard.refused_at_cut * FUTILE_SHARE
                    {
                        shard.futile += 1;
                    } else {
                        shard.futile = 0;
                    }
                }
            }
            shard.judged = now;
            shard.after_judged = (0.0, 0.0);
            if shard.futile >= FUTILE_CUTS {
                return Throttle::Paced;
            }
        } else {
            shard.futile = 0;
        }
        // The share refused over the last second.
        let refused = shard.delivered.refused_share(now);
        // What the shard took from this producer; for a shard not measured
        // (unpaced without aggregation) its share of all deliveries.
        let measured = match shard.delivered.share(now) {
            Some(share) if share > 0.0 => Some(share),
            own if !shard.paced => fallback.or(own),
            own => own,
        };
        let before = if shard.paced { shard.share } else { ceiling };
        let (share, probe_from) = match measured {
            Some(measured) if measured > 0.0 => {
                ((before * CUT_FACTOR).min(measured * CUT_TO_DELIVERED), now)
            }
            _ => {
                // The shard took nothing: start low and probe fast.
                let fast =
                    GROWTH_DOUBLING.mul_f64((MAX_GROWTH_PER_SECOND / GROWTH_PER_SECOND).log2());
                (FLOOR_SHARE, now.checked_sub(fast).unwrap_or(now))
            }
        };
        let share = share.clamp(FLOOR_SHARE, ceiling);
        shard.paced = true;
        shard.share = share;
        shard.cut = Some(now);
        shard.judged = now;
        shard.after_judged = (0.0, 0.0);
        shard.refused_at_cut = refused;
        shard.probe_from = probe_from;
        shard.grown = now;
        shard.held_back = false;
        // The shard's records wait for its buckets to fill at the new rate.
        shard.records = 0.0;
        shard.bytes = 0.0;
        shard.refilled = now;
        Throttle::Cut(share)
    }

    /// Grows the rate of each paced shard that held records back since the
    /// last call, and releases those that have kept up for long enough.
    pub(crate) fn tick(&mut self, now: Instant) {
        let ceiling = self.ceiling;
        for shard in self.shards.iter_mut().filter(|s| s.paced) {
            let elapsed = now.saturating_duration_since(shard.grown);
            if elapsed < PACE_INTERVAL {
                continue;
            }
            shard.grown = now;
            let Some(cut_at) = shard.cut else {
                continue; // paced at the fixed ceiling from the start
            };
            if std::mem::take(&mut shard.held_back) {
                let quiet = now.saturating_duration_since(shard.probe_from);
                let rate = if shard.futile >= FUTILE_CUTS {
                    // Throttled all along, cuts or not: no speeding up.
                    GROWTH_PER_SECOND
                } else {
                    (GROWTH_PER_SECOND
                        * (quiet.as_secs_f64() / GROWTH_DOUBLING.as_secs_f64()).exp2())
                    .min(MAX_GROWTH_PER_SECOND)
                };
                // Compounded, so that the growth a second does not depend
                // on how often the dispatcher looks.
                let grown = shard.share * (1.0 + rate).powf(elapsed.as_secs_f64());
                shard.share = grown.min(ceiling.unwrap_or(RELEASE_SHARE));
            }
            if ceiling.is_none()
                && shard.share >= RELEASE_SHARE
                && now.saturating_duration_since(cut_at) >= RELEASE_AFTER
            {
                shard.paced = false;
                shard.cut = None;
            }
        }
    }

    /// The rate `shard` is paced at, as a share of a shard's capacity
    /// (`None`: not paced).
    #[cfg(test)]
    pub(crate) fn share(&self, shard: usize) -> Option<f64> {
        self.shards.get(shard).filter(|s| s.paced).map(|s| s.share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_partition_key::ShardMap;

    fn cut_to(throttle: Throttle) -> f64 {
        match throttle {
            Throttle::Cut(share) => share,
            Throttle::Paced => panic!("not cut"),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// A pacer made ten seconds before `now`, so that its measures span
    /// a whole window.
    fn pacer(ceiling: Option<u32>, shards: usize, now: Instant) -> Pacer {
        let made = now.checked_sub(Duration::from_secs(10)).unwrap_or(now);
        let mut pacer = Pacer::new(ceiling, made);
        pacer.set_shards(ShardMap::even(shards).ranges(), made);
        pacer
    }

    #[test]
    fn a_fixed_ceiling_takes_a_seconds_worth_then_its_rate() {
        let start = Instant::now();
        let mut limiter = pacer(Some(100), 2, start);
        let taken = (0..2_000)
            .filter(|_| limiter.try_take(0, 1.0, 10.0, start))
            .count();
        assert_eq!(taken, 1_000);
        // Another shard has its own buckets.
        assert!(limiter.try_take(1, 1.0, 10.0, start));
        // 100 ms later, 100 more records.
        let later = start + Duration::from_millis(100);
        let taken = (0..2_000)
            .filter(|_| limiter.try_take(0, 1.0, 10.0, later))
            .count();
        assert_eq!(taken, 100);
    }

    #[test]
    fn bytes_limit_too() {
        let start = Instant::now();
        let mut limiter = pacer(Some(100), 1, start);
        // 1 MiB/s in 100 KiB records: 10 at once.
        let taken = (0..50)
            .filter(|_| limiter.try_take(0, 1.0, 102_400.0, start))
            .count();
        assert_eq!(taken, 10);
        // At 150%, 15.
        let mut limiter = pacer(Some(150), 1, start);
        let taken = (0..50)
            .filter(|_| limiter.try_take(0, 1.0, 102_400.0, start))
            .count();
        assert_eq!(taken, 15);
    }

    #[test]
    fn an_unthrottled_shard_is_not_paced() {
        let start = Instant::now();
        let mut pacer = pacer(None, 2, start);
        assert!(!pacer.is_active());
        assert_eq!(
            (0..5_000)
                .filter(|_| pacer.try_take(0, 1.0, 100.0, start))
                .count(),
            5_000
        );
    }

    #[test]
    fn a_throttle_cuts_to_what_the_shard_took_and_empties_its_buckets() {
        let start = Instant::now();
        let mut pacer = pacer(None, 2, start);
        // The shard took 400 records of 100 bytes in the last second, in
        // requests answered 100 ms after they were sent.
        for i in 0..400 {
            let at = start + Duration::from_millis(i * 2);
            pacer.delivered(0, 100.0, at - Duration::from_millis(100), at);
        }
        let now = start + Duration::from_millis(900);
        assert!(close(
            cut_to(pacer.throttled(0, start, now)),
            0.4 * CUT_TO_DELIVERED
        ));
        assert!(pacer.is_active());
        assert_eq!(pacer.share(1), None, "the other shard is not paced");
        // Nothing goes at once; 100 ms later, 36 records (360/s).
        assert!(!pacer.try_take(0, 1.0, 100.0, now));
        let later = now + Duration::from_millis(100);
        let taken = (0..100)
            .filter(|_| pacer.try_take(0, 1.0, 100.0, later))
            .count();
        assert_eq!(taken, 36);
        // A throttle from a request sent before the cut, or within the cut
        // interval, does not cut again.
        assert_eq!(pacer.throttled(0, start, later), Throttle::Paced);
        assert_eq!(pacer.throttled(0, later, later), Throttle::Paced);
        // Requests sent in the second after the one the cut came in show
        // whether it helped; then a throttle cuts again, by at least the
        // cut factor.
        let after = now + CUT_INTERVAL;
        for i in 0..400 {
            let at = after + Duration::from_millis(i * 2);
            pacer.delivered(0, 100.0, at, at);
        }
        let share = cut_to(pacer.throttled(0, after, after + Duration::from_millis(900)));
        assert!(close(share, 0.36 * CUT_FACTOR), "{share}");
    }

    #[test]
    fn a_shard_throttled_before_any_measure_is_cut_to_its_share_of_the_total() {
        let start = Instant::now();
        let mut pacer = pacer(None, 4, start);
        // 2,000 records delivered in all, shards unknown (unpaced, no
        // aggregation): 500 a shard.
        for _ in 0..2_000 {
            pacer.delivered_unmapped(1.0, 10.0, start - Duration::from_secs(1), start);
        }
        let share = cut_to(pacer.throttled(2, start, start));
        assert!(close(share, 0.5 * CUT_TO_DELIVERED), "{share}");
        // Nothing delivered at all: the floor, probed fast (doubling in a
        // second).
        let mut fresh = super::tests::pacer(None, 1, start);
        let share = cut_to(fresh.throttled(0, start, start));
        assert!(close(share, FLOOR_SHARE), "{share}");
        let mut now = start;
        for _ in 0..20 {
            now += PACE_INTERVAL;
            fresh.try_take(0, 1e9, 0.0, now);
            fresh.tick(now);
        }
        let grown = fresh.share(0).unwrap_or_default();
        assert!((1.9..2.1).contains(&(grown / FLOOR_SHARE)), "{grown}");
    }

    #[test]
    fn a_measure_younger_than_the_window_counts_for_its_own_age() {
        let start = Instant::now();
        let mut pacer = Pacer::new(None, start);
        pacer.set_shards(ShardMap::even(1).ranges(), start);
        // 200 records in the producer's first half second: 400 a second.
        for i in 0..200 {
            let at = start + Duration::from_millis(i * 2);
            pacer.delivered(0, 10.0, at, at);
        }
        let now = start + Duration::from_millis(500);
        let share = cut_to(pacer.throttled(0, start, now));
        assert!(close(share, 0.4 * CUT_TO_DELIVERED), "{share}");
    }

    #[test]
    fn a_paced_shard_grows_while_it_holds_records_back_and_is_released() {
        let start = Instant::now();
        let mut pacer = pacer(None, 1, start);
        pacer.delivered(0, 10.0, start - Duration::from_secs(1), start);
        pacer.throttled(0, start, start);
        let cut = pacer.share(0).unwrap_or_default();
        // Not holding anything back: no growth.
        pacer.tick(start + Duration::from_secs(1));
        assert_eq!(pacer.share(0), Some(cut));
        // Holding back for a second, a second after the cut: 5% of the
        // rate a second, sped up by the time since the cut.
        let mut now = start + Duration::from_secs(1);
        assert!(!pacer.try_take(0, 1_000.0, 0.0, now));
        now += Duration::from_secs(1);
        pacer.tick(now);
        let grown = pacer.share(0).unwrap_or_default();
        let rate = GROWTH_PER_SECOND * (2.0 / GROWTH_DOUBLING.as_secs_f64()).exp2();
        assert!(close(grown, cut * (1.0 + rate)), "{grown}");
        // Grown to the release share and quiet for long enough: unpaced.
        for _ in 0..10_000 {
            now += Duration::from_millis(200);
            pacer.try_take(0, 1e9, 0.0, now);
            pacer.tick(now);
        }
        assert_eq!(pacer.share(0), None);
        assert!(!pacer.is_active());
    }

    #[test]
    fn throttling_that_slowing_down_does_not_change_stops_the_cuts() {
        let start = Instant::now();
        let mut pacer = pacer(None, 1, start);
        let mut now = start;
        // One second of sending at the paced rate (800 a second before any
        // cut), of which the shard refuses `share` however few are sent.
        let mut second = |pacer: &mut Pacer, share: f64| {
            let rate = pacer
                .share(0)
                .map_or(800.0, |s| s * SHARD_RECORDS_PER_SECOND);
            let sent = now - Duration::from_millis(100);
            for _ in 0..(rate * (1.0 - share)) as usize {
                pacer.delivered(0, 10.0, sent, now);
            }
            let at = now + Duration::from_millis(900);
            for _ in 0..(rate * share) as usize {
                pacer.refused(0, sent, at);
            }
            let throttle = pacer.throttled(0, now, at);
            now += CUT_INTERVAL;
            throttle
        };
        // A fifth refused: each cut (to 90% of what was taken, 640 a
        // second at first) leaves the refused share where it was, judged on
        // the second after the one the cut came in. After three such cuts
        // the cuts stop, for a while.
        let mut cuts = Vec::new();
        for _ in 0..7 {
            if let Throttle::Cut(share) = second(&mut pacer, 0.2) {
                cuts.push(share);
            }
        }
        assert_eq!(cuts.len(), FUTILE_CUTS as usize, "{cuts:?}");
        assert!(close(cuts[0], 0.64 * CUT_TO_DELIVERED), "{cuts:?}");
        assert!(
            (cuts[1] - 0.8 * cuts[0] * CUT_TO_DELIVERED).abs() < 0.01,
            "{cuts:?}"
        );
        let share = pacer.share(0);
        for _ in 1..FUTILE_PAUSE.as_secs() {
            assert_eq!(second(&mut pacer, 0.2), Throttle::Paced);
        }
        assert_eq!(pacer.share(0), share);
        // Then a cut is tried again, and one that does not help is enough
        // to stop the cuts again.
        let cut = cut_to(second(&mut pacer, 0.2));
        assert!(Some(cut) < share, "{cut}");
        assert_eq!(second(&mut pacer, 0.2), Throttle::Paced);
        assert_eq!(second(&mut pacer, 0.2), Throttle::Paced);
        assert_eq!(pacer.share(0), Some(cut));
    }

    #[test]
    fn probes_that_throttle_after_cuts_that_helped_are_cut_each_time() {
        let start = Instant::now();
        let mut pacer = pacer(None, 1, start);
        let mut now = start;
        for probe in 0..6 {
            // A second of sending, of which the shard refused a share: a
            // third at first, a twentieth at each probe after.
            let refused = if probe == 0 { 300 } else { 25 };
            for _ in 0..500 {
                pacer.delivered(0, 10.0, now, now);
            }
            let at = now + Duration::from_millis(900);
            for _ in 0..refused {
                pacer.refused(0, now, at);
            }
            assert!(
                matches!(pacer.throttled(0, now, at), Throttle::Cut(_)),
                "probe {probe}"
            );
            // The second after the one the cut came in: nothing refused,
            // then quiet seconds while the rate grows.
            now = at + CUT_INTERVAL + Duration::from_millis(100);
            for _ in 0..400 {
                pacer.delivered(0, 10.0, now, now);
            }
            now += Duration::from_secs(5);
        }
    }

    #[test]
    fn a_throttle_is_not_judged_on_a_few_entries() {
        let start = Instant::now();
        let mut pacer = pacer(None, 1, start);
        pacer.delivered(0, 10.0, start, start);
        pacer.throttled(0, start, start);
        // Five entries sent in the second after the one the cut came in:
        // too few to tell whether it helped; a throttle waits.
        let sent = start + Duration::from_millis(1_100);
        let now = start + Duration::from_millis(1_500);
        for _ in 0..5 {
            pacer.delivered(0, 10.0, sent, now);
        }
        assert_eq!(pacer.throttled(0, now, now), Throttle::Paced);
        // Thirty are enough (nothing refused: it helped), and a throttle
        // cuts again.
        for _ in 0..(JUDGED_ENTRIES as usize) {
            pacer.delivered(0, 10.0, sent, now);
        }
        assert!(matches!(pacer.throttled(0, now, now), Throttle::Cut(_)));
        // Too few in the second they are counted over: once it has passed,
        // a throttle cuts unjudged.
        let sent = now + Duration::from_millis(1_100);
        let later = now + Duration::from_millis(2_000);
        for _ in 0..5 {
            pacer.delivered(0, 10.0, sent, later);
        }
        assert!(matches!(pacer.throttled(0, later, later), Throttle::Cut(_)));
    }

    /// Shard `id` holding the keys from `first` to `last`.
    fn range(id: u32, first: u128, last: u128) -> ShardRange {
        ShardRange {
            shard_id: format!("shardId-{id:012}"),
            starting_hash_key: first,
            ending_hash_key: last,
        }
    }

    #[test]
    fn a_new_shard_map_keeps_the_pace_of_the_shards_that_stay() {
        let start = Instant::now();
        let mut pacer = pacer(None, 2, start);
        pacer.delivered(1, 10.0, start, start);
        pacer.throttled(1, start, start);
        let paced = pacer.share(1);
        assert!(paced.is_some());
        // shardId-1 stays, now the first of three; 2 and 3 take over
        // shardId-0's keys, which was not paced.
        let half = u128::MAX / 2;
        let ranges = [
            range(1, half + 1, u128::MAX),
            range(2, 0, half / 2),
            range(3, half / 2 + 1, half),
        ];
        pacer.set_shards(&ranges, start);
        assert_eq!(pacer.share(0), paced);
        assert_eq!(pacer.share(1), None);
        assert_eq!(pacer.share(2), None);
        assert_eq!(pacer.paced_shards(), 1);
    }

    #[test]
    fn shards_made_by_a_reshard_start_at_the_pace_of_those_they_replace() {
        let start = Instant::now();
        let mut pacer = pacer(None, 2, start);
        // Over the last second shardId-0 took 100 records, shardId-1 400.
        for i in 0..400 {
            let at = start + Duration::from_millis(i * 2);
            let sent = at - Duration::from_millis(100);
            pacer.delivered(1, 10.0, sent, at);
            if i % 4 == 0 {
                pacer.delivered(0, 10.0, sent, at);
            }
        }
        let later = start + Duration::from_millis(900);
        let slow = cut_to(pacer.throttled(0, start, later));
        let fast = cut_to(pacer.throttled(1, start, later));
        assert!(close(slow, 0.1 * CUT_TO_DELIVERED), "{slow}");
        assert!(close(fast, 0.4 * CUT_TO_DELIVERED), "{fast}");
        // A reshard: shardId-2 takes half of shardId-0's keys, shardId-3
        // the other half and all of shardId-1's ...
        let quarter = u128::MAX / 4;
        let ranges = [range(2, 0, quarter), range(3, quarter + 1, u128::MAX)];
        pacer.set_shards(&ranges, later);
        // ... the first goes at the pace of the shard it split from, the
        // second at the faster of the two it took keys from.
        assert_eq!(pacer.share(0), Some(slow));
        assert_eq!(pacer.share(1), Some(fast));
        // Each starts with a second's worth at its pace, and is probed
        // upwards like a shard just cut.
        let taken = (0..1_000)
            .filter(|_| pacer.try_take(0, 1.0, 10.0, later))
            .count();
        assert_eq!(taken, (slow * SHARD_RECORDS_PER_SECOND) as usize);
        pacer.tick(later + Duration::from_secs(1));
        let grown = pacer.share(0).unwrap_or_default();
        assert!(grown > slow && grown < slow * 1.1, "{slow} {grown}");
        // A throttle right after the reshard does not cut it again at once.
        assert_eq!(pacer.throttled(0, later, later), Throttle::Paced);
    }
}
