// Package notify tells people how their executions ended: it delivers a
// Message on a Channel (a signed JSON webhook, a Slack-compatible incoming
// webhook, or a plain-text email over SMTP) from a durable outbox, with
// retries and backoff.
//
// The parts:
//
//   - Channel says where a notification goes; Validate checks it and names
//     the offending field.
//   - Message says what happened; it renders as webhook JSON, a Slack line
//     and an email.
//   - Sender delivers one Message on one Channel. It refuses, by default,
//     to connect to loopback, private, link-local (cloud metadata),
//     multicast and other special addresses, checked on the address
//     actually dialed, so neither a URL nor DNS can point it inside.
//   - Worker drains an outbox Store: it claims due deliveries, sends them
//     with bounded concurrency, and records each one as sent, or as failed
//     with the time of the next attempt.
//
// Webhook receivers check deliveries with Verify. Delivery is at least once:
// a receiver that must act once deduplicates by the X-Cronium-Delivery header.
//
// The package imports the root package and the standard library only; the
// store (package sqlite) imports it, never the other way round.
package notify
