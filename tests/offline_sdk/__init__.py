"""The device SDK (wallets/offline/client.py) against the real operator and central bank."""
