"""Delivery kinetics: carrier library, compartment model, payload release."""
