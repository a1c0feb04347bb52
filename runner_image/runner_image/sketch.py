"""Mergeable, bounded summaries of one field's values: what the drift statistics (runner_image.stats) keep
per field and per time window, and the distances computed from them.

- `Histogram`: a log-bucketed histogram in the manner of DDSketch. A finite value x goes to the bucket
  ceil(log_gamma |x|) (with its sign; |x| < 1e-9 to a zero bucket), gamma = (1 + a) / (1 - a), a = 1 %:
  any quantile read back is within 1 % of the true value of that rank. At most `MAX_BUCKETS` buckets are
  kept; beyond, the lowest ones fold into the lowest kept one (DDSketch's "collapsing lowest" store), so
  the high quantiles stay accurate and memory stays bounded whatever values arrive. Merging adds counts
  bucket by bucket and then collapses; the result is the histogram of the union whatever the order of the
  merges (associative and commutative, exactly: see `collapse`).
- `Moments`: count, mean and the sum of squared deviations (Welford, merged with Chan's formula), min, max.
- `Categories`: counts of at most `cap` distinct values (strings cut to `MAX_CATEGORY_CHARS`) plus
  "other" for the rest; the totals are always exact, the top-K exact while a window has at most K values.
- `FieldStats`: what one field keeps, by kind: numbers (a histogram, moments, NaN and infinity counts),
  integers (the same plus categories, so that a field of few values is compared as categories),
  categories (strings, bools, enums), bytes (their lengths, as numbers).

The distances and tests (psi, wasserstein, kolmogorov_smirnov, chi_squared, jensen_shannon) work on these
summaries; which decides when is in runner_image.stats.
"""

from __future__ import annotations

import bisect
import math
import sys

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
_INV_LOG_GAMMA = 1 / _LOG_GAMMA
_LOG_CENTRE = math.log(2 / (GAMMA + 1))  # a bucket (g^(i-1), g^i] stands for 2 g^i / (g + 1)
_MAX_EXPONENT = math.log(sys.float_info.max)
MIN_MAGNITUDE = 1e-9   # below it, a value counts as zero
_OFFSET = 1100         # ceil(log_gamma 1e-9) is -1036: every positive key is >= 64, negatives mirror them
MAX_BUCKETS = 512      # 1 % buckets over 4.4 decades; wider ranges collapse their lowest values
MAX_CATEGORY_CHARS = 64
EPSILON = 1e-4         # PSI's stand-in for an empty bin's share (Evidently's)

NUMBER, INTEGER, CATEGORY, BYTES = "number", "integer", "category", "bytes"
_log, _ceil = math.log, math.ceil
KINDS = (NUMBER, INTEGER, CATEGORY, BYTES)


def bucket_key(x: float) -> int:
    if x > MIN_MAGNITUDE:
        return math.ceil(math.log(x) * _INV_LOG_GAMMA) + _OFFSET
    if x < -MIN_MAGNITUDE:
        return -(math.ceil(math.log(-x) * _INV_LOG_GAMMA) + _OFFSET)
    return 0


def bucket_value(key: int) -> float:
    """The value a bucket stands for: within RELATIVE_ACCURACY of every value in it."""
    if key == 0:
        return 0.0
    exponent = (abs(key) - _OFFSET) * _LOG_GAMMA + _LOG_CENTRE
    magnitude = math.exp(exponent) if exponent < _MAX_EXPONENT else sys.float_info.max  # the top bucket
    return magnitude if key > 0 else -magnitude


# ---------------------------------------------------------------- histogram

class Histogram:
    __slots__ = ("counts",)

    def __init__(self, counts: dict[int, int] | None = None):
        self.counts = counts if counts is not None else {}

    def add(self, x: float) -> None:
        key = bucket_key(x)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        if len(counts) > 2 * MAX_BUCKETS:  # collapse now and then, not on every new bucket
            self.collapse()

    def merge(self, other: Histogram) -> Histogram:
        counts = self.counts
        for key, count in other.counts.items():
            counts[key] = counts.get(key, 0) + count
        self.collapse()
        return self

    def collapse(self) -> None:
        """Fold every bucket below the MAX_BUCKETS highest keys into the lowest of those.

        The result depends only on the multiset of values added: the highest keys of a union are the
        highest of its parts' highest keys, and mass folded into a part's lowest kept key lands, after the
        next collapse, at or above it, in the union's lowest kept key. So merges in any order agree."""
        counts = self.counts
        if len(counts) <= MAX_BUCKETS:
            return
        keys = sorted(counts)
        floor = keys[-MAX_BUCKETS]
        folded = sum(counts.pop(key) for key in keys[:-MAX_BUCKETS])
        counts[floor] += folded

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def items(self) -> list[tuple[int, int]]:
        return sorted(self.counts.items())

    def key_at_rank(self, rank: int) -> int:
        """The key of the value at 0-based `rank` in sorted order."""
        seen = 0
        items = self.items()
        for key, count in items:
            seen += count
            if seen > rank:
                return key
        return items[-1][0]

    def quantile(self, q: float) -> float | None:
        """The value of rank floor(q (n - 1)), within RELATIVE_ACCURACY (numpy's method="lower")."""
        total = self.total
        if not total:
            return None
        return bucket_value(self.key_at_rank(math.floor(q * (total - 1))))

    def to_json(self) -> list:
        items = self.items()
        return [[k for k, _ in items], [c for _, c in items]]

    @classmethod
    def from_json(cls, data) -> Histogram:
        keys, counts = data
        return cls(dict(zip(keys, counts, strict=True)))


# ---------------------------------------------------------------- moments

class Moments:
    __slots__ = ("n", "mean", "m2", "min", "max")

    def __init__(self, n=0, mean=0.0, m2=0.0, low=math.inf, high=-math.inf):
        self.n, self.mean, self.m2, self.min, self.max = n, mean, m2, low, high

    def add(self, x: float) -> None:
        n = self.n + 1
        self.n = n
        delta = x - self.mean
        self.mean += delta / n
        self.m2 += delta * (x - self.mean)
        if x < self.min:  # noqa: PLR1730 (a comparison costs less than a call, once per value)
            self.min = x
        if x > self.max:  # noqa: PLR1730
            self.max = x

    def merge(self, other: Moments) -> Moments:
        if not other.n:
            return self
        if not self.n:
            self.n, self.mean, self.m2, self.min, self.max = other.n, other.mean, other.m2, other.min, other.max
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    @property
    def std(self) -> float | None:
        """The population standard deviation (numpy's default, and what Evidently normalises by)."""
        return math.sqrt(max(self.m2, 0.0) / self.n) if self.n else None

    def to_json(self) -> list:
        return [self.n, self.mean, self.m2, self.min if self.n else None, self.max if self.n else None]

    @classmethod
    def from_json(cls, data) -> Moments:
        n, mean, m2, low, high = data
        return cls(n, mean, m2, math.inf if low is None else low, -math.inf if high is None else high)


# ---------------------------------------------------------------- categories

class Categories:
    """Counts by value for at most `cap` values, plus `other` for the rest. While values arrive up to twice
    `cap` are counted; a new value beyond trims back to the `cap` most frequent (the rest go to `other`),
    so a value that becomes frequent late still finds a place. Totals are always exact."""

    __slots__ = ("counts", "other", "cap")

    def __init__(self, cap: int, counts: dict[str, int] | None = None, other: int = 0):
        self.cap, self.counts, self.other = cap, counts if counts is not None else {}, other

    def add(self, value: str) -> None:
        counts = self.counts
        count = counts.get(value)
        if count is not None:
            counts[value] = count + 1
        else:
            if len(counts) >= 2 * self.cap:
                self.trim()
                counts = self.counts
            counts[value] = 1

    def merge(self, other: Categories) -> Categories:
        counts = self.counts
        for value, count in other.counts.items():
            counts[value] = counts.get(value, 0) + count
        self.other += other.other
        self.trim()
        return self

    def trim(self) -> None:
        if len(self.counts) <= self.cap:
            return
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        self.counts = dict(ranked[:self.cap])
        self.other += sum(count for _, count in ranked[self.cap:])

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.other

    def top(self, limit: int | None = None) -> list[tuple[str, int]]:
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:limit] if limit else ranked

    def to_json(self) -> list:
        self.trim()
        return [self.counts, self.other]

    @classmethod
    def from_json(cls, data, cap: int) -> Categories:
        counts, other = data
        return cls(cap, dict(counts), other)


def category_of(value) -> str:
    """A category's name: booleans as true/false, long strings cut (a key is kept in memory and on disk)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_CATEGORY_CHARS else text[:MAX_CATEGORY_CHARS] + "…"


# ---------------------------------------------------------------- one field

class FieldStats:
    """One field's values in one window (or several merged)."""

    __slots__ = ("kind", "moments", "histogram", "categories", "nan", "inf", "missing")

    def __init__(self, kind: str, top_k: int):
        self.kind = kind
        numeric = kind != CATEGORY
        self.moments = Moments() if numeric else None
        self.histogram = Histogram() if numeric else None
        self.categories = Categories(top_k) if kind in (CATEGORY, INTEGER) else None
        self.nan = 0
        self.inf = 0
        self.missing = 0  # an optional field left unset

    def add_number(self, x: float) -> None:
        """Moments.add and Histogram.add written out: this runs once per value, calls cost most here."""
        if x - x != 0:  # NaN or an infinity (inf - inf is NaN): the sketch and moments take finite values
            if math.isnan(x):
                self.nan += 1
            else:
                self.inf += 1
            return
        m = self.moments
        n = m.n = m.n + 1
        delta = x - m.mean
        m.mean += delta / n
        m.m2 += delta * (x - m.mean)
        if x < m.min:  # noqa: PLR1730
            m.min = x
        if x > m.max:  # noqa: PLR1730
            m.max = x
        if x > MIN_MAGNITUDE:
            key = _ceil(_log(x) * _INV_LOG_GAMMA) + _OFFSET
        elif x < -MIN_MAGNITUDE:
            key = -(_ceil(_log(-x) * _INV_LOG_GAMMA) + _OFFSET)
        else:
            key = 0
        counts = self.histogram.counts
        counts[key] = counts.get(key, 0) + 1
        if len(counts) > 2 * MAX_BUCKETS:
            self.histogram.collapse()

    def add_integer(self, x: int) -> None:
        self.add_number(x)
        self.categories.add(str(x))

    def add_category(self, value) -> None:
        self.categories.add(category_of(value))

    def add_bytes(self, value: bytes) -> None:
        self.add_number(len(value))

    def adder(self):
        """The method that takes one value of this kind (resolved once per field, not per value)."""
        return {NUMBER: self.add_number, INTEGER: self.add_integer, CATEGORY: self.add_category,
                BYTES: self.add_bytes}[self.kind]

    @property
    def count(self) -> int:
        """Values seen, NaN and infinities included."""
        seen = self.moments.n if self.moments is not None else self.categories.total
        return seen + self.nan + self.inf

    def merge(self, other: FieldStats) -> FieldStats:
        if other.kind != self.kind:  # the same path with another type (a proto swap): keep the first
            return self
        if self.moments is not None:
            self.moments.merge(other.moments)
            self.histogram.merge(other.histogram)
        if self.categories is not None:
            self.categories.merge(other.categories)
        self.nan += other.nan
        self.inf += other.inf
        self.missing += other.missing
        return self

    def to_json(self) -> dict:
        data: dict = {"k": self.kind}
        if self.moments is not None:
            self.histogram.collapse()
            data["m"] = self.moments.to_json()
            data["h"] = self.histogram.to_json()
        if self.categories is not None:
            data["c"] = self.categories.to_json()
        if self.nan:
            data["nan"] = self.nan
        if self.inf:
            data["inf"] = self.inf
        if self.missing:
            data["miss"] = self.missing
        return data

    @classmethod
    def from_json(cls, data: dict, top_k: int) -> FieldStats:
        kind = data["k"]
        if kind not in KINDS:
            raise ValueError(f"unknown field kind {kind!r}")
        stats = cls(kind, top_k)
        if stats.moments is not None:
            stats.moments = Moments.from_json(data["m"])
            stats.histogram = Histogram.from_json(data["h"])
        if stats.categories is not None:
            stats.categories = Categories.from_json(data["c"], top_k)
        stats.nan = int(data.get("nan", 0))
        stats.inf = int(data.get("inf", 0))
        stats.missing = int(data.get("miss", 0))
        return stats

    def summary(self, top: int | None = None) -> dict:
        out: dict = {"kind": self.kind, "count": self.count, "missing": self.missing}
        if self.moments is not None:
            m, h = self.moments, self.histogram
            quantiles = {name: h.quantile(q) for name, q in (("p5", 0.05), ("p50", 0.5), ("p95", 0.95))}
            if self.kind != NUMBER:  # whole numbers: the nearest one is the value (within 1 %)
                quantiles = {name: None if v is None else round(v) for name, v in quantiles.items()}
            out.update(mean=m.mean if m.n else None, std=m.std, min=m.min if m.n else None,
                       max=m.max if m.n else None, **quantiles)
            if self.kind == NUMBER:
                out.update(nan=self.nan, inf=self.inf)
        if self.categories is not None:
            as_value = int if self.kind == INTEGER else str
            out["top"] = [{"value": as_value(v), "count": c} for v, c in self.categories.top(top)]
            out["other"] = self.categories.other
            out["distinct_counted"] = len(self.categories.counts)
        return out


# ---------------------------------------------------------------- distances

def psi_bins(reference: Histogram) -> list[int]:
    """The keys of the reference's deciles (10 bins; fewer when values repeat): edges for PSI."""
    total = reference.total
    edges = {reference.key_at_rank(math.floor(total * i / 10)) for i in range(1, 10)} if total else set()
    return sorted(edges)


def binned(histogram: Histogram, edges: list[int]) -> list[int]:
    """Counts per bin: bin i holds the keys in (edges[i-1], edges[i]]; the last bin everything above."""
    bins = [0] * (len(edges) + 1)
    for key, count in histogram.counts.items():
        bins[bisect.bisect_left(edges, key)] += count
    return bins


def psi(reference: list[float], current: list[float]) -> float:
    """Population stability index of two binned distributions (counts or shares)."""
    ref_total, cur_total = sum(reference), sum(current)
    value = 0.0
    for r, c in zip(reference, current, strict=True):
        r_share = max(r / ref_total, EPSILON)
        c_share = max(c / cur_total, EPSILON)
        value += (c_share - r_share) * math.log(c_share / r_share)
    return value


def histogram_psi(reference: Histogram, current: Histogram) -> float:
    edges = psi_bins(reference)
    return psi(binned(reference, edges), binned(current, edges))


def wasserstein(reference: Histogram, current: Histogram) -> float:
    """Earth mover's distance between the two histograms, each bucket at its representative value."""
    ref_total, cur_total = reference.total, current.total
    keys = sorted(set(reference.counts) | set(current.counts))
    ref_cdf = cur_cdf = 0.0
    distance = 0.0
    for i, key in enumerate(keys[:-1]):
        ref_cdf += reference.counts.get(key, 0) / ref_total
        cur_cdf += current.counts.get(key, 0) / cur_total
        distance += abs(ref_cdf - cur_cdf) * (bucket_value(keys[i + 1]) - bucket_value(key))
    return distance


def kolmogorov_smirnov(reference: Histogram, current: Histogram) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs, read at every
    bucket's upper edge (values within 1 % of each other count as tied, which can only lower it)."""
    ref_total, cur_total = reference.total, current.total
    if not ref_total or not cur_total:
        return 0.0
    ref_cdf = cur_cdf = gap = 0.0
    for key in sorted(set(reference.counts) | set(current.counts)):
        ref_cdf += reference.counts.get(key, 0) / ref_total
        cur_cdf += current.counts.get(key, 0) / cur_total
        gap = max(gap, abs(ref_cdf - cur_cdf))
    return gap


def ks_critical(n_reference: int, n_current: int, alpha: float) -> float:
    """The statistic over which two samples of these sizes differ at level `alpha`: Kolmogorov's limit
    distribution with Stephens' small-sample correction (Numerical Recipes' probks), whose tail at the
    critical point is one term, 2 exp(-2 lambda^2) = alpha."""
    effective = math.sqrt(n_reference * n_current / (n_reference + n_current))
    return math.sqrt(-math.log(alpha / 2) / 2) / (effective + 0.12 + 0.11 / effective)


def ks_p_value(statistic: float, n_reference: int, n_current: int) -> float:
    """P(D >= statistic) for samples of these sizes from one distribution (the same approximation)."""
    effective = math.sqrt(n_reference * n_current / (n_reference + n_current))
    lam = (effective + 0.12 + 0.11 / effective) * statistic
    if lam < 0.3:
        return 1.0  # the series converges slowly here, to 1 within 1e-4
    total, sign = 0.0, 1.0
    for j in range(1, 101):
        term = 2 * sign * math.exp(-2 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
        sign = -sign
    return min(1.0, max(0.0, total))


def chi_squared(reference: dict[str, int], current: dict[str, int]) -> tuple[float, int, float]:
    """Pearson's chi-squared test of homogeneity of two samples of categories (a 2 x k table, no
    continuity correction): (statistic, degrees of freedom, p-value)."""
    names = [n for n in set(reference) | set(current) if reference.get(n, 0) + current.get(n, 0) > 0]
    ref_total = sum(reference.get(n, 0) for n in names)
    cur_total = sum(current.get(n, 0) for n in names)
    total = ref_total + cur_total
    if len(names) < 2 or not ref_total or not cur_total:
        return 0.0, max(len(names) - 1, 0), 1.0
    statistic = 0.0
    for name in names:
        column = reference.get(name, 0) + current.get(name, 0)
        for observed, row in ((reference.get(name, 0), ref_total), (current.get(name, 0), cur_total)):
            expected = row * column / total
            statistic += (observed - expected) ** 2 / expected
    df = len(names) - 1
    return statistic, df, chi2_sf(statistic, df)


def jensen_shannon(reference: dict[str, int], current: dict[str, int]) -> float:
    """Jensen-Shannon distance (the square root of the divergence, natural log: scipy's and Evidently's)."""
    ref_total, cur_total = sum(reference.values()), sum(current.values())
    if not ref_total or not cur_total:
        return 0.0
    divergence = 0.0
    for name in set(reference) | set(current):
        p = reference.get(name, 0) / ref_total
        q = current.get(name, 0) / cur_total
        m = (p + q) / 2
        if p:
            divergence += p * math.log(p / m) / 2
        if q:
            divergence += q * math.log(q / m) / 2
    return math.sqrt(max(divergence, 0.0))


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X chi-squared with `df` degrees of freedom: the regularized upper incomplete gamma
    function Q(df/2, x/2), by its series below a + 1 and its continued fraction above (Numerical Recipes)."""
    if df <= 0:
        return 1.0
    if x <= 0:
        return 1.0
    a, z = df / 2, x / 2
    if z < a + 1:
        return max(0.0, 1.0 - _gamma_series(a, z))
    return _gamma_continued_fraction(a, z)


def _gamma_series(a: float, z: float) -> float:
    term = total = 1 / a
    n = a
    for _ in range(10_000):
        n += 1
        term *= z / n
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-z + a * math.log(z) - math.lgamma(a))


def _gamma_continued_fraction(a: float, z: float) -> float:
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-z + a * math.log(z) - math.lgamma(a)) * h
