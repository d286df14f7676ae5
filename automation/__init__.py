"""Automations: rules on live prices, their execution, and the automation:* events."""
