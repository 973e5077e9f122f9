"""Delivery kinetics: compartment model, payload release (carrier and drug tables: imagingsim.data)."""

from imagingsim.delivery.kinetics import simulate_delivery, solver_steps
from imagingsim.delivery.result import DRUG_LEDGER_KEYS, LEDGER_KEYS, REGIONS, AgentDelivery, DeliveryResult

__all__ = [
    "DRUG_LEDGER_KEYS",
    "LEDGER_KEYS",
    "REGIONS",
    "AgentDelivery",
    "DeliveryResult",
    "simulate_delivery",
    "solver_steps",
]
