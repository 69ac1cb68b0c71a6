//! Listing from the per-bucket index sets: ids first (one pipelined round trip per bucket),
//! then only the page's intents.

use std::collections::HashMap;

use super::codec::{corrupt, parse_intent};
use super::connection::bucket_of;
use super::RedisStore;
use crate::domain::{Intent, IntentId, IntentState};
use crate::store::index::IndexKey;
use crate::store::{newest, Cursor, Filter, Page, StoreError};

impl RedisStore {
    /// Each bucket offers its newest [`Cursor::want`] matches. The index sets answer agent
    /// and state exactly: then only ids are read from every bucket, and only the page's
    /// intents are fetched.
    pub(super) async fn list_page(
        &self,
        filter: &Filter,
        at: Cursor<'_>,
    ) -> Result<Page, StoreError> {
        let (after, want) = (at.after, at.want());
        let sets = IndexKey::for_filter(filter);
        if !filter.beyond_index() {
            let per_bucket = self
                .per_bucket(|b| self.bucket_ids(b, sets.as_deref(), after, want))
                .await?;
            let ids = newest(per_bucket.into_iter().flatten().collect(), want);
            let intents = self.read_page(&ids).await?;
            if intents.len() == ids.len() {
                return Ok(Page::newest_first(intents, at.limit));
            }
            // An index entry outlived its record (a decided intent expired before the next
            // creation in its bucket trimmed the index): read on bucket by bucket.
        }
        let per_bucket = self
            .per_bucket(|b| self.list_bucket(b, sets.as_deref(), filter, after, want))
            .await?;
        let matched: Vec<Intent> = per_bucket.into_iter().flatten().collect();
        Ok(Page::newest_first(matched, at.limit))
    }

    /// The sizes of the state's index sets, one ZCARD per bucket. The buckets are asked
    /// concurrently: on one node they share the multiplexed connection's next write (one
    /// round trip), on a Cluster each goes to its slot's node (a pipeline may not cross slots).
    pub(super) async fn count_state(&self, state: IntentState) -> Result<u64, StoreError> {
        let set = IndexKey { agent: None, state };
        let per_bucket = self
            .per_bucket(|b| {
                let key = self.set_key(b, &set);
                async move {
                    self.query::<u64>("count_in", redis::cmd("ZCARD").arg(&key))
                        .await
                }
            })
            .await?;
        Ok(per_bucket.into_iter().sum())
    }

    /// Up to `count` ids of a bucket older than `after`, newest first, from the union of
    /// the index sets `sets` (the whole list index when `None`): one round trip.
    async fn bucket_ids(
        &self,
        bucket: u32,
        sets: Option<&[IndexKey]>,
        after: Option<&IntentId>,
        count: usize,
    ) -> Result<Vec<IntentId>, StoreError> {
        let keys: Vec<String> = match sets {
            Some(sets) => sets.iter().map(|k| self.set_key(bucket, k)).collect(),
            None => vec![self.index_key(bucket)],
        };
        let max = match after {
            Some(a) => format!("({a}"),
            None => "+".to_string(),
        };
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("ZREVRANGEBYLEX")
                .arg(key)
                .arg(&max)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(count);
        }
        let per_set: Vec<Vec<String>> = self.inner.redis.query_pipe("list", &pipe).await?;
        let ids = per_set
            .iter()
            .flatten()
            .map(|s| {
                IntentId::parse(s).ok_or_else(|| corrupt("list index", format!("bad id {s:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(newest(ids, count))
    }

    /// Reads intents of any buckets: one pipelined round trip per bucket, concurrently.
    async fn read_page(&self, ids: &[IntentId]) -> Result<Vec<Intent>, StoreError> {
        let mut by_bucket: HashMap<u32, Vec<IntentId>> = HashMap::new();
        for id in ids {
            by_bucket
                .entry(bucket_of(id.as_str()))
                .or_default()
                .push(id.clone());
        }
        let found =
            futures::future::try_join_all(by_bucket.values().map(|ids| self.read_many(ids)))
                .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Reads many intents of one bucket in one round trip.
    async fn read_many(&self, ids: &[IntentId]) -> Result<Vec<Intent>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGET").arg(self.intent_key(id)).arg("j");
        }
        let found: Vec<Option<Vec<u8>>> = self.inner.redis.query_pipe("list", &pipe).await?;
        found
            .into_iter()
            .flatten()
            .map(|j| parse_intent(&j))
            .collect()
    }

    /// Up to `limit` matching intents of one bucket, newest first, older than `after`, read
    /// from the index sets `sets` and checked against the whole filter.
    async fn list_bucket(
        &self,
        bucket: u32,
        sets: Option<&[IndexKey]>,
        filter: &Filter,
        after: Option<&IntentId>,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError> {
        // Unfiltered pages need exactly `limit`; a filter may need several batches.
        let batch = limit.clamp(16, 500);
        let mut out = Vec::new();
        let mut cursor = after.cloned();
        loop {
            let ids = self
                .bucket_ids(bucket, sets, cursor.as_ref(), batch)
                .await?;
            let exhausted = ids.len() < batch;
            cursor = ids.last().cloned();
            for intent in self.read_many(&ids).await? {
                if filter.matches(&intent) {
                    out.push(intent);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if exhausted {
                return Ok(out);
            }
        }
    }
}
