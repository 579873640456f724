"""A faithful simulated Cloudflare API: GraphQL Analytics (workersInvocationsAdaptive) and REST /accounts.

sim = Simulator(traffic=Traffic.default(seed=1), clock=clock)
await sim.start()            # sim.base_url == "http://127.0.0.1:<port>/client/v4"
sim.knobs.ingestion_delay = 120
truth = sim.traffic.totals(account_tag, start, end)
"""

from otelbridge.simulator.auth import DEFAULT_TOKEN, Credential
from otelbridge.simulator.knobs import FAULT_KINDS, Knobs
from otelbridge.simulator.server import QueryLogEntry, Simulator, SimulatorThread
from otelbridge.simulator.traffic import Account, Script, Traffic

__all__ = [
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "Account",
    "Credential",
    "Knobs",
    "QueryLogEntry",
    "Script",
    "Simulator",
    "SimulatorThread",
    "Traffic",
]
