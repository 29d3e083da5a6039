"""Use cases: what the service does, each one transaction returning its result and the control messages to
publish after the commit. HTTP handlers and the event consumer call these; they know nothing of HTTP."""
