//! The port contracts, run against the memory adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use phaze_store_memory::{
    MemoryAccounts, MemoryAddressPool, MemoryAudit, MemoryDevices, MemoryProcessedEvents,
    MemoryRateLimits, MemorySessions, MemorySubscriptions, MemoryTokens,
};

phaze_testkit::session_store_contract!((MemorySessions::default(), ()));
phaze_testkit::account_store_contract!((MemoryAccounts::default(), ()));
phaze_testkit::token_store_contract!((MemoryTokens::default(), ()));
phaze_testkit::rate_limit_store_contract!((MemoryRateLimits::default(), ()));
phaze_testkit::processed_events_contract!((MemoryProcessedEvents::default(), ()));
phaze_testkit::subscriptions_contract!((MemorySubscriptions::default(), ()));
phaze_testkit::device_store_contract!((MemoryDevices::default(), ()));
phaze_testkit::address_pool_contract!((MemoryAddressPool::default(), ()));
phaze_testkit::audit_store_contract!((MemoryAudit::default(), ()));

mod flood;
