//! What an account sees and does on its billing page: its subscription, and the two operations
//! that send it to the provider (subscribe to a plan, manage the subscription). The `[payments]`
//! settings section is [`PaymentSettings`] itself.

use phaze_ids::UserId;
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::gateway::{
    BillingPortalRequest, CheckoutRequest, GatewayError, Hosted, IdempotencyKey, PaymentGateway,
};
use crate::ports::{StoreError, Subscriptions};
use crate::signature::WebhookVerifier;
use crate::subscription::Status;
use crate::webhooks::WebhookPolicy;

/// A plan customers can subscribe to: one Stripe price.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// What forms and `/api/v1/me` call it (`basic`): ASCII letters, digits, `-`, `_`.
    pub id: String,
    /// What the page shows (`Basic, 5 devices`).
    pub name: String,
    /// Its Stripe price id (`price_…`).
    pub price: String,
}

/// `[payments]`: the webhook's secrets, Stripe's API, and the plans. Defaults: no secrets (every
/// delivery refused), Stripe's API, no plans (the billing page offers nothing).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentSettings {
    /// The webhook endpoint's signing secrets (`whsec_…`); several while one is rolled.
    pub webhook_secrets: Vec<SecretString>,
    /// How far a signature's time may be from now, either way, in seconds (300).
    pub webhook_tolerance_secs: u32,
    /// How long a delivery holds an event before another may take it over, in seconds (60).
    pub claim_lease_secs: u32,
    /// How long applied event ids are kept, in days (30; Stripe retries for 3).
    pub retention_days: u32,
    /// Stripe's API base URL (`https://api.stripe.com`; tests point it at a fake).
    pub stripe_api_base: String,
    /// The secret API key; empty: checkout is unavailable.
    pub stripe_secret_key: SecretString,
    /// Per attempt, in milliseconds (10,000).
    pub stripe_timeout_ms: u32,
    /// Retries after a network error or a 5xx (2).
    pub stripe_retries: u32,
    /// The plans offered.
    pub plans: Vec<Plan>,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            webhook_secrets: Vec::new(),
            webhook_tolerance_secs: 300,
            claim_lease_secs: 60,
            retention_days: 30,
            stripe_api_base: "https://api.stripe.com".into(),
            stripe_secret_key: SecretString::default(),
            stripe_timeout_ms: 10_000,
            stripe_retries: 2,
            plans: Vec::new(),
        }
    }
}

impl PaymentSettings {
    /// Checks the values; the error names the key.
    ///
    /// # Errors
    /// A message naming the first bad key.
    pub fn validate(&self) -> Result<(), String> {
        use secrecy::ExposeSecret;
        // An empty secret would verify signatures anyone can compute (HMAC takes an empty key):
        // `PHAZE__PAYMENTS__WEBHOOK_SECRETS=` or a trailing comma must stop the process instead.
        for secret in &self.webhook_secrets {
            let s = secret.expose_secret();
            if s.trim() != s || s.len() < "whsec_".len() + 16 || !s.starts_with("whsec_") {
                return Err(
                    "payments.webhook_secrets: each must be an endpoint's signing secret (whsec_…, no spaces, no empty entries)"
                        .into(),
                );
            }
        }
        if !(1..=3600).contains(&self.webhook_tolerance_secs) {
            return Err("payments.webhook_tolerance_secs must be 1..=3600".into());
        }
        if !(5..=3600).contains(&self.claim_lease_secs) {
            return Err("payments.claim_lease_secs must be 5..=3600".into());
        }
        if self.retention_days < 4 {
            return Err("payments.retention_days must be at least 4 (Stripe retries for 3)".into());
        }
        if self.stripe_retries > 10 || self.stripe_timeout_ms == 0 {
            return Err("payments.stripe_retries must be 0..=10 and stripe_timeout_ms > 0".into());
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.plans {
            let id_ok = !p.id.is_empty()
                && p.id.len() <= 32
                && p.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !id_ok {
                return Err(format!("payments.plans: invalid id {:?}", p.id));
            }
            if !seen.insert(p.id.as_str()) {
                return Err(format!("payments.plans: id {:?} twice", p.id));
            }
            if !p.price.starts_with("price_") || p.name.trim().is_empty() {
                return Err(format!(
                    "payments.plans.{}: price must be a Stripe price id (price_…) and name set",
                    p.id
                ));
            }
        }
        Ok(())
    }

    /// The verifier over the configured secrets.
    pub fn verifier(&self) -> WebhookVerifier {
        WebhookVerifier::new(
            self.webhook_secrets.clone(),
            Duration::seconds(self.webhook_tolerance_secs.into()),
        )
    }

    /// The webhook policy.
    pub fn webhook_policy(&self) -> WebhookPolicy {
        WebhookPolicy {
            claim_lease: Duration::seconds(self.claim_lease_secs.into()),
        }
    }

    /// Applied ids older than this are purged.
    pub fn retention(&self) -> Duration {
        Duration::days(self.retention_days.into())
    }
}

/// An account's subscription as its pages show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overview {
    /// The status (`none` when there is no record).
    pub status: Status,
    /// The configured plan of its price, if it is one.
    pub plan: Option<Plan>,
    /// The end of the current period.
    pub current_period_end: Option<OffsetDateTime>,
    /// Whether the account has a Stripe customer (so the billing portal can open).
    pub has_customer: bool,
}

/// Why a billing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// No such plan (a forged form): `400`.
    #[error("unknown plan")]
    UnknownPlan,
    /// The account has no customer yet, so there is no subscription to manage: `400`.
    #[error("no subscription to manage")]
    NoCustomer,
    /// The account's subscription runs already (it is managed in the billing portal): `400`.
    #[error("already subscribed")]
    AlreadySubscribed,
    /// The provider failed or refused.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The billing operations of the portal's pages.
#[derive(Clone)]
pub struct Billing {
    plans: Vec<Plan>,
    gateway: Arc<dyn PaymentGateway>,
    subscriptions: Arc<dyn Subscriptions>,
    billing_url: String,
}

impl Billing {
    /// Billing for `plans` through `gateway`, reading `subscriptions`; the provider sends the
    /// browser back to `billing_url` (the portal's `/billing`, absolute).
    pub fn new(
        plans: Vec<Plan>,
        gateway: Arc<dyn PaymentGateway>,
        subscriptions: Arc<dyn Subscriptions>,
        billing_url: String,
    ) -> Self {
        Self {
            plans,
            gateway,
            subscriptions,
            billing_url,
        }
    }

    /// The plans offered.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// The account's subscription.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn overview(&self, user: &UserId) -> Result<Overview, StoreError> {
        let record = self.subscriptions.get(user).await?.map(|(r, _)| r);
        Ok(match record {
            None => Overview {
                status: Status::None,
                plan: None,
                current_period_end: None,
                has_customer: false,
            },
            Some(r) => Overview {
                status: r.status,
                plan: r
                    .price
                    .as_ref()
                    .and_then(|p| self.plans.iter().find(|plan| plan.price == *p).cloned()),
                current_period_end: r
                    .current_period_end
                    .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
                has_customer: r.customer.is_some(),
            },
        })
    }

    /// A Checkout Session for `user` and the plan called `plan`; the same one for a repeat within
    /// the idempotency window.
    ///
    /// # Errors
    /// [`BillingError`].
    pub async fn checkout(
        &self,
        user: &UserId,
        plan: &str,
        now: OffsetDateTime,
    ) -> Result<Hosted, BillingError> {
        let plan = self
            .plans
            .iter()
            .find(|p| p.id == plan)
            .ok_or(BillingError::UnknownPlan)?;
        let record = self.subscriptions.get(user).await?.map(|(r, _)| r);
        // One running subscription per account: a second would be billed beside the first.
        if record.as_ref().is_some_and(|r| r.status.is_live()) {
            return Err(BillingError::AlreadySubscribed);
        }
        let customer = record.and_then(|r| r.customer);
        let request = CheckoutRequest {
            user: *user,
            price: plan.price.clone(),
            idempotency_key: IdempotencyKey::checkout(user, customer.as_deref(), &plan.price, now),
            customer,
            success_url: format!("{}?checkout=done", self.billing_url),
            cancel_url: self.billing_url.clone(),
        };
        Ok(self.gateway.checkout(&request).await?)
    }

    /// A Billing Portal session for `user`'s customer.
    ///
    /// # Errors
    /// [`BillingError`]; [`BillingError::NoCustomer`] before a first checkout completed.
    pub async fn manage(&self, user: &UserId, now: OffsetDateTime) -> Result<Hosted, BillingError> {
        let customer = self
            .subscriptions
            .get(user)
            .await?
            .and_then(|(r, _)| r.customer)
            .ok_or(BillingError::NoCustomer)?;
        let request = BillingPortalRequest {
            idempotency_key: IdempotencyKey::billing_portal(user, &customer, now),
            customer,
            return_url: self.billing_url.clone(),
        };
        Ok(self.gateway.billing_portal(&request).await?)
    }
}
