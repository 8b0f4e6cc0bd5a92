"""The customer side: wallet keys and their local store, signed orders, the typed client for
the operator API, and certificate-chain checks any payee can run offline."""

from wallets.client import OperatorClient, WalletClient
from wallets.keystore import KeyStore, StoredWallet
from wallets.orders import load_order, payment_order, sign_order, unload_order

__all__ = [
    "KeyStore",
    "OperatorClient",
    "StoredWallet",
    "WalletClient",
    "load_order",
    "payment_order",
    "sign_order",
    "unload_order",
]
