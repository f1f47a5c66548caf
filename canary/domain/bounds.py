"""Every floor and ceiling of a number that becomes a time or a count, in one place. Pure.

A number without a ceiling is a crash waiting for a typo: ``99999999999h`` overflows
``timedelta``, and a ``progressDeadlineSeconds`` of 10^15 overflows the first date arithmetic
that uses it. So each one has a documented range here, the parser refuses anything outside it
(:func:`canary.domain.durations.parse_duration`, :mod:`canary.domain.spec`), the CRDs carry the
same numbers (``minimum``/``maximum``, ``maxItems`` and the duration literals of CEL rules), and
``tests/crds/test_bounds.py`` reads them back from the YAML to prove the two agree.
docs/api.md has the table, with the reason for each range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

#: Longest duration text anywhere (the CRD's ``maxLength``): keeps CEL rule costs bounded.
DURATION_MAX_LENGTH = 32
#: Digits before and after the point of each number in a duration. Five digits and 32
#: characters keep every duration the grammar admits far below Go's ``time.ParseDuration``
#: overflow (about 2.5 million hours), so the API server's CEL ``duration()`` can never fail on
#: a value the pattern let through; three decimals keep every value a whole number of
#: microseconds, exact in Python, in cel-python and in Go alike.
DURATION_INT_DIGITS = 5
DURATION_FRACTION_DIGITS = 3


@dataclass(frozen=True)
class DurationBound:
    """The range of one duration; ``where`` is the field as the CRD or the command line names it."""

    where: str
    floor: timedelta
    ceiling: timedelta
    #: A valid value to show in messages.
    example: str
    why: str


@dataclass(frozen=True)
class CountBound:
    """The range of one integer (or, for a list, of its number of items)."""

    where: str
    floor: int
    ceiling: int
    why: str


@dataclass(frozen=True)
class NumberBound:
    """The range of one real number (a probability, a ratio, percentage points)."""

    where: str
    floor: float
    ceiling: float
    why: str


_DAY = timedelta(hours=24)

# --- Canary durations ----------------------------------------------------------------------

ANALYSIS_INTERVAL = DurationBound(
    "spec.analysis.interval", timedelta(seconds=1), _DAY, "1m",
    "below 1s the controller would re-query faster than metrics change; a release that checks "
    "less than once a day is not progressive delivery",
)
METRIC_INTERVAL = DurationBound(
    "spec.analysis.metrics[].interval", timedelta(seconds=1), _DAY, "5m",
    "Prometheus ranges under 1s hold no samples; a day is the longest window worth asking for",
)
WEBHOOK_TIMEOUT = DurationBound(
    "spec.analysis.webhooks[].timeout", timedelta(milliseconds=100), timedelta(hours=1), "10s",
    "no HTTP answer arrives in under 100ms across a cluster; a hook silent for an hour is down "
    "(with 10 retries a tick already waits up to 11h)",
)

JUDGE_LOOK_EVERY = DurationBound(
    "spec.analysis.judge.lookEvery", timedelta(seconds=1), timedelta(hours=1), "15s",
    "looking more often than Prometheus scrapes sees nothing new, and no scrape interval is under "
    "1s; an hour is longer than any interval worth an early abort",
)

# --- Canary counts -------------------------------------------------------------------------
ROUTE_TIMEOUT = DurationBound(
    "spec.service.timeout", timedelta(milliseconds=1), timedelta(hours=1), "30s",
    "a request that waits an hour for an answer has failed; the Gateway API writes it in ms to h",
)
ROUTE_BACKEND_TIMEOUT = DurationBound(
    "spec.service.backendTimeout", timedelta(milliseconds=1), timedelta(hours=1), "10s",
    "one attempt to a backend; at most spec.service.timeout",
)


PROGRESS_DEADLINE_SECONDS = CountBound(
    "spec.progressDeadlineSeconds", 1, 86400,
    "a Deployment not ready within a day will not become ready by waiting longer",
)
THRESHOLD = CountBound(
    "spec.analysis.threshold", 1, 1000,
    "failed checks before a rollback; beyond 1000 the canary could never be rolled back in practice",
)
ITERATIONS = CountBound(
    "spec.analysis.iterations", 1, 1000,
    "blue/green checks before promotion; 1000 at the longest interval is already years",
)
MIN_SAMPLE_SIZE = CountBound(
    "spec.analysis.minSampleSize", 1, 1_000_000_000,
    "requests per window; a billion is more than any window sees, and fits int32",
)
CONSECUTIVE_ERROR_LIMIT = CountBound(
    "spec.analysis.consecutiveErrorLimit", 0, 100,
    "ticks in a row a metrics outage may hold the release before each counts as failed; 0 counts the "
    "first; an outage of 100 intervals is not one to ride out",
)
CONSECUTIVE_NO_DATA_LIMIT = CountBound(
    "spec.analysis.consecutiveNoDataLimit", 0, 1000,
    "ticks in a row noDataPolicy hold may hold the release before each counts as failed; 0 counts the "
    "first; 1000 at the longest interval is already years",
)
MAX_WEIGHT = CountBound("spec.analysis.maxWeight", 1, 100, "a percentage of traffic")
STEP_WEIGHT = CountBound("spec.analysis.stepWeight", 1, 100, "a percentage of traffic")
STEP_WEIGHTS_ITEM = CountBound("spec.analysis.stepWeights[]", 1, 100, "a percentage of traffic")
STEP_WEIGHT_PROMOTION = CountBound("spec.analysis.stepWeightPromotion", 1, 100, "a percentage of traffic")
WEBHOOK_RETRIES = CountBound(
    "spec.analysis.webhooks[].retries", 0, 10,
    "extra attempts per call; more only delays the verdict on a hook that is down",
)
SERVICE_PORT = CountBound("spec.service.port", 1, 65535, "a TCP port")
GATEWAY_REF_PORT = CountBound("spec.service.gatewayRefs[].port", 1, 65535, "a TCP port of the Gateway's listener")
PRIMARY_READY_THRESHOLD = CountBound(
    "spec.analysis.primaryReadyThreshold", 1, 100, "a percentage of the primary's pods; 0 would call no pods ready",
)
CANARY_READY_THRESHOLD = CountBound(
    "spec.analysis.canaryReadyThreshold", 1, 100, "a percentage of the canary's pods; 0 would call no pods ready",
)
MIRROR_WEIGHT = CountBound("spec.analysis.mirrorWeight", 1, 100, "a percentage of requests copied to the canary")
SESSION_MAX_AGE = CountBound(
    "spec.analysis.sessionAffinity.maxAge", 1, 31_536_000,
    "seconds a session cookie lives; a year is longer than any release",
)
PRIMARY_SCALER_MIN_REPLICAS = CountBound(
    "spec.autoscalerRef.primaryScalerReplicas.minReplicas", 1, 10_000,
    "the primary's autoscaler floor; an HPA refuses 0, and a primary without pods serves no one",
)
PRIMARY_SCALER_MAX_REPLICAS = CountBound(
    "spec.autoscalerRef.primaryScalerReplicas.maxReplicas", 1, 10_000,
    "the primary's autoscaler ceiling; 10000 replicas of one workload is a typo, not a plan",
)

# --- Canary real numbers ------------------------------------------------------------------

JUDGE_ALPHA = NumberBound(
    "spec.analysis.judge.alpha", 0.0001, 0.2,
    "the chance of rolling back a healthy canary; below 1 in 10000 the judge needs vast traffic to "
    "act, above 1 in 5 it rolls back healthy releases routinely",
)
JUDGE_ERROR_TOLERANCE = NumberBound(
    "spec.analysis.judge.errorRate.tolerance", 0.0, 10.0,
    "how many times more failures than the primary's, less one, the canary may have; 10 is 11 times",
)
JUDGE_MIN_INCREASE = NumberBound(
    "spec.analysis.judge.errorRate.minIncrease", 0.0, 100.0, "percentage points of error rate",
)
JUDGE_LATENCY_TOLERANCE = NumberBound(
    "spec.analysis.judge.latency.tolerance", 0.0, 10.0,
    "how many times more slow requests than the primary's, less one, at every bound; 10 is 11 times",
)

# --- Canary lists (number of items) --------------------------------------------------------

STEP_WEIGHTS_ITEMS = CountBound(
    "spec.analysis.stepWeights", 0, 20,
    "20 increasing percentages are more steps than anyone needs; bounds the CEL rule's cost",
)
METRICS_ITEMS = CountBound(
    "spec.analysis.metrics", 0, 20, "checks per tick; bounds the queries of one tick and the CEL rules' cost",
)
WEBHOOKS_ITEMS = CountBound(
    "spec.analysis.webhooks", 0, 20, "calls per tick; bounds the time of one tick and the CEL rules' cost",
)
ALERTS_ITEMS = CountBound(
    "spec.analysis.alerts", 0, 10, "chat posts per event; bounds the posts one release step can cause",
)
MATCH_ITEMS = CountBound(
    "spec.analysis.match", 0, 8, "A/B conditions (any one suffices); Gateway API allows 8 matches per rule",
)
GATEWAY_REFS_ITEMS = CountBound("spec.service.gatewayRefs", 0, 32, "Gateway API allows 32 parentRefs per route")
HOSTS_ITEMS = CountBound("spec.service.hosts", 0, 16, "Gateway API allows 16 hostnames per route")
REQUEST_HEADERS_REMOVE_ITEMS = CountBound(
    "spec.service.headers.request.remove", 0, 16, "Gateway API allows 16 header changes per filter",
)
RESPONSE_HEADERS_REMOVE_ITEMS = CountBound(
    "spec.service.headers.response.remove", 0, 16, "Gateway API allows 16 header changes per filter",
)

# --- outside the CRDs ------------------------------------------------------------------------

METRICS_WINDOW = DurationBound(
    "query parameter t", timedelta(seconds=1), _DAY, "30s",
    "the metrics server's window: the same range as metrics[].interval, for the same reasons",
)
WAIT_TIMEOUT = DurationBound(
    "--timeout", timedelta(seconds=1), timedelta(hours=168), "10m",
    "`canary wait`: a week outlasts any CI job; a release of many steps may run for days",
)
RECEIPT_TIMEOUT = DurationBound(
    "--timeout", timedelta(seconds=1), timedelta(hours=1), "30s",
    "rollback/promote/pause/resume/retry wait for the controller's receipt, which takes one "
    "reconciliation",
)

LISTEN_PORT = CountBound(
    "--metrics-port, --secure-port", 1, 65535, "the controller's and the metrics server's own TCP ports",
)
SHARD_BUCKETS = CountBound(
    "--shard-buckets", 0, 256,
    "0 turns sharding off; each bucket is a Lease some replica renews every retry period (2 s), "
    "so 256 is already about 128 Lease writes a second across the fleet",
)

#: What the Canary CRD must carry, by kind of bound; tests/crds/test_bounds.py walks these.
CANARY_DURATIONS: tuple[DurationBound, ...] = (
    ANALYSIS_INTERVAL, METRIC_INTERVAL, WEBHOOK_TIMEOUT, ROUTE_TIMEOUT, ROUTE_BACKEND_TIMEOUT, JUDGE_LOOK_EVERY,
)
CANARY_NUMBERS: tuple[NumberBound, ...] = (
    JUDGE_ALPHA, JUDGE_ERROR_TOLERANCE, JUDGE_MIN_INCREASE, JUDGE_LATENCY_TOLERANCE,
)
CANARY_COUNTS: tuple[CountBound, ...] = (
    SERVICE_PORT, PROGRESS_DEADLINE_SECONDS, THRESHOLD, MAX_WEIGHT, STEP_WEIGHT, STEP_WEIGHTS_ITEM,
    STEP_WEIGHT_PROMOTION, ITERATIONS, MIN_SAMPLE_SIZE, CONSECUTIVE_ERROR_LIMIT, CONSECUTIVE_NO_DATA_LIMIT,
    WEBHOOK_RETRIES, GATEWAY_REF_PORT,
    PRIMARY_READY_THRESHOLD, CANARY_READY_THRESHOLD, MIRROR_WEIGHT, SESSION_MAX_AGE, PRIMARY_SCALER_MIN_REPLICAS,
    PRIMARY_SCALER_MAX_REPLICAS,
)
CANARY_LISTS: tuple[CountBound, ...] = (
    STEP_WEIGHTS_ITEMS, METRICS_ITEMS, WEBHOOKS_ITEMS, ALERTS_ITEMS, MATCH_ITEMS, GATEWAY_REFS_ITEMS, HOSTS_ITEMS,
    REQUEST_HEADERS_REMOVE_ITEMS, RESPONSE_HEADERS_REMOVE_ITEMS,
)
#: Bounds that live only in this process (a query parameter, command-line flags).
PROCESS_DURATIONS: tuple[DurationBound, ...] = (METRICS_WINDOW, WAIT_TIMEOUT, RECEIPT_TIMEOUT)
PROCESS_COUNTS: tuple[CountBound, ...] = (LISTEN_PORT, SHARD_BUCKETS)
