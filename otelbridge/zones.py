"""The zones polled: listed per account over REST, filtered by the `zones` setting, refreshed, and
polled in groups of at most 10 (Cloudflare's limit per request), one request per group.

A zone's state (AccountState with scope "zone") holds a ledger per zone dataset, its name (from the
listing, exported as cloudflare.zone.name) and its account, whose rate budget its group spends.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from otelbridge import snapshot
from otelbridge.catalogue import ACCOUNT, ZONE_NAME
from otelbridge.clock import Clock
from otelbridge.cloudflare.client import CloudflareClient, Zone
from otelbridge.cloudflare.errors import CloudflareError
from otelbridge.config import ZoneFilter
from otelbridge.ledger import Ledger
from otelbridge.poller import AccountPoller, AccountState
from otelbridge.ratelimit import RateBudget

log = logging.getLogger(__name__)
ZONES_PER_REQUEST = 10  # Cloudflare refuses a zone dataset asked of more zones in one request
Ledgers = dict[str, dict[str, Ledger]]  # zone tag -> dataset -> ledger


def wanted(found: Iterable[Zone], chosen: ZoneFilter) -> dict[str, Zone]:
    """The listed zones the `zones` setting wants, by tag."""
    return {z.id: z for z in found if chosen.wants(z.id, z.name)}


def in_groups(tags: Sequence[str]) -> list[list[str]]:
    """Zone tags in groups of at most 10, by tag: one request each."""
    ordered = sorted(tags)
    return [ordered[i : i + ZONES_PER_REQUEST] for i in range(0, len(ordered), ZONES_PER_REQUEST)]


def attributes(name: str, account: str) -> dict[str, str]:
    """What every series of a zone carries besides its tag."""
    return {ZONE_NAME: name, ACCOUNT: account}


class Zones:
    def __init__(
        self,
        chosen: ZoneFilter,
        clock: Clock,
        outcomes: Counter[str],
        ledgers: Callable[[str, dict[str, Ledger]], dict[str, Ledger]],
    ) -> None:
        self.states: dict[str, AccountState] = {}  # by zone tag
        self.listing: dict[str, tuple[datetime, str]] = {}  # account -> (last listing, its error)
        self.saved: Ledgers = {}  # read from the state file, taken up by zones as they are listed
        self._chosen = chosen
        self._clock = clock
        self._outcomes = outcomes
        self._ledgers = ledgers  # new or saved ledgers for a zone: (label, saved) -> ledgers

    async def refresh(self, client: CloudflareClient, account: str, budget: RateBudget) -> None:
        """List the account's zones and poll those the filter wants: new zones start counting, zones
        gone (or filtered out) are dropped; the others are not touched. On failure the zones known
        keep being polled and the listing is tried again next cycle."""
        now = self._clock.now()
        try:
            found = await client.zones(account)
        except CloudflareError as exc:
            self._outcomes[exc.outcome] += 1
            error = f"{type(exc).__name__}: {exc}"
            self.listing[account] = (self.listing.get(account, (now, ""))[0], error)
            log.error("account %s: could not list its zones (%s); retrying next cycle", account, error)
            return
        self._outcomes["ok"] += 1
        self.listing[account] = (now, "")
        chosen = wanted(found, self._chosen)
        mine = {tag for tag, z in self.states.items() if z.owner == account}
        for tag in sorted(mine - set(chosen)):
            log.info("%s: no longer listed (or filtered out); its series are dropped", self.states[tag].label)
            del self.states[tag]
        for tag, zone in sorted(chosen.items()):
            if tag in self.states:
                self.states[tag].name = zone.name
                continue
            ledgers = self._ledgers(f"zone {zone.name} ({tag})", self.saved.get(tag, {}))
            self.states[tag] = AccountState(tag, ledgers, budget, scope="zone", name=zone.name, owner=account)
        if set(chosen) != mine:
            log.info("account %s: %d zone(s) polled of %d listed", account, len(chosen), len(found))

    def groups(self, account: str) -> list[list[AccountState]]:
        """The account's zones in groups of at most 10, by tag."""
        tags = [tag for tag, z in self.states.items() if z.owner == account]
        return [[self.states[t] for t in group] for group in in_groups(tags)]

    async def poll(
        self, client: CloudflareClient, poller: AccountPoller, account: str, budget: RateBudget
    ) -> bool:
        """Refresh the account's listing when due, then poll each group of zones that is due.
        Returns True when a zone is still catching up."""
        listed = self.listing.get(account)
        if listed is None or listed[1] or self._clock.now() - listed[0] >= self._chosen.refresh:
            await self.refresh(client, account, budget)
        behind = False
        for group in self.groups(account):
            now = self._clock.now()
            if any(poller.due(z, now) for z in group):
                behind |= await poller.poll_zones(group, now)
        return behind

    def listed(self, account: str) -> bool:
        """The account's last zone listing succeeded."""
        listed = self.listing.get(account)
        return listed is not None and not listed[1]

    def scopes(self) -> dict[str, snapshot.ZoneScope]:
        """What the snapshot exports of each zone."""
        return {
            tag: snapshot.ZoneScope(
                z.owner,
                z.ledgers,
                snapshot.AccountHealth(z.up, z.poll_seconds, z.quantiles, z.levels),
                attributes(z.name, z.owner),
                z.skipped,
            )
            for tag, z in self.states.items()
        }

    def status(self, account: str, datasets: Callable[[AccountState], dict[str, Any]]) -> dict[str, object]:
        """The account's zones: when they were listed, and where each stands."""
        listed, error = self.listing.get(account, (None, "not listed yet"))
        groups = self.groups(account)
        return {
            "listed_at": listed.isoformat() if listed else None,
            "listing_error": error or None,
            "groups": len(groups),
            "zones": {
                z.account: {
                    "name": z.name,
                    "up": z.up,
                    "failures": z.failures,
                    "last_error": z.last_error or None,
                    "skipped": list(z.skipped),
                    "datasets": datasets(z),
                }
                for group in groups
                for z in group
            },
        }
