"""The certification centre: operators, their keys and certificates, quotas, reserves."""
