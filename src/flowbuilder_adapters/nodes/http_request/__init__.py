"""The `http.request` node: one outbound HTTP request with httpx, behind an SSRF guard.

One module per reason to change: `ssrf` (which addresses may be reached), `transport`
(connections go only to the checked addresses), `request` (parameters to a request),
`credentials` (a credential to headers, and redaction), `runner` (the node, composing them).
"""

from flowbuilder_adapters.nodes.http_request.runner import HttpRequestRunner
from flowbuilder_adapters.nodes.http_request.ssrf import Resolver

__all__ = ["HttpRequestRunner", "Resolver"]
