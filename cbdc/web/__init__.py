"""The services' web layer (FastAPI/Starlette): problem+json handlers, request
authentication, app helpers and metrics. Only the services import it: the wallet SDK must not."""
