"""The published contracts: envelope, events, commands, errors and their JSON Schemas.

Also built as the installable wheel ``crm-backbone-contracts`` (``make dist``; contracts/).
"""
