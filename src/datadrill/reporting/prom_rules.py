"""Prometheus recording and alerting rules from scenarios' SLOs, over the metrics the
stack serves (:mod:`datadrill.interfaces.metrics`).

One rule group per scenario (rules in a group run in order at each evaluation, so the
alerts read recording rules of the same evaluation, never of the one before):

- **recording rules**: the SLO's error ratio over each window the alerts use,
  ``slo:datadrill_sli_errors:ratio_rate<window>`` = 1 − good samples / samples;
- **a threshold alert** for an SLO whose alert is :class:`ThresholdAlert`: the SLI's
  latest sample is bad, ``for`` the rule's duration (what datadrill itself evaluates);
- for an SLO whose alert is :class:`BurnRateAlert`: the scenario's own rule (its factor
  over its long and short windows, ``severity: page``), and the four multi-window,
  multi-burn-rate alerts of the Google SRE Workbook ("Alerting on SLOs"), each derived from
  the share of the error budget it may burn in its long window: for a 30-day period, 2 %
  in 1 h is a burn rate of 14.4 (page, short window 5 m), 5 % in 6 h is 6 (page, 30 m),
  10 % in 1 d is 3 (ticket, 2 h), 10 % in 3 d is 1 (ticket, 6 h). A drill lasts minutes,
  not 30 days, so the windows are **scaled to the drill**: the scenario's declared long
  window plays the Workbook's 1 h, and every window is scaled by the same factor
  (``long_window_s / 3600``); the burn-rate factors do not change with the scale (they are
  ratios of budget to time). No window is shorter than ``min_window_s`` (4 s by default: four
  scrapes at 1 s; ``rate()`` needs two samples in its window).

An alert fires when the error ratio exceeds ``factor × (1 − objective)`` over both windows.
Alert names are CamelCase from the scenario and the SLO, unique across the scenarios given.

Example::

    text = rules_yaml([load_scenario(Path("scenarios/metadata_loss.py"))])
    # groups:
    # - name: datadrill.metadata-loss
    #   rules:
    #   - record: slo:datadrill_sli_errors:ratio_rate30s ...
    #   - alert: MetadataLossMartQueriesSucceedBad
    #     expr: min by (scenario, slo) (datadrill_sli_good{scenario="metadata-loss",slo="mart queries succeed"}) == 0
    #     for: 2s ...
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from datadrill.model.scenario import Scenario
from datadrill.model.slo import SLO, BurnRateAlert, ThresholdAlert
from datadrill.slo_windows import DEFAULT_MIN_WINDOW_S

HOUR_S = 3600.0
WORKBOOK_PERIOD_S = 30 * 24 * HOUR_S
# A window every scenario's group records, for dashboards (one minute of the drill).
DASHBOARD_WINDOW_S = 60.0
RATIO_RECORD = "slo:datadrill_sli_errors:ratio_rate{window}"


@dataclass(frozen=True)
class WorkbookTier:
    """One of the Workbook's alerts for a 30-day period: the share of the budget it may
    burn within its long window; the short window is 1/12 of the long one."""

    name: str
    severity: str
    budget_share: float
    long_window_s: float

    @property
    def factor(self) -> float:
        """The burn rate that spends ``budget_share`` of a 30-day budget in the long window."""
        return self.budget_share * WORKBOOK_PERIOD_S / self.long_window_s

    @property
    def short_window_s(self) -> float:
        return self.long_window_s / 12


WORKBOOK_TIERS = (
    WorkbookTier("PageFast", "page", 0.02, HOUR_S),  # 14.4 over 1 h and 5 m
    WorkbookTier("PageSlow", "page", 0.05, 6 * HOUR_S),  # 6 over 6 h and 30 m
    WorkbookTier("TicketFast", "ticket", 0.10, 24 * HOUR_S),  # 3 over 1 d and 2 h
    WorkbookTier("TicketSlow", "ticket", 0.10, 72 * HOUR_S),  # 1 over 3 d and 6 h
)


def duration(seconds: float) -> str:
    """A Prometheus duration in its largest units: ``1h``, ``2m30s``, ``36m``; anything
    finer than a second in milliseconds (``2500ms``)."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    rest, parts = millis // 1000, []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def camel(text: str) -> str:
    """``"mart queries succeed"`` → ``"MartQueriesSucceed"`` (letters and digits only)."""
    words = re.findall(r"[A-Za-z0-9]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words)
    return name if name[:1].isalpha() else f"X{name}"


def _quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _selector(**labels: str) -> str:
    return "{" + ",".join(f"{k}={_quote(v)}" for k, v in labels.items()) + "}"


def _ratio_record(scenario: str, window_s: float) -> dict[str, Any]:
    sel = _selector(scenario=scenario)
    w = duration(window_s)
    good = f"sum by (scenario, slo) (rate(datadrill_slo_good_samples_total{sel}[{w}]))"
    total = f"sum by (scenario, slo) (rate(datadrill_slo_samples_total{sel}[{w}]))"
    return {
        "record": RATIO_RECORD.format(window=w),
        "expr": f"1 - ({good} / {total})",
        # The same record in every scenario's group: the label tells them apart (promtool's
        # lint refuses identical rules).
        "labels": {"scenario": scenario},
    }


@dataclass(frozen=True)
class _BurnRule:
    name: str
    severity: str
    factor: float
    long_window_s: float
    short_window_s: float
    origin: str  # "the scenario's rule" or the Workbook tier


def _burn_rules(slo: SLO, alert: BurnRateAlert, *, min_window_s: float) -> list[_BurnRule]:
    rules = [
        _BurnRule(
            "BurnRate",
            "page",
            alert.factor,
            max(alert.long_window_s, min_window_s),
            max(alert.short_window_s, min_window_s),
            "the scenario's own rule",
        )
    ]
    scale = alert.long_window_s / HOUR_S
    for tier in WORKBOOK_TIERS:
        rules.append(
            _BurnRule(
                f"ErrorBudgetBurn{tier.name}",
                tier.severity,
                tier.factor,
                max(tier.long_window_s * scale, min_window_s),
                max(tier.short_window_s * scale, min_window_s),
                f"SRE Workbook: {tier.budget_share * 100:g}% of a 30-day budget in "
                f"{duration(tier.long_window_s)}, windows scaled by "
                f"{duration(alert.long_window_s)}/{duration(HOUR_S)}",
            )
        )
    return rules


def _windows(scenario: Scenario, *, min_window_s: float) -> list[float]:
    windows = {DASHBOARD_WINDOW_S}
    for slo in scenario.slos:
        if isinstance(slo.alert, BurnRateAlert):
            for rule in _burn_rules(slo, slo.alert, min_window_s=min_window_s):
                windows.update((rule.long_window_s, rule.short_window_s))
    return sorted(windows)


class _Names:
    """Alert and group names, unique across everything generated in one document."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, name: str) -> str:
        unique, n = name, 2
        while unique in self.used:
            unique, n = f"{name}{n}", n + 1
        self.used.add(unique)
        return unique


def _labels(scenario: Scenario, slo: SLO, severity: str) -> dict[str, str]:
    return {"slo": slo.name, "severity": severity, "scenario": scenario.name}


def _threshold_alert(scenario: Scenario, slo: SLO, alert: ThresholdAlert, names: _Names) -> dict[str, Any]:
    sel = _selector(scenario=scenario.name, slo=slo.name)
    rule: dict[str, Any] = {
        "alert": names.take(f"{camel(scenario.name)}{camel(slo.name)}Bad"),
        # min: a run whose latest sample is bad; a new run's series replaces the last one.
        "expr": f"min by (scenario, slo) (datadrill_sli_good{sel}) == 0",
    }
    if alert.for_s > 0:
        rule["for"] = duration(alert.for_s)
    rule["labels"] = _labels(scenario, slo, "page")
    rule["annotations"] = {
        "summary": f"SLO '{slo.name}' of {scenario.name}: its SLI is bad",
        "description": f"SLO: {slo.statement()}. Fires when the SLI is {alert.describe()}.",
    }
    return rule


def _burn_alert(scenario: Scenario, slo: SLO, burn: _BurnRule, names: _Names) -> dict[str, Any]:
    allowed = 1.0 - slo.objective
    threshold = burn.factor * allowed
    sel = _selector(scenario=scenario.name, slo=slo.name)

    def over(window_s: float) -> str:
        return f"{RATIO_RECORD.format(window=duration(window_s))}{sel} > {_number(threshold)}"

    never = " It cannot fire: the threshold is above an error ratio of 1." if threshold >= 1 else ""
    return {
        "alert": names.take(f"{camel(scenario.name)}{camel(slo.name)}{burn.name}"),
        "expr": f"({over(burn.long_window_s)}) and ({over(burn.short_window_s)})",
        "labels": {
            **_labels(scenario, slo, burn.severity),
            "long_window": duration(burn.long_window_s),
            "short_window": duration(burn.short_window_s),
        },
        "annotations": {
            "summary": (
                f"SLO '{slo.name}' of {scenario.name}: error budget burning faster than "
                f"{_number(burn.factor)}x"
            ),
            "description": (
                f"SLO: {slo.statement()}. Error ratio above {_number(burn.factor)} x "
                f"{_number(allowed)} = {_number(threshold)} over {duration(burn.long_window_s)} and "
                f"{duration(burn.short_window_s)} ({burn.origin}).{never}"
            ),
        },
    }


def _number(value: float) -> str:
    """Short and exact enough for PromQL and people: 0.144, 14.4, 0.01."""
    text = f"{value:.6g}"
    return text if "e" not in text else repr(value)


def rule_groups(
    scenarios: Sequence[Scenario], *, min_window_s: float = DEFAULT_MIN_WINDOW_S
) -> dict[str, Any]:
    """The rules document (``{"groups": [...]}``) for ``scenarios``."""
    if not math.isfinite(min_window_s) or min_window_s <= 0:
        raise ValueError(f"min_window_s must be a positive number of seconds, got {min_window_s!r}")
    names = _Names()
    groups = []
    for scenario in scenarios:
        rules: list[dict[str, Any]] = [
            _ratio_record(scenario.name, w) for w in _windows(scenario, min_window_s=min_window_s)
        ]
        for slo in scenario.slos:
            if isinstance(slo.alert, ThresholdAlert):
                rules.append(_threshold_alert(scenario, slo, slo.alert, names))
            elif isinstance(slo.alert, BurnRateAlert):
                for burn in _burn_rules(slo, slo.alert, min_window_s=min_window_s):
                    rules.append(_burn_alert(scenario, slo, burn, names))
            else:  # pragma: no cover - the model admits no other alert
                raise TypeError(f"unknown alert rule {slo.alert!r}")
        groups.append({"name": names.take(f"datadrill.{scenario.name}"), "rules": rules})
    return {"groups": groups}


def rules_yaml(scenarios: Sequence[Scenario], *, min_window_s: float = DEFAULT_MIN_WINDOW_S) -> str:
    """The rules document as YAML, as Prometheus's ``rule_files`` and promtool read it."""
    header = (
        "# Prometheus rules generated by `datadrill slo rules` from the scenarios' SLOs.\n"
        "# Scrape the stack's metrics URL (`datadrill stack status`, component metrics).\n"
    )
    body: str = yaml.safe_dump(
        rule_groups(scenarios, min_window_s=min_window_s), sort_keys=False, width=1000, allow_unicode=True
    )
    return header + body
