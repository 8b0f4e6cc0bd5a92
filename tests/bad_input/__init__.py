"""Bad input never gets a 500: malformed JSON, missing fields, wrong types, bad amounts, extra
fields, over-long strings, NUL characters, non-UUID and out-of-range path and query parameters
all get a 4xx RFC 9457 problem (application/problem+json with type/title/status/detail/code).

The services are called through clients that turn an unhandled exception into the 500 a real
server would send (instead of re-raising it into the test).
"""
