"""Offline ("dual offline") device wallets, the customer side: a simulated secure element that
holds a device key and its purse and pays other devices with no network
(`wallets.offline.secure_element`), the local store that keeps devices in the CLI data
directory (`wallets.offline.store`), and the client for the operator's offline endpoints
(`wallets.offline.client`). Pure Python: no server code.

The protocol's messages and checks are in `cbdc.offline`; the design in docs/offline.md."""
