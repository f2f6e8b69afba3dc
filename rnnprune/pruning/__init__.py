"""Pruning core: method contract, registry, shared selection and schedules."""
