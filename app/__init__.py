"""Switchboard: a self-hosted dashboard for delegating work to AI agents on small local models."""
