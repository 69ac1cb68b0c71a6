//! The per-bucket audit streams: appends, and time-range reads merged across buckets.

use super::codec::{corrupt, to_json};
use super::connection::bucket_of;
use super::RedisStore;
use crate::domain::{IntentId, Millis};
use crate::store::{AuditRecord, StoreError};

/// Audit records may be stamped by replicas whose clocks differ from Redis's: a range
/// query reads this much extra stream on each side and filters by the record's own time.
const AUDIT_CLOCK_SLACK_MS: i64 = 60_000;

/// An `XRANGE` reply: `(entry id, [(field, value)])`.
type StreamEntries = Vec<(String, Vec<(String, Vec<u8>)>)>;

impl RedisStore {
    pub(super) async fn append_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        let bucket = record
            .intent_id
            .as_ref()
            .map(|i| bucket_of(i.as_str()))
            .unwrap_or(0);
        let key = self.audit_key(bucket);
        let json = to_json(&record)?;
        self.query::<String>(
            "audit",
            redis::cmd("XADD").arg(&key).arg("*").arg("r").arg(&json),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn audit_between(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let from = since.saturating_sub(AUDIT_CLOCK_SLACK_MS).max(0);
        let to = until.saturating_add(AUDIT_CLOCK_SLACK_MS);
        let per_bucket = self
            .per_bucket(|b| {
                let key = self.audit_key(b);
                async move { self.audit_bucket(&key, from, to, since, until).await }
            })
            .await?;
        let mut out: Vec<(AuditRecord, String)> = per_bucket.into_iter().flatten().collect();
        // Equal times keep the order Redis appended them in (`<ms>-<seq>` stream ids).
        let stream_order = |id: &str| {
            let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
            (
                ms.parse::<u64>().unwrap_or(0),
                seq.parse::<u64>().unwrap_or(0),
            )
        };
        out.sort_by(|a, b| {
            a.0.at
                .cmp(&b.0.at)
                .then_with(|| stream_order(&a.1).cmp(&stream_order(&b.1)))
        });
        out.truncate(limit);
        Ok(out.into_iter().map(|(r, _)| r).collect())
    }

    /// One intent's records: only its bucket's stream is read, from its creation (less the
    /// clock slack) to now, and filtered by id. The read is bounded by the bucket's traffic
    /// over the intent's life (an approval deadline), not by the whole log.
    pub(super) async fn audit_of_intent(
        &self,
        id: &IntentId,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let key = self.audit_key(bucket_of(id.as_str()));
        let from = since.saturating_sub(AUDIT_CLOCK_SLACK_MS).max(0);
        let mut out: Vec<AuditRecord> = self
            .audit_bucket(&key, from, Millis::MAX, since, Millis::MAX)
            .await?
            .into_iter()
            .map(|(record, _)| record)
            .filter(|record| record.intent_id.as_ref() == Some(id))
            .collect();
        // Stream order already breaks ties; a stable sort by the record's time keeps it.
        out.sort_by_key(|r| r.at);
        out.truncate(limit);
        Ok(out)
    }

    /// Audit records of one bucket's stream in the id window, filtered by their own time.
    async fn audit_bucket(
        &self,
        key: &str,
        from: Millis,
        to: Millis,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<(AuditRecord, String)>, StoreError> {
        const PAGE: usize = 1000;
        let mut out = Vec::new();
        let mut start = from.to_string();
        loop {
            let entries: StreamEntries = self
                .query(
                    "audit_range",
                    redis::cmd("XRANGE")
                        .arg(key)
                        .arg(&start)
                        .arg(to)
                        .arg("COUNT")
                        .arg(PAGE),
                )
                .await?;
            let full = entries.len() == PAGE;
            for (id, fields) in &entries {
                for (name, value) in fields {
                    if name == "r" {
                        let record: AuditRecord = serde_json::from_slice(value)
                            .map_err(|e| corrupt("audit record", e))?;
                        if record.at >= since && record.at < until {
                            out.push((record, id.clone()));
                        }
                    }
                }
            }
            match entries.last() {
                Some((last, _)) if full => start = format!("({last}"),
                _ => return Ok(out),
            }
        }
    }
}
