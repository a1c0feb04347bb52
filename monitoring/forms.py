"""The monitoring panel's forms: a deployment's alert rule (one form per kind) and its retraining hook, and the
sentence that says a rule in plain words.

A rule's threshold is typed in the unit a person reads it in: error rate and drift as a percentage (5, not
0.05), p99 in milliseconds, accuracy as a number from 0 to 1. The form turns it into what
monitoring.alerts.set_rule takes and checks its range first, so that its message speaks the unit of the field
it stands beside; whatever set_rule still refuses is put beside the field it names. The same goes for the
rollout form (RolloutForm: shares as percentages, deployment.services.set_rollout_settings)."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms

from deployment.choices import DEFAULT_ROLLOUT_GATES, RolloutMode
from monitoring.alerts import MAX_WINDOWS, is_default
from monitoring.choices import RuleKind


@dataclass(frozen=True)
class Unit:
    """How a kind's threshold is typed and said: `scale` times the stored value; the range it may take."""

    label: str
    suffix: str
    scale: float
    low: float
    high: float | None  # None: no upper bound
    low_included: bool
    help: str


UNITS = {
    RuleKind.DRIFT: Unit("Drifting input fields over", "%", 100, 0, 100, True,
                         "A share of each method's input fields, judged by the runner's test per field: "
                         "0 % is any one field, 50 % more than half of them."),
    RuleKind.QUALITY: Unit("Accuracy under", "", 1, 0, None, True,
                           "From the feedback clients send: 0.8 is 80 % of the answers right. An output judged by "
                           "MAE or RMSE fires when its error is over this number, in the output's unit."),
    RuleKind.ERROR_RATE: Unit("Error rate over", "%", 100, 0, 100, True,
                              "The share of requests answered with an error."),
    RuleKind.P99: Unit("p99 latency over", "ms", 1, 0, None, False,
                       "The time 99 % of requests are answered within."),
}


def shown(kind: str, value: float) -> str:
    """A stored threshold in its field's unit, without float noise (0.07 is "7", not "7.000000000000001")."""
    return f"{round(value * UNITS[kind].scale, 6):g}"


def _samples(windows: int) -> str:
    return "for 1 sample" if windows == 1 else f"for {windows} samples in a row"


def describe(rule) -> str:
    """The rule in a sentence: "Fires when the error rate is over 5 % for 3 samples in a row" (or that it is off)."""
    value, unit = shown(rule.kind, rule.threshold), UNITS[rule.kind].suffix
    if rule.kind == RuleKind.DRIFT:
        what = ("any input field drifts" if rule.threshold == 0
                else f"over {value} % of a method's input fields drift")
    elif rule.kind == RuleKind.QUALITY:
        what = (f"accuracy from feedback is under {value}" if is_default(rule)
                else f"accuracy from feedback is under {value} (or an MAE or RMSE over {value})")
    elif rule.kind == RuleKind.ERROR_RATE:
        what = f"the error rate is over {value} {unit}"
    else:
        what = f"p99 latency is over {value} {unit}"
    if not rule.enabled:
        return f"Off: it does not fire (when on, it fires when {what} {_samples(rule.windows)})"
    return f"Fires when {what} {_samples(rule.windows)}"


class RuleForm(forms.Form):
    """One rule's threshold (in its unit), samples in a row, on or off. Prefixed by its kind: the page holds
    one per kind, and each field's id must be its own."""

    threshold = forms.FloatField()
    windows = forms.IntegerField(label="Samples in a row", min_value=1, max_value=MAX_WINDOWS,
                                 help_text=f"1 to {MAX_WINDOWS}; a sample is taken each collection round.")
    enabled = forms.BooleanField(label="On", required=False)

    def __init__(self, kind: str, *args, rule=None, **kwargs):
        if rule is not None and "initial" not in kwargs:
            kwargs["initial"] = {"threshold": shown(kind, rule.threshold), "windows": rule.windows,
                                 "enabled": rule.enabled}
        super().__init__(*args, prefix=kind, **kwargs)
        self.kind = kind
        unit = UNITS[kind]
        field = self.fields["threshold"]
        field.label = f"{unit.label} ({unit.suffix})" if unit.suffix else unit.label
        field.help_text = unit.help
        field.widget.attrs.update({"step": "any", "min": unit.low, "inputmode": "decimal"})
        if unit.high is not None:
            field.widget.attrs["max"] = unit.high

    def clean_threshold(self) -> float:
        """The value set_rule takes (a share for a percentage), once it is in its unit's range."""
        value, unit = self.cleaned_data["threshold"], UNITS[self.kind]
        too_low = value < unit.low or (value == unit.low and not unit.low_included)
        if too_low or (unit.high is not None and value >= unit.high):
            raise forms.ValidationError(self._range())
        return value / unit.scale

    def _range(self) -> str:
        unit = UNITS[self.kind]
        low = f"{unit.low:g}" if unit.low_included else f"more than {unit.low:g}"
        suffix = f" {unit.suffix}" if unit.suffix else ""
        if unit.high is None:
            return f"Type {low}{suffix} or more." if unit.low_included else f"Type {low}{suffix}."
        return f"Type a number from {low} up to but not including {unit.high:g}{suffix}."


class HookForm(forms.Form):
    """This deployment's own retraining hook: where the events go, on which alerts, on or off."""

    url = forms.CharField(label="URL the events are POSTed to", max_length=500,
                          widget=forms.URLInput(attrs={"placeholder": "https://trainer.example.com/hook",
                                                       "spellcheck": "false", "autocomplete": "off"}),
                          help_text="Public addresses only, unless an admin allows private ones in the site settings.")
    on_alert = forms.MultipleChoiceField(label="Called on these alerts", choices=RuleKind.choices, required=False,
                                         widget=forms.CheckboxSelectMultiple,
                                         help_text="None ticked: only the “Call the hook now” button calls it.")
    enabled = forms.BooleanField(label="On", required=False)

    def __init__(self, *args, hook=None, **kwargs):
        if "initial" not in kwargs:
            kwargs["initial"] = ({"url": hook.url, "on_alert": hook.on_alert, "enabled": hook.enabled} if hook
                                 else {"on_alert": [RuleKind.DRIFT, RuleKind.QUALITY], "enabled": True})
        super().__init__(*args, prefix="hook", **kwargs)


# ---------------------------------------------------------------- how new revisions roll out

# The gates typed as a percentage (a share stored from 0 to 1); the others are typed as they are stored.
PERCENT_GATES = ("max_error_rate", "min_agreement", "min_quality")


def _percent(value: float) -> str:
    return f"{round(value * 100, 6):g}"


def describe_rollout(deployment) -> str:
    """How a new revision of the followed model reaches the deployment, in a sentence."""
    mode = deployment.rollout_mode
    if mode == RolloutMode.CANARY:
        steps = ", then ".join(f"{weight:g} %" for weight in deployment.rollout_steps)
        return (f"Canary: a new ready version first answers a share of the requests ({steps}), each step judged "
                "by the gates; after the last one it is promoted, and a failing gate rolls it back.")
    if mode == RolloutMode.SHADOW:
        return ("Shadow: a new ready version first answers a copy of every request in the background (its answers "
                "are compared, not returned); promoted once the gates hold, rolled back when one fails.")
    return "Swap at once: a new ready version replaces the live model as soon as it is ready, with no gates."


def describe_gates(gates: dict, mode: str) -> list[str]:
    """The gates in words and units, one line each."""
    said = [f"At least {gates['min_requests']} requests answered by the candidate and "
            f"{gates['step_rounds']} collection round{'s' if gates['step_rounds'] != 1 else ''} per step",
            f"Error rate at most {_percent(gates['max_error_rate'])} %",
            f"p99 latency at most {gates['max_p99_ms']:g} ms"]
    if mode != RolloutMode.CANARY:  # a canary's answers are not compared with the live model's
        said.append(f"Answers equal to the live model's in at least {_percent(gates['min_agreement'])} % of requests")
    if gates.get("min_quality") is None:
        said.append("Accuracy from feedback: not judged")
    else:
        said.append(f"Accuracy from feedback at least {_percent(gates['min_quality'])} %, once "
                    f"{gates['min_feedback']} answers have their truth")
    return said


class RolloutForm(forms.Form):
    """How a new revision reaches the deployment: its mode, a canary's steps, the gates. Shares are typed as
    percentages (5, not 0.05) and checked here, so that the message speaks the field's unit; whatever
    deployment.services.set_rollout_settings still refuses goes beside the field it names."""

    mode = forms.ChoiceField(label="A new version", choices=RolloutMode.choices, widget=forms.RadioSelect)
    steps = forms.CharField(label="Canary steps (%)", max_length=100,
                            help_text="The candidate's share of the requests at each step, rising, separated by "
                                      "commas: 10, 50. After the last step it is promoted.")
    max_error_rate = forms.FloatField(label="Error rate at most (%)", min_value=0, max_value=100)
    max_p99_ms = forms.FloatField(label="p99 latency at most (ms)", min_value=0.001, max_value=600_000)
    min_agreement = forms.FloatField(label="Agreement with the live model at least (%)", min_value=0,
                                     max_value=100, help_text="A shadow's answers equal to the live model's.")
    min_quality = forms.FloatField(label="Accuracy from feedback at least (%)", min_value=0, max_value=100,
                                   required=False, help_text="Empty: not judged.")
    min_feedback = forms.IntegerField(label="Answers with feedback before accuracy is judged", min_value=1,
                                      max_value=1_000_000)
    min_requests = forms.IntegerField(label="Requests per step at least", min_value=1, max_value=10_000_000,
                                      help_text="No step is judged to hold on fewer.")
    step_rounds = forms.IntegerField(label="Collection rounds per step", min_value=1, max_value=1000)

    def __init__(self, *args, deployment=None, **kwargs):
        if deployment is not None and "initial" not in kwargs:
            gates = deployment.gates
            initial = {name: gates[name] for name in GATE_FIELDS}
            initial.update({name: _percent(gates[name]) for name in PERCENT_GATES if gates[name] is not None})
            initial.update(mode=deployment.rollout_mode,
                           steps=", ".join(f"{weight:g}" for weight in deployment.rollout_steps))
            kwargs["initial"] = initial
        super().__init__(*args, prefix="rollout", **kwargs)
        for name in ("max_error_rate", "max_p99_ms", "min_agreement", "min_quality"):
            self.fields[name].widget.attrs.update({"step": "any", "inputmode": "decimal"})

    def clean_steps(self) -> list:
        text = self.cleaned_data["steps"]
        try:
            steps = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("Type the weights as numbers separated by commas: 10, 50.") from None
        return [int(weight) if weight.is_integer() else weight for weight in steps]

    def gates(self) -> dict:
        """The gates that differ from the defaults, as set_rollout_settings takes them (shares from 0 to 1): a
        gate left at its default follows the default if it ever changes."""
        values = dict(self.cleaned_data)
        for name in PERCENT_GATES:
            if values[name] is not None:
                values[name] = round(values[name] / 100, 10)
        return {name: values[name] for name in GATE_FIELDS if values[name] != DEFAULT_ROLLOUT_GATES[name]}


GATE_FIELDS = tuple(DEFAULT_ROLLOUT_GATES)
