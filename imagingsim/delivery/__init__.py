"""Delivery kinetics: carrier library, compartment model, payload release."""

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
