"""The web wallet: a page each operator serves at `/` (plain HTML, CSS and ES modules, no build
step), the QR codes it shows (`/web/qr.svg`) and the demo-only "credit my bank deposit" call.

The page is a client like the CLI: it keeps the wallet's Ed25519 key in the browser
(WebCrypto, not extractable, in IndexedDB), signs envelopes and orders itself and calls the
same public API. A top area: it uses the wallets and exchange areas, none uses it."""
