"""``campaignsvc demo``: campaignsvc at work within a minute of cloning it, with nothing but Python.

The embedded PostgreSQL, the Messaging sandbox and the service run in one trio tree; a demo organization is
seeded; three campaigns are created and started through the HTTP API; the terminal shows their progress,
flood waits and replies, and a summary at the end. The time scale is in :mod:`campaignsvc.demo.plan`;
docs/demo.md tells the story.
"""
