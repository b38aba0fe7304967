"""Supervisors' review of submissions: accept into the outbox or reject back to the queue."""
