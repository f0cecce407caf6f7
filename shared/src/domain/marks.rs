//! Event marks: what makes ingestion idempotent. Each counted event leaves a 48-bit mark
//! of its id on its entity's live item (by the hour of the event), so a retried batch is
//! recognised and counted once; older hours move to mark buckets. Below both the live
//! items and the tenant's gauges record, which carry marks.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::{Millis, HOUR_MS};

/// Most event marks the live item keeps before the oldest hours move to mark buckets, so a
/// busy entity's item stays under 1 KB.
pub const MAX_MARKS: usize = 48;

/// Bytes of a mark: 48 bits, so two of one entity's hour collide with odds of about
/// n²/2⁴⁹ (one in 10 million at 5,000 events in the hour), at 8 characters stored.
const MARK_BYTES: usize = 6;

/// The mark of an event id (or of a finished execution): the first [`MARK_BYTES`] bytes of
/// its SHA-256.
pub fn mark(text: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first[..MARK_BYTES].copy_from_slice(&digest[..MARK_BYTES]);
    u64::from_le_bytes(first)
}

/// The mark of an execution's finish, so a second finish or a start after the finish is
/// recognised whatever its event id.
pub fn finish_mark(execution_id: &str) -> u64 {
    mark(&format!("finished\u{0}{execution_id}"))
}

/// The hour an event's mark is filed under.
pub fn hour_of(at: Millis) -> i64 {
    at.div_euclid(HOUR_MS)
}

/// The marks of the events an entity has counted, by the hour of the event. Marks of
/// hours before the current one, and the oldest when there are more than [`MAX_MARKS`],
/// move to the entity's mark buckets (one per hour); `spilled_through` is the newest hour
/// any of whose marks moved, so only events of those hours need a bucket read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// Marks by hour, ascending.
    pub hours: Vec<(i64, Vec<u64>)>,
    /// Newest hour with marks in a mark bucket.
    pub spilled_through: Option<i64>,
}

impl Seen {
    /// Whether the item holds this mark (in any hour: an event sent without a timestamp is
    /// filed under the hour it arrived, and its retry may arrive in the next).
    pub fn contains(&self, m: u64) -> bool {
        self.hours.iter().any(|(_, ms)| ms.contains(&m))
    }

    /// Whether marks of `hour` may be in its mark bucket.
    pub fn spilled(&self, hour: i64) -> bool {
        self.spilled_through.is_some_and(|h| hour <= h)
    }

    /// Files a mark.
    pub fn insert(&mut self, hour: i64, m: u64) {
        match self.hours.binary_search_by_key(&hour, |(h, _)| *h) {
            Ok(i) => self.hours[i].1.push(m),
            Err(i) => self.hours.insert(i, (hour, vec![m])),
        }
    }

    fn len(&self) -> usize {
        self.hours.iter().map(|(_, ms)| ms.len()).sum()
    }

    /// Removes and returns the marks that must move to mark buckets at `now`: every hour
    /// before the current one, then the oldest hours while more than [`MAX_MARKS`] remain.
    pub fn take_spill(&mut self, now: Millis) -> Vec<(i64, Vec<u64>)> {
        self.take_spill_over(now, MAX_MARKS)
    }

    /// [`Seen::take_spill`] keeping at most `most` marks.
    pub fn take_spill_over(&mut self, now: Millis, most: usize) -> Vec<(i64, Vec<u64>)> {
        let current = hour_of(now);
        let mut out: Vec<(i64, Vec<u64>)> = Vec::new();
        while let Some((hour, _)) = self.hours.first() {
            if *hour >= current && self.len() <= most {
                break;
            }
            out.push(self.hours.remove(0));
        }
        if let Some(newest) = out.iter().map(|(h, _)| *h).max() {
            self.spilled_through = Some(self.spilled_through.map_or(newest, |s| s.max(newest)));
        }
        out
    }
}

/// Marks as base64 of their little-endian bytes: 8 bytes a mark where a list of numbers
/// takes about 12 and a list of strings 20.
fn pack_marks(marks: &[u64]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = marks
        .iter()
        .flat_map(|m| m.to_le_bytes().into_iter().take(MARK_BYTES))
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

fn unpack_marks(text: &str) -> Result<Vec<u64>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .map_err(|e| format!("bad marks: {e}"))?;
    if bytes.len() % MARK_BYTES != 0 {
        return Err("bad marks: not a whole number of marks".into());
    }
    Ok(bytes
        .chunks_exact(MARK_BYTES)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..MARK_BYTES].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect())
}

/// Marks in their stored form, for [`Seen`] and for mark buckets.
pub mod packed_marks {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes marks packed.
    pub fn serialize<S: Serializer>(marks: &[u64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::pack_marks(marks))
    }

    /// Deserializes packed marks.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let text = String::deserialize(d)?;
        super::unpack_marks(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
struct PackedSeen {
    /// `hour:marks` pairs, `;`-separated.
    #[serde(default)]
    h: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<i64>,
}

impl Serialize for Seen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self
            .hours
            .iter()
            .map(|(hour, ms)| format!("{hour}:{}", pack_marks(ms)))
            .collect::<Vec<_>>()
            .join(";");
        PackedSeen {
            h,
            s: self.spilled_through,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = PackedSeen::deserialize(d)?;
        let mut hours = Vec::new();
        for part in p.h.split(';').filter(|x| !x.is_empty()) {
            let (hour, marks) = part
                .split_once(':')
                .ok_or_else(|| serde::de::Error::custom(format!("bad marks entry {part:?}")))?;
            let hour: i64 = hour
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("bad marks hour {hour:?}")))?;
            hours.push((hour, unpack_marks(marks).map_err(serde::de::Error::custom)?));
        }
        Ok(Self {
            hours,
            spilled_through: p.s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_780_000_000_000;

    #[test]
    fn marks_spill_by_hour_and_by_count() {
        let mut s = Seen::default();
        let hour = hour_of(NOW);
        s.insert(hour - 1, 1);
        s.insert(hour, 2);
        assert!(s.contains(1) && s.contains(2) && !s.contains(3));
        let out = s.take_spill(NOW);
        assert_eq!(out, vec![(hour - 1, vec![1])]);
        assert!(s.spilled(hour - 1) && !s.spilled(hour));
        for m in 0..(MAX_MARKS as u64 + 5) {
            s.insert(hour, 100 + m);
        }
        let out = s.take_spill(NOW);
        assert_eq!(
            out.len(),
            1,
            "the current hour moves whole when over the cap"
        );
        assert!(s.hours.is_empty() && s.spilled(hour));
        let text = serde_json::to_string(&s).unwrap_or_default();
        let back: Seen = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, s);
    }

    #[test]
    fn marks_round_trip_packed() {
        let mut s = Seen::default();
        for m in [(1 << 48) - 1, 0, mark("e1"), finish_mark("x1")] {
            s.insert(7, m);
        }
        s.insert(9, 5);
        let text = serde_json::to_string(&s).unwrap_or_default();
        let back: Seen = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, s);
        assert_ne!(mark("x1"), finish_mark("x1"));
    }
}
