"""Configuration from a YAML file and the environment (the environment wins).

Every problem is reported as one ConfigError naming the key, so the CLI can print one line and
exit 2. Secrets are wrapped in Secret as soon as they are read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from otelbridge.catalogue import PROFILES, Catalogue, DatasetChoice, MetricChoice
from otelbridge.catalogue import load as load_catalogue
from otelbridge.cloudflare.credentials import Credentials, Secret

DEFAULT_API_URL = "https://api.cloudflare.com/client/v4"


class ConfigError(ValueError):
    pass


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "otelbridge"


@dataclass(frozen=True)
class Config:
    credentials: Credentials = field(default_factory=Credentials)
    accounts: tuple[str, ...] = ()  # empty: discover every account the credential can see
    api_url: str = DEFAULT_API_URL
    poll_interval: timedelta = timedelta(seconds=60)
    delay: timedelta = timedelta(minutes=3)
    settle: timedelta = timedelta(minutes=10)
    lookback: timedelta = timedelta(minutes=15)
    quantile_window: timedelta = timedelta(minutes=5)
    quantiles: tuple[str, ...] = ()  # empty: the catalogue's default set
    max_series: int = 50_000
    idle_series_ttl: timedelta = timedelta(hours=48)  # 0: never forget; longer than a day for daily crons
    request_timeout: timedelta = timedelta(seconds=30)
    rate_limit: int = 300  # GraphQL queries per 5 minutes per credential
    account_based_rate_limit: bool = False
    prometheus_host: str = "localhost"
    prometheus_port: int = 9464
    web_config_file: Path | None = None
    state_dir: Path | None = field(default_factory=default_state_dir)  # None: do not persist
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    profile: str = "lean"  # lean: the catalogue's defaults; full: every metric and attribute
    metrics: tuple[tuple[str, MetricChoice], ...] = ()  # per-metric overrides, by OTel name
    log_format: str = "text"  # text, or json: one object per line for log pipelines
    datasets: tuple[tuple[str, DatasetChoice], ...] = ()  # per-dataset overrides, by dataset name
    zones: ZoneFilter = field(default_factory=lambda: ZoneFilter())

    @property
    def quantile_set(self) -> tuple[str, ...]:
        return self.quantiles or load_catalogue().default_quantiles

    def catalogue(self, base: Catalogue | None = None) -> Catalogue:
        """The catalogue with this configuration's datasets, profile and per-metric choices applied."""
        return (
            (base or load_catalogue()).configure(dict(self.datasets)).select(self.profile, dict(self.metrics))
        )


@dataclass(frozen=True)
class ZoneFilter:
    """Which zones are polled: `include` (empty: all) minus `exclude`; entries match a zone's name
    or id, and may be shell patterns (`*.example.com`). Zones are listed again every `refresh`."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    refresh: timedelta = timedelta(minutes=30)

    def wants(self, zone_id: str, name: str) -> bool:
        def matches(patterns: tuple[str, ...]) -> bool:
            return any(fnmatchcase(zone_id, p) or fnmatchcase(name.lower(), p.lower()) for p in patterns)

        return (not self.include or matches(self.include)) and not matches(self.exclude)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(key: str, value: Any) -> timedelta:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration like 60, 90s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{key}: expected a duration like 60, 90s, 5m or 1h, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds != seconds or seconds < 0 or seconds > 10 * 365 * 86400:
        raise ConfigError(f"{key}: duration out of range: {value!r}")
    return timedelta(seconds=seconds)


def _int(key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ConfigError(f"{key}: expected a whole number from {low} to {high}, got {value!r}")
    return number


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ConfigError(f"{key}: expected text, got {type(value).__name__}")
    return str(value).strip()


def _list(key: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{key}: expected a list or comma-separated text, got {type(value).__name__}")
    return tuple(_text(key, item) for item in items if str(item).strip())


_ACCOUNT_TAG = re.compile(r"^[0-9a-f]{32}$")


def _accounts(key: str, value: Any) -> tuple[str, ...]:
    tags = _list(key, value)
    for tag in tags:
        if not _ACCOUNT_TAG.match(tag):
            raise ConfigError(f"{key}: {tag!r} is not an account tag (32 lowercase hex characters)")
    return tags


def _quantiles(key: str, value: Any) -> tuple[str, ...]:
    offered = load_catalogue().available_quantiles
    chosen = _list(key, [str(v) for v in value] if isinstance(value, list) else value)
    for q in chosen:
        if q not in offered:
            raise ConfigError(f"{key}: {q!r} is not offered by Cloudflare; choose from {', '.join(offered)}")
    return chosen


def _url(key: str, value: Any) -> str:
    text = _text(key, value).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", text):
        raise ConfigError(f"{key}: expected an http(s) URL, got {value!r}")
    return text


def _path(key: str, value: Any) -> Path:
    return Path(_text(key, value)).expanduser()


def _state_dir(key: str, value: Any) -> Path | None:
    text = _text(key, value)
    return None if text.lower() in ("", "none", "off") else Path(text).expanduser()


def _log_level(key: str, value: Any) -> str:
    text = _text(key, value).upper()
    if text not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{key}: expected DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return text


def _profile(key: str, value: Any) -> str:
    text = _text(key, value).lower()
    if text not in PROFILES:
        raise ConfigError(f"{key}: expected {' or '.join(PROFILES)}, got {value!r}")
    return text


def _mapping(key: str, value: Any, known: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping with {' and/or '.join(sorted(known))}")
    for name in value:
        if name not in known:
            raise ConfigError(f"{key}: unknown key {name!r} (known: {', '.join(sorted(known))})")
    return value


def _named(
    key: str, value: Any, kind: str, known: Sequence[str], keys: set[str]
) -> Iterator[tuple[str, str, dict[str, Any], bool | None]]:
    """(name, its key, its settings, `enabled`) of each entry of a mapping of known names."""
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping of {kind} names to settings")
    for name, settings in value.items():
        where = f"{key}.{name}"
        if name not in known:
            raise ConfigError(f"{where}: unknown {kind} (known: {', '.join(known)})")
        settings = _mapping(where, settings, keys)
        enabled = _bool(f"{where}.enabled", settings["enabled"]) if "enabled" in settings else None
        yield str(name), where, settings, enabled


def _choose(
    where: str, settings: dict[str, Any], key: str, offered: Sequence[str], what: str
) -> tuple[str, ...]:
    """The attributes listed under `key`, each one of `offered`."""
    chosen = _list(f"{where}.{key}", settings[key] or [])
    for attribute in chosen:
        if attribute not in offered:
            raise ConfigError(
                f"{where}.{key}: {attribute!r} is not {what} (choose from {', '.join(offered) or 'none'})"
            )
    return chosen


def _metrics(key: str, value: Any) -> tuple[tuple[str, MetricChoice], ...]:
    """`metrics: {cloudflare.workers.subrequests: {enabled: true, attributes: [...]}}`."""
    catalogue = load_catalogue()
    out = []
    for name, where, settings, enabled in _named(
        key, value, "metric", catalogue.metric_names, {"enabled", "attributes"}
    ):
        attributes = None
        if "attributes" in settings:
            optional = catalogue.optional_attributes(name)
            attributes = _choose(where, settings, "attributes", optional, "optional here")
        out.append((name, MetricChoice(enabled, attributes)))
    return tuple(out)


def _datasets(key: str, value: Any) -> tuple[tuple[str, DatasetChoice], ...]:
    """`datasets: {httpRequestsAdaptiveGroups: {enabled: false, dimensions: [...]}}`."""
    catalogue = load_catalogue()
    known = [d.dataset for d in catalogue.datasets]
    out = []
    for name, where, settings, enabled in _named(key, value, "dataset", known, {"enabled", "dimensions"}):
        dimensions = None
        if "dimensions" in settings:
            offered = [d.attribute for d in catalogue.dataset(name).dimensions]
            dimensions = _choose(where, settings, "dimensions", offered, f"a dimension of {name}")
        out.append((name, DatasetChoice(enabled, dimensions)))
    return tuple(out)


def _zones(key: str, value: Any) -> ZoneFilter:
    """`zones: {include: [example.com, "*.example.net"], exclude: [...], refresh: 30m}`."""
    settings = _mapping(key, value or {}, {"include", "exclude", "refresh"})
    lists = {}
    for name in ("include", "exclude"):
        lists[name] = _list(f"{key}.{name}", settings.get(name) or [])
        for pattern in lists[name]:
            if not pattern or any(c.isspace() for c in pattern):
                raise ConfigError(f"{key}.{name}: {pattern!r} is not a zone name, id or pattern")
    refresh = parse_duration(f"{key}.refresh", settings.get("refresh", "30m"))
    if refresh < timedelta(minutes=1):
        raise ConfigError(f"{key}.refresh: must be at least 1m, got {settings.get('refresh')!r}")
    return ZoneFilter(lists["include"], lists["exclude"], refresh)


def _log_format(key: str, value: Any) -> str:
    text = _text(key, value).lower()
    if text not in ("text", "json"):
        raise ConfigError(f"{key}: expected text or json, got {value!r}")
    return text


Parser = Callable[[str, Any], Any]

# key -> (parser, environment variable). The YAML file uses the key; the environment wins.
KEYS: dict[str, tuple[Parser, str]] = {
    "api_token": (lambda k, v: Secret(_text(k, v)), "CLOUDFLARE_API_TOKEN"),
    "api_email": (_text, "CLOUDFLARE_API_EMAIL"),
    "api_key": (lambda k, v: Secret(_text(k, v)), "CLOUDFLARE_API_KEY"),
    "accounts": (_accounts, "OTELBRIDGE_ACCOUNTS"),
    "api_url": (_url, "OTELBRIDGE_API_URL"),
    "poll_interval": (parse_duration, "OTELBRIDGE_POLL_INTERVAL"),
    "delay": (parse_duration, "OTELBRIDGE_DELAY"),
    "settle": (parse_duration, "OTELBRIDGE_SETTLE"),
    "lookback": (parse_duration, "OTELBRIDGE_LOOKBACK"),
    "quantile_window": (parse_duration, "OTELBRIDGE_QUANTILE_WINDOW"),
    "quantiles": (_quantiles, "OTELBRIDGE_QUANTILES"),
    "max_series": (lambda k, v: _int(k, v, 1, 10_000_000), "OTELBRIDGE_MAX_SERIES"),
    "idle_series_ttl": (parse_duration, "OTELBRIDGE_IDLE_SERIES_TTL"),
    "request_timeout": (parse_duration, "OTELBRIDGE_REQUEST_TIMEOUT"),
    "rate_limit": (lambda k, v: _int(k, v, 1, 100_000), "OTELBRIDGE_RATE_LIMIT"),
    "account_based_rate_limit": (_bool, "OTELBRIDGE_ACCOUNT_BASED_RATE_LIMIT"),
    "prometheus_host": (_text, "OTEL_EXPORTER_PROMETHEUS_HOST"),
    "prometheus_port": (lambda k, v: _int(k, v, 0, 65535), "OTEL_EXPORTER_PROMETHEUS_PORT"),
    "web_config_file": (_path, "OTELBRIDGE_WEB_CONFIG_FILE"),
    "state_dir": (_state_dir, "OTELBRIDGE_STATE_DIR"),
    "otlp_endpoint": (_url, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    "log_level": (_log_level, "OTELBRIDGE_LOG_LEVEL"),
    "profile": (_profile, "OTELBRIDGE_PROFILE"),
    "metrics": (_metrics, ""),  # nested settings: YAML only
    "log_format": (_log_format, "OTELBRIDGE_LOG_FORMAT"),
    "datasets": (_datasets, ""),  # nested settings: YAML only
    "zones": (_zones, ""),  # nested settings: YAML only
}


# Secrets may instead come from a file (a mounted Kubernetes/Docker secret): key -> variable.
SECRET_FILE_KEYS = {"api_token_file": ("api_token", "CLOUDFLARE_API_TOKEN_FILE")}
# Under systemd, `LoadCredential=cloudflare-api-token:...` puts the token in $CREDENTIALS_DIRECTORY.
SYSTEMD_TOKEN_CREDENTIAL = "cloudflare-api-token"


def read_secret_file(key: str, value: Any) -> Secret:
    """The stripped contents of the file named by `key`; missing, unreadable or empty is an error."""
    path = _path(key, value)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not readable text"
        raise ConfigError(f"{key}: cannot read {path}: {reason}") from None
    if not text:
        raise ConfigError(f"{key}: {path} is empty")
    return Secret(text)


def _secrets_from_files(raw: Mapping[str, Any], env: Mapping[str, str], values: dict[str, Any]) -> None:
    """Fill a secret from its *_FILE variable or YAML key, or from a systemd credential.

    Giving a secret both directly and as a file is ambiguous, so it is an error.
    """
    for file_key, (key, variable) in SECRET_FILE_KEYS.items():
        if env.get(variable, "").strip():
            source, value = variable, env[variable]
        elif raw.get(file_key) is not None:
            source, value = file_key, raw[file_key]
        else:
            continue
        if key in values:
            raise ConfigError(f"{source}: set either {KEYS[key][1]} or {variable}, not both")
        values[key] = read_secret_file(source, value)
    credentials = env.get("CREDENTIALS_DIRECTORY", "").strip()
    if credentials and not {"api_token", "api_key"} & values.keys():
        path = Path(credentials) / SYSTEMD_TOKEN_CREDENTIAL
        if path.exists():
            values["api_token"] = read_secret_file(f"credential {SYSTEMD_TOKEN_CREDENTIAL}", str(path))


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ConfigError(f"config file {path}: not valid YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of keys, got {type(data).__name__}")
    return data


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = read_yaml(path) if path is not None else {}
    for key in raw:
        if key not in KEYS and key not in SECRET_FILE_KEYS:
            known = ", ".join(sorted([*KEYS, *SECRET_FILE_KEYS]))
            raise ConfigError(f"{key}: unknown configuration key (known keys: {known})")
    values: dict[str, Any] = {}
    for key, (parse, variable) in KEYS.items():
        if variable and variable in env and (env[variable].strip() or key == "state_dir"):
            values[key] = parse(variable, env[variable])
        elif key in raw and raw[key] is not None:
            values[key] = parse(key, raw[key])
    _secrets_from_files(raw, env, values)
    return _assemble(values)


def _assemble(values: dict[str, Any]) -> Config:
    token, email, key = (
        values.pop("api_token", None),
        values.pop("api_email", None),
        values.pop("api_key", None),
    )
    if token is not None and not token.reveal():
        raise ConfigError("api_token: is empty")
    if token is None and (email is None) != (key is None):
        raise ConfigError("api_key: the legacy credential needs both api_email and api_key")
    credentials = Credentials(token=token, email=email, key=key)
    names = {f.name for f in fields(Config)}
    config = Config(credentials=credentials, **{k: v for k, v in values.items() if k in names})
    if config.settle < config.delay:
        raise ConfigError(f"settle: must be at least delay ({config.delay}), got {config.settle}")
    if config.idle_series_ttl and config.idle_series_ttl < config.settle:
        raise ConfigError(f"idle_series_ttl: must be 0 (never) or at least settle ({config.settle})")
    if config.poll_interval < timedelta(seconds=1):
        raise ConfigError("poll_interval: must be at least 1s")
    if config.quantile_window < timedelta(minutes=1) or config.quantile_window % timedelta(minutes=1):
        raise ConfigError("quantile_window: must be a whole number of minutes, at least 1m")
    return config


def require_credentials(config: Config) -> None:
    if config.credentials.token is None and config.credentials.key is None:
        raise ConfigError(
            "api_token: no Cloudflare credentials; set CLOUDFLARE_API_TOKEN or CLOUDFLARE_API_TOKEN_FILE "
            "(or CLOUDFLARE_API_EMAIL and CLOUDFLARE_API_KEY), or try `otelbridge demo`"
        )
