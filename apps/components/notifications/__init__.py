"""Notifications (issue #5 item 5): channels, and the deliveries of alerting transitions.

A sub-domain of components in its own package: each alerting transition becomes one
``Notification`` per channel of the component, delivered by a task with retries.
"""
