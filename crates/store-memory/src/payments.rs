//! The payments ports in memory: one mutex per store, held for the whole operation.

use async_trait::async_trait;
use phaze_payments::{
    Claim, ClaimToken, ProcessedEvents, StoreError, SubscriptionRecord, Subscriptions, UserId,
};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

#[derive(Clone, Debug)]
enum EventState {
    Claimed {
        token: String,
        until: OffsetDateTime,
    },
    Applied {
        at: OffsetDateTime,
    },
}

/// [`ProcessedEvents`] in memory.
#[derive(Default)]
pub struct MemoryProcessedEvents(Mutex<HashMap<String, EventState>>);

#[async_trait]
impl ProcessedEvents for MemoryProcessedEvents {
    async fn claim(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(event) {
            Some(EventState::Applied { .. }) => return Ok(Claim::Applied),
            Some(EventState::Claimed { until, .. }) if *until > now => return Ok(Claim::Held),
            _ => {}
        }
        map.insert(
            event.to_owned(),
            EventState::Claimed {
                token: token.as_str().to_owned(),
                until: now + lease,
            },
        );
        Ok(Claim::Won)
    }

    async fn mark_applied(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let holds = matches!(map.get(event), Some(EventState::Claimed { token: t, .. }) if t == token.as_str());
        if holds {
            map.insert(event.to_owned(), EventState::Applied { at: now });
        }
        Ok(holds)
    }

    async fn release(&self, event: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(map.get(event), Some(EventState::Claimed { token: t, .. }) if t == token.as_str())
        {
            map.remove(event);
        }
        Ok(())
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let len = map.len();
        map.retain(|_, s| match s {
            EventState::Applied { at } => *at >= before,
            EventState::Claimed { until, .. } => *until >= before,
        });
        Ok((len - map.len()) as u64)
    }
}

#[derive(Default)]
struct SubscriptionMaps {
    records: HashMap<UserId, (SubscriptionRecord, u64)>,
    customers: HashMap<String, UserId>,
}

/// [`Subscriptions`] in memory.
#[derive(Default)]
pub struct MemorySubscriptions(Mutex<SubscriptionMaps>);

#[async_trait]
impl Subscriptions for MemorySubscriptions {
    async fn get(&self, user: &UserId) -> Result<Option<(SubscriptionRecord, u64)>, StoreError> {
        let maps = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(maps.records.get(user).cloned())
    }

    async fn user_for_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError> {
        let maps = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(maps.customers.get(customer).copied())
    }

    async fn put(&self, record: &SubscriptionRecord, expected: u64) -> Result<bool, StoreError> {
        let mut maps = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let stored = maps.records.get(&record.user).map_or(0, |(_, v)| *v);
        if stored != expected {
            return Ok(false);
        }
        maps.records
            .insert(record.user, (record.clone(), expected + 1));
        if let Some(c) = &record.customer {
            maps.customers.insert(c.clone(), record.user);
        }
        Ok(true)
    }

    async fn remove(&self, user: &UserId) -> Result<bool, StoreError> {
        let mut maps = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((record, _)) = maps.records.remove(user) else {
            return Ok(false);
        };
        if let Some(c) = record.customer {
            if maps.customers.get(&c) == Some(user) {
                maps.customers.remove(&c);
            }
        }
        Ok(true)
    }
}
