DROP TABLE subscriptions;
DROP TABLE payment_events;
