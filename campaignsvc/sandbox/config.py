"""How the sandbox behaves: one mutable attrs object, validated on every change.

Every field can be changed while the sandbox runs (``POST /sandbox/config`` with a JSON object of the fields
to change); :meth:`SandboxConfig.patched` is the one place that turns such a patch into a new config, so
the HTTP route and in-process callers get the same validation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from campaignsvc.sandbox.answers import ACCOUNT_ERRORS, RECIPIENT_ERRORS

RECIPIENT_ERROR_KINDS = tuple(RECIPIENT_ERRORS)
ACCOUNT_ERROR_KINDS = tuple(ACCOUNT_ERRORS)


class ConfigPatchError(ValueError):
    """A config patch names an unknown field or gives a field a value it cannot take."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{d['path']}: {d['message']}" for d in details))
        self.details = details


def _rate(_: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value}")


def _non_negative(_: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"must be a finite number >= 0, got {value}")


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"must be a number, got {value!r}")
    return float(value)


def _to_optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"must be an integer or null, got {value!r}")
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"must be an integer, got {value!r}")
    return value


def _to_optional_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"must be a string or null, got {value!r}")
    return value


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be a string, got {value!r}")
    return value


def _to_range(value: Any) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value), float(value))
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise TypeError(f"must be [min, max], got {value!r}")
    low, high = (_to_float(v) for v in value)
    if not 0 <= low <= high or not math.isfinite(high):
        raise ValueError(f"must satisfy 0 <= min <= max, got {value!r}")
    return (low, high)


def _to_id_set(value: Any) -> frozenset[str]:
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"must be a list of strings, got {value!r}")
    return frozenset(value)


def _kinds(value: Any, kinds: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"must be an object mapping an id to a kind, got {value!r}")
    result: dict[str, str] = {}
    for key, kind in value.items():
        if not isinstance(key, str) or kind not in kinds:
            raise ValueError(f"{key!r}: kind must be one of {', '.join(kinds)}, got {kind!r}")
        result[key] = kind
    return result


def _recipient_kinds(value: Any) -> dict[str, str]:
    return _kinds(value, RECIPIENT_ERROR_KINDS)


def _account_kinds(value: Any) -> dict[str, str]:
    return _kinds(value, ACCOUNT_ERROR_KINDS)


def _url(schemes: tuple[str, ...]) -> Any:
    def check(_: Any, attribute: attrs.Attribute, value: str | None) -> None:
        if value is None:
            return
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            raise ValueError(f"must be a {' or '.join(schemes)} URL with a host, got {value!r}")

    return check


@attrs.define(kw_only=True)
class SandboxConfig:
    # Seeds every random choice: latency jitter, failure injection, echoes, who replies and when.
    seed: int = attrs.field(default=0, converter=_to_int)
    # Per request: sleep latency_ms ± jitter_ms before answering.
    latency_ms: float = attrs.field(default=0.0, converter=_to_float, validator=_non_negative)
    jitter_ms: float = attrs.field(default=0.0, converter=_to_float, validator=_non_negative)
    # FLOOD_WAIT: an account sending again sooner than this after its last accepted send is blocked for
    # flood_wait_s, and every send of it during the block is refused. 0 disables.
    account_min_gap_s: float = attrs.field(default=0.0, converter=_to_float, validator=_non_negative)
    flood_wait_s: float = attrs.field(default=30.0, converter=_to_float, validator=_non_negative)
    # PEER_FLOOD: these accounts always get it; any account gets it once it has sent peer_flood_after.
    peer_flood_accounts: frozenset[str] = attrs.field(factory=frozenset, converter=_to_id_set)
    peer_flood_after: int | None = attrs.field(
        default=None, converter=_to_optional_int, validator=_non_negative
    )
    # channelId or contactId → one of RECIPIENT_ERROR_KINDS; bdAccountId → one of ACCOUNT_ERROR_KINDS.
    recipient_errors: dict[str, str] = attrs.field(factory=dict, converter=_recipient_kinds)
    account_errors: dict[str, str] = attrs.field(factory=dict, converter=_account_kinds)
    # Random failure injection, shares of the requests that get past every rule above (their sum ≤ 1):
    # 502 without delivering; hang for hang_s then deliver (the caller has timed out); deliver then 500.
    error_rate: float = attrs.field(default=0.0, converter=_to_float, validator=_rate)
    timeout_rate: float = attrs.field(default=0.0, converter=_to_float, validator=_rate)
    abort_rate: float = attrs.field(default=0.0, converter=_to_float, validator=_rate)
    hang_s: float = attrs.field(default=180.0, converter=_to_float, validator=_non_negative)
    # Replies: this share of recipients (decided per channelId from the seed) answers once, after a delay
    # drawn from reply_delay_s = [min, max]; echo_rate of sends also come back as outbound echoes.
    reply_rate: float = attrs.field(default=0.0, converter=_to_float, validator=_rate)
    reply_delay_s: tuple[float, float] = attrs.field(default=(1.0, 5.0), converter=_to_range)
    reply_text: str = attrs.field(default="Hi! Sounds interesting, tell me more.", converter=_to_str)
    echo_rate: float = attrs.field(default=0.0, converter=_to_float, validator=_rate)
    # Where events go: RabbitMQ when rabbitmq_url is set, else HTTP POST {events_url}/api/campaigns/events,
    # else nowhere (they are still recorded).
    events_url: str | None = attrs.field(
        default=None, converter=_to_optional_str, validator=_url(("http", "https"))
    )
    rabbitmq_url: str | None = attrs.field(
        default=None, converter=_to_optional_str, validator=_url(("amqp", "amqps"))
    )
    rabbitmq_exchange: str = attrs.field(default="events", converter=_to_str)
    # When set: sent as X-Internal-Auth with events, and required on incoming sends (401 otherwise).
    internal_auth_secret: str | None = attrs.field(default=None, converter=_to_optional_str)
    # When set: sent as X-Events-Ingest-Secret with events posted over HTTP (the service's EVENTS_INGEST_SECRET).
    events_ingest_secret: str | None = attrs.field(default=None, converter=_to_optional_str)
    delivery_attempts: int = attrs.field(default=5, converter=_to_int, validator=attrs.validators.ge(1))
    delivery_backoff_s: float = attrs.field(default=0.5, converter=_to_float, validator=_non_negative)
    delivery_timeout_s: float = attrs.field(default=10.0, converter=_to_float, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.error_rate + self.timeout_rate + self.abort_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + timeout_rate + abort_rate must not exceed 1")

    def patched(self, patch: Mapping[str, Any]) -> SandboxConfig:
        """A new config with ``patch`` applied; raises :class:`ConfigPatchError` naming every bad field."""
        fields = attrs.fields_dict(SandboxConfig)
        details = [
            {"path": str(name), "message": "Unknown config field"} for name in patch if name not in fields
        ]
        if details:
            raise ConfigPatchError(details)
        values = {name: getattr(self, name) for name in fields}
        for name, value in patch.items():
            try:
                values[name] = fields[name].converter(value)  # type: ignore[misc,operator]
                validator = fields[name].validator
                if validator is not None:
                    validator(self, fields[name], values[name])
            except (TypeError, ValueError) as exc:
                details.append({"path": name, "message": str(exc)})
        if details:
            raise ConfigPatchError(details)
        try:
            return SandboxConfig(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigPatchError([{"path": "", "message": str(exc)}]) from None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["peer_flood_accounts"] = sorted(self.peer_flood_accounts)
        data["reply_delay_s"] = list(self.reply_delay_s)
        data["recipient_errors"] = dict(self.recipient_errors)
        data["account_errors"] = dict(self.account_errors)
        if self.internal_auth_secret is not None:
            data["internal_auth_secret"] = "***"
        if self.events_ingest_secret is not None:
            data["events_ingest_secret"] = "***"
        return data
