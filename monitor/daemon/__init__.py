"""The daemon's commit and effects: state, outbox, alerts, health, metrics, HTTP."""
