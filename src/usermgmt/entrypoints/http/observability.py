"""The HTTP side of the metrics: each answered request by route template, method and status, and what it tells of
sign-ins, refreshes, problems and rate limits.

``RequestContextMiddleware`` calls ``RequestMetrics`` once per request with its scope, status and duration. The
route is the matched route's template (``/api/v1/admin/users/{user_id}``), never the raw path; a request that
matched no route is ``unmatched``; a method outside HTTP's usual ones is ``other``. A problem's ``code`` and a
rate limit's rule are left in the scope by the error handlers (errors.py): so the outcome of a sign-in is the code
it was answered with (``invalid_credentials``, ``mfa_required``, ``rate_limited``...) or ``success``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client.metrics import Histogram
from starlette.types import Scope

from usermgmt.adapters.metrics import Metrics
from usermgmt.entrypoints.http.errors import PROBLEM_CODE_KEY, RATE_LIMIT_RULE_KEY

# The routes that are a sign-in attempt, by the method (first factor or step) they attempt: a provider's login code
# redeemed is "provider"; a provider's callback, which always redirects, is "provider_callback", its outcome the
# ``error`` it sends the browser back with (PROBLEM_CODE_KEY, set by the route), or success.
SIGN_IN_ROUTES: Final = {
    "/api/v1/auth/login": "password",
    "/api/v1/auth/login/mfa": "mfa",
    "/api/v1/auth/oauth/token": "provider",
}
CALLBACK_ROUTE: Final = "/api/v1/auth/oauth/{provider}/callback"
REFRESH_ROUTE: Final = "/api/v1/auth/refresh"
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED: Final = "unmatched"


class RequestMetrics:
    """The ``observe`` of RequestContextMiddleware, counting into ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._series: dict[tuple[str, str, str], Histogram] = {}  # labelled children, looked up once each

    def __call__(self, scope: Scope, status: int | None, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None)
        template = route if isinstance(route, str) else UNMATCHED
        method = scope["method"] if scope["method"] in METHODS else "other"
        answered = str(status) if status is not None else "none"
        key = (template, method, answered)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._metrics.http_requests.labels(template, method, answered)
        series.observe(seconds)
        if status is None:  # the client went away, or a deadline closed the connection
            outcome = "no_answer"
        elif status < 400:
            code = scope.get(PROBLEM_CODE_KEY) if template == CALLBACK_ROUTE else None
            outcome = code if isinstance(code, str) else "success"
        else:
            code = scope.get(PROBLEM_CODE_KEY)
            outcome = code if isinstance(code, str) else "unknown"
            self._metrics.problems.labels(answered, outcome).inc()
            rule = scope.get(RATE_LIMIT_RULE_KEY)
            if isinstance(rule, str):
                self._metrics.rate_limited.labels(rule).inc()
        sign_in = SIGN_IN_ROUTES.get(template)
        if sign_in is not None and method == "POST":
            self._metrics.sign_ins.labels(sign_in, outcome).inc()
        elif template == CALLBACK_ROUTE and method == "GET":
            self._metrics.sign_ins.labels("provider_callback", outcome).inc()
        elif template == REFRESH_ROUTE and method == "POST":
            self._metrics.refreshes.labels(outcome).inc()
