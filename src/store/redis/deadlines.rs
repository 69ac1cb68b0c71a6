//! The per-bucket deadline sets: what is due, and when the next deadline falls.

use super::codec::corrupt;
use super::RedisStore;
use crate::domain::{IntentId, Millis};
use crate::store::StoreError;

impl RedisStore {
    pub(super) async fn due_ids(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<IntentId>, StoreError> {
        let per_bucket = self
            .per_bucket(|b| {
                let mut cmd = redis::cmd("ZRANGEBYSCORE");
                cmd.arg(self.deadlines_key(b))
                    .arg("-inf")
                    .arg(now)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit);
                async move { self.query::<Vec<(String, f64)>>("due", &cmd).await }
            })
            .await?;
        let mut due: Vec<(f64, String)> = per_bucket
            .into_iter()
            .flatten()
            .map(|(id, at)| (at, id))
            .collect();
        due.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        due.truncate(limit);
        due.into_iter()
            .map(|(_, id)| {
                IntentId::parse(&id)
                    .ok_or_else(|| corrupt("deadline set", format!("bad id {id:?}")))
            })
            .collect()
    }

    pub(super) async fn first_deadline(&self) -> Result<Option<Millis>, StoreError> {
        let firsts = self
            .per_bucket(|b| {
                let mut cmd = redis::cmd("ZRANGE");
                cmd.arg(self.deadlines_key(b))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES");
                async move {
                    self.query::<Vec<(String, f64)>>("next_deadline", &cmd)
                        .await
                }
            })
            .await?;
        Ok(firsts
            .into_iter()
            .flatten()
            .map(|(_, at)| at as Millis)
            .min())
    }
}
