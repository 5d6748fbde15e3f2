"""Statistics on runs: the replicate is the run (one cell in one round), never the file.

Estimand: a cell's corpus RTF, sum of processing time / sum of audio time over the corpus as given, per
run. Run-to-run noise on this machine is multiplicative (a run is a few per cent slower or faster as a
whole), so everything works on log RTF:

- a cell's figure is the geometric mean of its runs' RTF, with a Student t interval on the mean log RTF;
- two cells compare by the ratio of their figures. Where they ran in the same rounds (back to back, so
  the pair shares the machine's drift), the interval is a paired t interval on the per-round log ratios;
  otherwise Welch's t interval on the two sets of log RTF.

One statistic ranks, gives the ratio and bounds it: the point always lies inside its own interval, and
with n runs the interval has n - 1 degrees of freedom, which is what makes 2-3 runs honestly wide.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as sps

ALPHA = 0.05          # two-sided: 95 % intervals
NOISY_CV_PCT = 5.0    # a cell whose runs vary more than this (CV of RTF) is flagged noisy


@dataclass(frozen=True)
class Estimate:
    """A geometric mean of per-run values with its t interval (None bounds with fewer than 2 runs)."""
    point: float
    low: float | None
    high: float | None
    n: int
    sd_log: float | None          # standard deviation of the runs' log values

    @classmethod
    def from_values(cls, values, alpha: float = ALPHA) -> Estimate | None:
        logs = np.log(np.asarray([v for v in values if v and v > 0], dtype=np.float64))
        if logs.size == 0:
            return None
        mean = float(logs.mean())
        if logs.size < 2:
            return cls(math.exp(mean), None, None, 1, None)
        sd = float(logs.std(ddof=1))
        half = t_quantile(1 - alpha / 2, logs.size - 1) * sd / math.sqrt(logs.size)
        return cls(math.exp(mean), math.exp(mean - half), math.exp(mean + half), int(logs.size), sd)

    @property
    def cv_pct(self) -> float | None:
        return None if self.sd_log is None else 100 * math.sqrt(math.expm1(self.sd_log ** 2))


@dataclass(frozen=True)
class Ratio:
    """value(a) / value(b) with its interval; `paired` says whether the runs were paired by round."""
    point: float
    low: float | None
    high: float | None
    n: int                 # paired rounds, or the smaller of the two run counts
    paired: bool

    @property
    def below_one(self) -> bool:
        return self.high is not None and self.high < 1.0

    @property
    def above_one(self) -> bool:
        return self.low is not None and self.low > 1.0

    def scaled(self, factor: float) -> Ratio:
        return Ratio(self.point * factor, _mul(self.low, factor), _mul(self.high, factor), self.n, self.paired)


def _mul(x, f):
    return None if x is None else x * f


def t_quantile(p: float, df: float) -> float:
    return _t_quantile(p, round(float(df), 3))


@lru_cache(maxsize=4096)
def _t_quantile(p: float, df: float) -> float:
    return float(sps.t.ppf(p, df))


def _mean_sd(x: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation in plain Python: these lists hold a handful of runs, where numpy's
    per-call cost dominates (the simulations call this hundreds of thousands of times)."""
    m = math.fsum(x) / len(x)
    return m, math.sqrt(math.fsum((v - m) ** 2 for v in x) / (len(x) - 1)) if len(x) > 1 else 0.0


def geometric_mean(values) -> float | None:
    logs = [math.log(v) for v in values if v and v > 0]
    return math.exp(math.fsum(logs) / len(logs)) if logs else None


def ratio(a: dict, b: dict, alpha: float = ALPHA) -> Ratio | None:
    """a and b map a run key -> that run's value (RTF). Paired over the keys both have when there are at
    least two (runs of one round, back to back); else Welch over all runs. The point is the ratio of the
    geometric means of the runs used."""
    common = [k for k in a if k in b]
    if len(common) >= 2:
        d = [math.log(a[k]) - math.log(b[k]) for k in common]
        mean, sd = _mean_sd(d)
        half = t_quantile(1 - alpha / 2, len(d) - 1) * sd / math.sqrt(len(d))
        return Ratio(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(d), True)
    if not a or not b:
        return None
    la, lb = np.log(list(a.values())), np.log(list(b.values()))
    point = math.exp(float(la.mean() - lb.mean()))
    if la.size < 2 or lb.size < 2:
        return Ratio(point, None, None, min(la.size, lb.size), False)
    mean, half = welch(la, lb, alpha)
    return Ratio(point, math.exp(mean - half), math.exp(mean + half), int(min(la.size, lb.size)), False)


def welch(x: np.ndarray, y: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    """Mean difference x - y and the half-width of its Welch t interval."""
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0:
        return float(x.mean() - y.mean()), 0.0
    df = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1))
    return float(x.mean() - y.mean()), t_quantile(1 - alpha / 2, df) * se


def welch_p_beyond(x: np.ndarray, y: np.ndarray, margin: float) -> tuple[float, float]:
    """One-sided p-values that mean(x) - mean(y) exceeds +margin (slower) and lies below -margin (faster),
    on logs: the tests behind `compare`'s minimum effect."""
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    diff = float(x.mean() - y.mean())
    if se == 0:
        return (0.0 if diff > margin else 1.0), (0.0 if diff < -margin else 1.0)
    df = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1))
    return float(sps.t.sf((diff - margin) / se, df)), float(sps.t.cdf((diff + margin) / se, df))


def holm(pvalues: list[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected with the family-wise error held at alpha."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    reject = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        reject[i] = True
    return reject


def resolvable_ratio(sd_pair_log: float, n: int, alpha: float = ALPHA, power: float = 0.8) -> float | None:
    """The smallest ratio a paired comparison of n rounds names with the given power, for a per-pair log
    noise sd (the t approximation with n - 1 degrees of freedom)."""
    if n < 2 or sd_pair_log <= 0:
        return None
    df = n - 1
    return math.exp((t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * sd_pair_log / math.sqrt(n))
