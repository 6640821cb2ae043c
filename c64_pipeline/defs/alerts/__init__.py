"""Alerts: failed checks and runs into the outbox and to the webhook."""
